//! The routing every service should have now: a pure function of the
//! config, the versions registered over the API, the rollouts' states and
//! the staging runs in progress. Whatever routes traffic (the in-process
//! gateway today; nginx or a Kubernetes Gateway API later) applies this and
//! nothing else, so a restart, a registration, a config reload, a staging
//! drill and a rollout step can never disagree about where traffic goes.
//!
//! The rules, per service:
//! - The serving ("stable") version is the config's `stable` until a rollout
//!   completes; from then on it is the candidate of the last completed one.
//! - An active rollout splits between its stable and its candidate at its
//!   weight (the candidate first, so raising its share keeps everyone already
//!   on it), and mirrors to the candidate while it shadows.
//! - Without one, the config's static split and mirror apply, if the serving
//!   version is still the config's.
//! - A previous version kept warm stays in the table at no traffic (its
//!   health probes keep running) until its time runs out; then it is gone.
//! - A staging run holds its staging service: its share to the candidate.
//! - A rolling rollout's instances (the pool) belong to the version that
//!   runs on them now: the candidate's share grows batch by batch as its
//!   hook reports them redeployed and healthy; instances out of service
//!   (draining, being redeployed or reverted) get no traffic.
//! - A dark launch (a static mirror with a `flag`) copies its percent times
//!   the flag's share of users; a killed or missing flag copies nothing.

use crate::config::{Config, Ejection, HealthCheck, Limits, Service, Sticky, Timeouts, UpstreamTls};
use crate::rollout::{Rollout, Stage};
use crate::weight::Weight;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

/// A version registered over the API (not in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredVersion {
    pub service: String,
    pub name: String,
    pub endpoints: Vec<String>,
}

/// A staging run's hold on its staging service: `weight` to the candidate, the rest to stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingRoute {
    pub service: String,
    pub candidate: String,
    pub weight: Weight,
}

/// The share of users each feature flag lets in now (a killed one: none):
/// what a dark launch's copies follow.
pub type FlagShares = BTreeMap<String, Weight>;

/// Everything the routing depends on.
#[derive(Debug, Clone, Copy)]
pub struct RoutingInputs<'a> {
    pub config: &'a Config,
    pub registered: &'a [RegisteredVersion],
    /// Every rollout, finished ones included (they decide the serving version).
    pub rollouts: &'a [Rollout],
    pub staging: &'a [StagingRoute],
    pub flags: &'a FlagShares,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Routing {
    pub services: BTreeMap<String, ServiceRouting>,
    /// The first moment after `now` at which time alone changes the routing
    /// (a warm version's time runs out): when to compute it again.
    pub next_change: Option<Timestamp>,
    /// What could not be routed as the log says (a version without endpoints,
    /// a rollout of a service the config no longer has).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceRouting {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub sticky: Option<Sticky>,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub health: Option<HealthCheck>,
    pub ejection: Ejection,
    pub tls: Option<UpstreamTls>,
    /// The answers' wire format: a chat model's are measured in tokens too.
    pub protocol: crate::config::Protocol,
    /// The version measured as the baseline.
    pub stable: String,
    pub versions: BTreeMap<String, RoutedVersion>,
    /// Each version's share, in split order; the shares sum to 100%.
    pub split: Vec<(String, Weight)>,
    /// The version a share of the traffic is copied to, never served from.
    pub mirror: Option<MirrorRouting>,
    /// A share of the requests written to disk, redacted.
    pub capture: Option<crate::config::CaptureSpec>,
}

/// Copies of a share of a service's requests, whose answers are compared and never served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorRouting {
    pub version: String,
    pub share: Weight,
    /// Of those copies, the share also sent to the serving version again (its noise floor).
    pub noise: Weight,
    /// The `model` field the copies carry instead of the request's (a chat candidate under another name).
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutedVersion {
    pub endpoints: Vec<String>,
    pub role: Role,
}

/// Why a version is in a service's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Stable,
    Candidate,
    /// One side of the config's static split.
    Split,
    /// Mirrored to by the config's static mirror.
    Shadow,
    /// The previous version, at no traffic, ready for an instant rollback.
    Warm,
}

