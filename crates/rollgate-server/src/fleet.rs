//! What this replica knows of the log (every rollout's state, the registered
//! versions, the config in force, the staging runs holding a route) and the
//! routing that follows from it. The routing is only ever changed by
//! [`Fleet::apply`], which computes the pure desired state
//! (`rollgate_core::routing::desired`) and hands it to the data plane: a
//! submit, a registration, a config reload, a staging drill and a restart
//! all end there, one apply at a time.
//!
//! The projection is kept current by the submits of this process (each
//! passes on the state it appended) and by [`Fleet::sync`], which compares
//! stream heads with the store to pick up what other writers appended.

use crate::dataplane::DataPlane;
use crate::flag_outcomes::FlagOutcomes;
use crate::flags::{self, FLAGS_STREAM, FlagRecord};
use crate::registry::{REGISTRY_STREAM, Registration, registrations};
use rollgate_core::Timestamp;
use rollgate_core::clock::Clock;
use rollgate_core::config::Config;
use rollgate_core::rollout::Rollout;
use rollgate_core::routing::{Routing, RoutingInputs, StagingRoute, desired, serving_version};
use rollgate_store::{AnyStore, EventStore, Rollouts, StoreError, SubmitError, is_rollout_stream};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The config in force, with the text it was read from (archived with each rollout).
#[derive(Debug, Clone)]
pub struct ConfigInForce {
    pub config: Arc<Config>,
    pub text: Arc<str>,
}

pub struct Fleet {
    known: Mutex<Known>,
    dataplane: Option<Arc<dyn DataPlane>>,
    clock: Arc<dyn Clock>,
    /// What applications report of flags rolled out by a plan.
    flag_outcomes: Arc<FlagOutcomes>,
}

struct Known {
    config: ConfigInForce,
    /// Each rollout with the seq of the last event it was rebuilt from.
    rollouts: BTreeMap<String, (u64, Rollout)>,
    registry: (u64, Vec<Registration>),
    /// The feature flags as their stream leaves them, with its last seq.
    flags: (u64, Arc<BTreeMap<String, FlagRecord>>),
    staging: Vec<StagingRoute>,
    /// The routing last given to the data plane.
    applied: Option<Routing>,
}

impl Known {
    fn rollout_states(&self) -> Vec<Rollout> {
        self.rollouts.values().map(|(_, r)| r.clone()).collect()
    }
}