/// The desired routing of every service in the config.
pub fn desired(inputs: &RoutingInputs<'_>) -> Routing {
    let mut routing = Routing { services: BTreeMap::new(), next_change: None, problems: Vec::new() };
    // A flag's rollout routes no traffic: the flag's evaluations follow it.
    let unrouted = |r: &&Rollout| {
        !inputs.config.services.contains_key(&r.service) && crate::rollout::flag_of(&r.service).is_none()
    };
    for rollout in inputs.rollouts.iter().filter(unrouted) {
        if !rollout.is_terminal() {
            routing.problems.push(format!(
                "rollout {} is of service `{}`, which the config does not define: its traffic is not routed",
                rollout.id, rollout.service
            ));
        }
    }
    for (name, service) in &inputs.config.services {
        let routed = service_routing(inputs, name, service, &mut routing);
        routing.services.insert(name.clone(), routed);
    }
    routing
}

/// The version serving `service` now: the candidate of its last completed
/// rollout, or the config's `stable` if none has completed.
pub fn serving_version(config: &Config, rollouts: &[Rollout], service: &str) -> Option<String> {
    let configured = config.services.get(service)?.stable.get_ref().clone();
    Some(
        of_service(rollouts, service)
            .rfind(|r| r.stage == Stage::Completed)
            .map_or(configured, |r| r.candidate.clone()),
    )
}

/// A service's rollouts in the order they started.
fn of_service<'a>(rollouts: &'a [Rollout], service: &'a str) -> impl DoubleEndedIterator<Item = &'a Rollout> + 'a {
    let mut mine: Vec<&Rollout> = rollouts.iter().filter(|r| r.service == service).collect();
    mine.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    mine.into_iter()
}

/// A service's routing while it is being built: which versions, and why.
struct Draft<'a> {
    inputs: &'a RoutingInputs<'a>,
    name: &'a str,
    service: &'a Service,
    versions: BTreeMap<String, RoutedVersion>,
}

impl Draft<'_> {
    fn endpoints(&self, version: &str) -> Option<Vec<String>> {
        // A rolling rollout decides which instances run which version.
        if let Some(instances) = crate::rollout::rolling_endpoints(self.inputs.rollouts, self.name, version) {
            return Some(instances);
        }
        if let Some(v) = self.service.versions.get(version) {
            return Some(v.endpoints.iter().map(|e| e.get_ref().clone()).collect());
        }
        self.inputs.registered.iter().find(|r| r.service == self.name && r.name == version).map(|r| r.endpoints.clone())
    }

    /// Adds `version` with `role` (a version already in keeps its first role).
    fn add(&mut self, version: &str, role: Role, problems: &mut Vec<String>) -> bool {
        if self.versions.contains_key(version) {
            return true;
        }
        match self.endpoints(version) {
            Some(endpoints) => {
                self.versions.insert(version.to_string(), RoutedVersion { endpoints, role });
                true
            }
            None => {
                problems.push(format!(
                    "service `{}`: version `{version}` is neither in the config nor registered, so it gets no traffic",
                    self.name
                ));
                false
            }
        }
    }
}

fn service_routing(inputs: &RoutingInputs<'_>, name: &str, service: &Service, routing: &mut Routing) -> ServiceRouting {
    let problems = &mut routing.problems;
    let mut draft = Draft { inputs, name, service, versions: BTreeMap::new() };
    let configured = service.stable.get_ref().clone();
    let serving = serving_version(inputs.config, inputs.rollouts, name).unwrap_or_else(|| configured.clone());
    let mut stable = serving.clone();
    let mut split = Vec::new();
    let mut mirror = None;
    let active: Vec<&Rollout> = of_service(inputs.rollouts, name).filter(|r| !r.is_terminal()).collect();
    if active.len() > 1 {
        let ids: Vec<&str> = active.iter().map(|r| r.id.as_str()).collect();
        problems.push(format!(
            "service `{name}` has {} active rollouts ({}); the latest routes",
            ids.len(),
            ids.join(", ")
        ));
    }
    let staging = inputs.staging.iter().rev().find(|s| s.service == name);
    if let Some(run) = staging {
        stable = configured;
        draft.add(&stable, Role::Stable, problems);
        if draft.add(&run.candidate, Role::Candidate, problems) {
            split.push((run.candidate.clone(), run.weight));
        }
        split.push((stable.clone(), run.weight.complement()));
    } else if let Some(r) = active.last() {
        stable = r.stable.clone();
        let candidate_in = draft.add(&r.candidate, Role::Candidate, problems);
        // In full deployment the previous version serves nothing; it stays
        // in the table only while it is kept warm.
        let stable_kept = r.stage != Stage::Full || r.warm_at(inputs.now).is_some();
        if stable_kept && draft.add(&r.stable, Role::Stable, problems) {
            if candidate_in {
                split.push((r.candidate.clone(), r.weight));
            }
            split.push((r.stable.clone(), if candidate_in { r.weight.complement() } else { Weight::FULL }));
        } else if candidate_in {
            split.push((r.candidate.clone(), Weight::FULL));
        }
        if let Some(warm) = r.warm.as_ref().filter(|w| w.until > inputs.now) {
            routing.next_change = earliest(routing.next_change, warm.until);
        }
        mirror = r.mirroring.filter(|_| candidate_in).map(|share| MirrorRouting {
            version: r.candidate.clone(),
            share,
            noise: r.plan.shadow.noise_percent,
            model: r.plan.shadow.model.clone(),
        });
    } else {
        draft.add(&serving, Role::Stable, problems);
        let static_split = service.split.as_ref().filter(|_| serving == configured);
        match static_split {
            Some(shares) => {
                for (version, share) in shares.get_ref() {
                    if draft.add(version, Role::Split, problems) {
                        split.push((version.clone(), *share));
                    }
                }
            }
            None => split.push((serving.clone(), Weight::FULL)),
        }
        let share = service.mirror.as_ref().map(|m| dark_launch_share(inputs, name, m, problems));
        if let Some(m) = &service.mirror
            && let Some(share) = share.filter(|s| *s > Weight::ZERO)
            && draft.add(m.version.get_ref(), Role::Shadow, problems)
        {
            mirror =
                Some(MirrorRouting { version: m.version.get_ref().clone(), share, noise: Weight::ZERO, model: None });
        }
    }
    // The version the last completed rollout replaced, while it is kept warm.
    let last_completed = of_service(inputs.rollouts, name).rfind(|r| r.stage == Stage::Completed);
    if let Some(warm) = last_completed.and_then(|r| r.warm_at(inputs.now)) {
        draft.add(&warm.version, Role::Warm, problems);
        routing.next_change = earliest(routing.next_change, warm.until);
    }
    ServiceRouting {
        host: service.route.host.clone(),
        path_prefix: service.route.path_prefix.clone(),
        sticky: service.sticky.clone(),
        timeouts: service.timeouts,
        limits: service.limits,
        health: service.health.clone(),
        ejection: service.ejection,
        tls: service.tls.clone(),
        protocol: service.protocol,
        stable,
        versions: draft.versions,
        split,
        mirror,
        capture: service.capture.clone(),
    }
}

/// The share a static mirror copies: its percent, times its flag's share for a dark launch.
fn dark_launch_share(
    inputs: &RoutingInputs<'_>,
    service: &str,
    m: &crate::config::MirrorSpec,
    problems: &mut Vec<String>,
) -> Weight {
    let Some(flag) = &m.flag else { return m.percent };
    let Some(share) = inputs.flags.get(flag) else {
        problems.push(format!(
            "service `{service}`: the dark launch's flag `{flag}` does not exist (only `rollgate serve` reads \
             flags; `rollgate gateway` alone knows none), so nothing is mirrored"
        ));
        return Weight::ZERO;
    };
    let bp = u32::from(m.percent.basis_points()) * u32::from(share.basis_points()) / 10_000;
    Weight::from_basis_points(u16::try_from(bp).unwrap_or(10_000)).unwrap_or(Weight::FULL)
}

fn earliest(a: Option<Timestamp>, b: Timestamp) -> Option<Timestamp> {
    Some(a.map_or(b, |a| a.min(b)))
}