impl Fleet {
    /// Reads every rollout and registration from the store.
    pub async fn load(
        store: &AnyStore,
        config: ConfigInForce,
        dataplane: Option<Arc<dyn DataPlane>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Fleet, SubmitError> {
        let known = Known {
            config,
            rollouts: BTreeMap::new(),
            registry: (0, Vec::new()),
            flags: (0, Arc::default()),
            staging: Vec::new(),
            applied: None,
        };
        let fleet = Fleet { known: Mutex::new(known), dataplane, clock, flag_outcomes: Arc::default() };
        fleet.sync(store).await?;
        Ok(fleet)
    }

    fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn config(&self) -> Arc<Config> {
        self.known().config.config.clone()
    }

    pub fn config_in_force(&self) -> ConfigInForce {
        self.known().config.clone()
    }

    pub fn dataplane(&self) -> Option<&Arc<dyn DataPlane>> {
        self.dataplane.as_ref()
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn rollout(&self, id: &str) -> Option<Rollout> {
        self.known().rollouts.get(id).map(|(_, r)| r.clone())
    }

    /// Every rollout, finished ones included, in id order.
    pub fn rollouts(&self) -> Vec<Rollout> {
        self.known().rollouts.values().map(|(_, r)| r.clone()).collect()
    }

    pub fn flag_outcomes(&self) -> &Arc<FlagOutcomes> {
        &self.flag_outcomes
    }

    /// The feature flags now, by name: a snapshot, read without waiting on the store.
    pub fn flags(&self) -> Arc<BTreeMap<String, FlagRecord>> {
        self.known().flags.1.clone()
    }

    pub fn registrations(&self) -> Vec<Registration> {
        self.known().registry.1.clone()
    }

    /// The version serving `service` now (what a new rollout replaces).
    pub fn serving_version(&self, service: &str) -> Option<String> {
        let known = self.known();
        let rollouts = known.rollout_states();
        serving_version(&known.config.config, &rollouts, service)
    }

    /// The endpoints of a version as its own (what checks and hooks address):
    /// the instances the last finished rolling rollout left it, or else from
    /// the config or the registry.
    pub fn endpoints(&self, service: &str, version: &str) -> Vec<String> {
        let known = self.known();
        let rollouts = known.rollouts.values().map(|(_, r)| r);
        if let Some(instances) = rollgate_core::rollout::own_endpoints(rollouts, service, version) {
            return instances;
        }
        let configured = known.config.config.services.get(service).and_then(|s| s.versions.get(version));
        match configured {
            Some(v) => v.endpoints.iter().map(|e| e.get_ref().clone()).collect(),
            None => known
                .registry
                .1
                .iter()
                .find(|r| r.service == service && r.version.name == version)
                .map(|r| r.version.endpoints.clone())
                .unwrap_or_default(),
        }
    }

    /// Takes in a rollout's state as of event `seq` (an older one is ignored)
    /// and applies the routing that follows.
    pub fn observe(&self, seq: u64, rollout: &Rollout) {
        let mut known = self.known();
        let newer = known.rollouts.get(&rollout.id).is_none_or(|(held, _)| *held < seq);
        if newer {
            known.rollouts.insert(rollout.id.clone(), (seq, rollout.clone()));
            self.apply_locked(&mut known);
        }
    }

    /// Reads the flags' stream again and holds what it says, unless what is held is as new.
    pub async fn reload_flags(&self, store: &AnyStore) -> Result<(), StoreError> {
        let events = store.read(FLAGS_STREAM).await?;
        let seq = events.last().map_or(0, |e| e.seq);
        let mut known = self.known();
        if seq > known.flags.0 {
            known.flags = (seq, Arc::new(flags::current(flags::records(&events))));
            // A dark launch follows its flag.
            if let Some(problem) = self.apply_locked(&mut known) {
                tracing::warn!(%problem, "the routing after a flag change could not be applied");
            }
        }
        Ok(())
    }

    /// Takes in a registration just appended at position `seq` of the
    /// registry stream and routes it, unless what is held already has it (a
    /// sync after an announcement read it first). One that would leave a gap
    /// (another replica's registration not read yet) waits for the next sync,
    /// which reads the stream whole.
    pub fn registered(&self, seq: u64, registration: Registration) {
        let mut known = self.known();
        if known.registry.0 + 1 == seq {
            known.registry.0 = seq;
            known.registry.1.push(registration);
            self.apply_locked(&mut known);
        }
    }

    /// Reads what changed in the store since the last look (streams whose
    /// head moved) and applies the routing. Returns the rollouts that changed.
    pub async fn sync(&self, store: &AnyStore) -> Result<Vec<String>, SubmitError> {
        let heads = store.heads().await?;
        let (moved, registry_moved, flags_moved) = {
            let known = self.known();
            let moved: Vec<String> = heads
                .iter()
                .filter(|h| {
                    is_rollout_stream(&h.stream) && known.rollouts.get(&h.stream).is_none_or(|(held, _)| *held < h.seq)
                })
                .map(|h| h.stream.clone())
                .collect();
            let registry_head = heads.iter().find(|h| h.stream == REGISTRY_STREAM).map_or(0, |h| h.seq);
            let flags_head = heads.iter().find(|h| h.stream == FLAGS_STREAM).map_or(0, |h| h.seq);
            (moved, registry_head > known.registry.0, flags_head > known.flags.0)
        };
        if flags_moved {
            self.reload_flags(store).await?;
        }
        let rollouts = Rollouts::new(store.clone());
        let mut loaded = Vec::new();
        for id in &moved {
            if let Some(state) = rollouts.load_with_seq(id).await? {
                loaded.push(state);
            }
        }
        let registry = if registry_moved {
            let events = store.read(REGISTRY_STREAM).await?;
            Some((events.last().map_or(0, |e| e.seq), registrations(&events)))
        } else {
            None
        };
        let mut known = self.known();
        for (seq, rollout) in loaded {
            if known.rollouts.get(&rollout.id).is_none_or(|(held, _)| *held < seq) {
                known.rollouts.insert(rollout.id.clone(), (seq, rollout));
            }
        }
        if let Some(registry) = registry.filter(|(seq, _)| *seq > known.registry.0) {
            known.registry = registry;
        }
        if !moved.is_empty() || registry_moved || known.applied.is_none() {
            self.apply_locked(&mut known);
        }
        Ok(moved)
    }

    /// A staging run takes its staging service's route (`None`: gives it back).
    pub fn stage(&self, service: &str, route: Option<StagingRoute>) -> Result<(), String> {
        let mut known = self.known();
        known.staging.retain(|s| s.service != service);
        known.staging.extend(route);
        match self.apply_locked(&mut known) {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Replaces the config when the routing it gives has no new problems;
    /// otherwise changes nothing and returns what is wrong.
    pub fn reload(&self, config: ConfigInForce) -> Result<(), Vec<String>> {
        let mut known = self.known();
        let before = self.desired_locked(&known).problems;
        let previous = std::mem::replace(&mut known.config, config);
        let after = self.desired_locked(&known);
        let new_problems: Vec<String> = after.problems.into_iter().filter(|p| !before.contains(p)).collect();
        if !new_problems.is_empty() {
            known.config = previous;
            return Err(new_problems);
        }
        if let Some(problem) = self.apply_locked(&mut known) {
            known.config = previous;
            self.apply_locked(&mut known);
            return Err(vec![problem]);
        }
        Ok(())
    }

    /// The routing every service should have now.
    pub fn desired(&self) -> Routing {
        self.desired_locked(&self.known())
    }

    /// Applies the desired routing now (after a warm version's time ran out,
    /// or to repeat what a crash may have left undone).
    pub fn apply(&self) -> Option<String> {
        self.apply_locked(&mut self.known())
    }

    /// The routing the data plane was last given.
    pub fn applied(&self) -> Option<Routing> {
        self.known().applied.clone()
    }

    fn desired_locked(&self, known: &Known) -> Routing {
        let rollouts = known.rollout_states();
        let registered: Vec<_> = known.registry.1.iter().map(Registration::routed).collect();
        let flags = flags::shares(&known.flags.1);
        desired(&RoutingInputs {
            config: &known.config.config,
            registered: &registered,
            rollouts: &rollouts,
            staging: &known.staging,
            flags: &flags,
            now: self.clock.now(),
        })
    }

    /// Computes and applies the routing under the lock, so applies never
    /// interleave; returns why the data plane refused it, if it did.
    fn apply_locked(&self, known: &mut Known) -> Option<String> {
        let routing = self.desired_locked(known);
        let seen = known.applied.as_ref().map(|a| a.problems.as_slice()).unwrap_or_default();
        for problem in routing.problems.iter().filter(|p| !seen.contains(p)) {
            tracing::warn!(%problem, "routing problem");
        }
        if known.applied.as_ref() == Some(&routing) {
            return None;
        }
        if let Some(dataplane) = &self.dataplane
            && let Err(e) = dataplane.apply(&routing)
        {
            tracing::error!(error = %e, "the data plane refused the routing; it keeps the previous one");
            return Some(e);
        }
        known.applied = Some(routing);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{VersionSpec, register};
    use rollgate_core::clock::ManualClock;
    use rollgate_store::SqliteStore;

    fn version(name: &str) -> VersionSpec {
        VersionSpec {
            name: name.into(),
            endpoints: vec!["http://127.0.0.1:9009".into()],
            artifact_uri: format!("s3://models/{name}"),
            artifact_sha256: "a".repeat(64),
            model_card: None,
            owner: "ml@example.com".into(),
        }
    }

    #[tokio::test]
    async fn a_registration_is_held_once_whichever_comes_first_the_api_or_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Sqlite(SqliteStore::open(dir.path()).await.unwrap());
        let config = Config::parse("rollgate.toml", rollgate_core::config::EXAMPLE).unwrap();
        let in_force = ConfigInForce { config: Arc::new(config.clone()), text: "".into() };
        let now = Timestamp::UNIX_EPOCH;
        let fleet = Fleet::load(&store, in_force, None, Arc::new(ManualClock::new(now))).await.unwrap();
        let names = || fleet.registrations().iter().map(|r| r.version.name.clone()).collect::<Vec<_>>();
        let registered = |name: &'static str| register(&store, &config, "fraud-scorer", version(name), "alice", now);

        // The API hands it in first.
        let (seq, v3) = registered("v3").await.unwrap();
        fleet.registered(seq, v3);
        assert_eq!(names(), ["v3"]);
        // A sync (another replica's announcement) reads it before the API hands it in.
        let (seq, v4) = registered("v4").await.unwrap();
        fleet.sync(&store).await.unwrap();
        fleet.registered(seq, v4);
        assert_eq!(names(), ["v3", "v4"]);
        // One registered elsewhere and not read yet: the API's own waits for the sync that reads both.
        let _elsewhere = registered("v5").await.unwrap();
        let (seq, v6) = registered("v6").await.unwrap();
        fleet.registered(seq, v6);
        assert_eq!(names(), ["v3", "v4"]);
        fleet.sync(&store).await.unwrap();
        assert_eq!(names(), ["v3", "v4", "v5", "v6"]);
    }
}
