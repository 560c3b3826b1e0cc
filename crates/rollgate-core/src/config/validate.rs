//! Checks across entries that serde cannot make: references between
//! services, versions and plans, value formats, and each plan's own rules.

use super::diagnostic::{Diagnostic, Locator};
use super::{Config, Service, Version};
use std::ops::Range;
use toml::de::DeTable;

/// Probes the gateway can keep up with and thresholds that can be reached.
fn health_problems(health: &super::HealthCheck) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    if health.interval.duration() < jiff::SignedDuration::from_millis(100) {
        out.push((
            format!("health checks every {} would flood the model servers", health.interval),
            "probe at most ten times a second: interval = \"100ms\" or more (the default is 5s)",
        ));
    }
    if health.timeout == crate::hold::Hold::ZERO {
        out.push(("a health check timeout of 0 fails every probe".into(), "e.g. timeout = \"1s\""));
    }
    if health.unhealthy_after == 0 || health.healthy_after == 0 {
        out.push((
            "unhealthy_after and healthy_after count probes in a row and must be at least 1".into(),
            "e.g. unhealthy_after = 3, healthy_after = 2",
        ));
    }
    out
}

/// A deploy hook needs exactly one of a command and a webhook, each usable.
fn check_deploy_hook(hook: &super::DeployHook) -> Vec<(Option<Range<usize>>, String, &'static str)> {
    let mut out = Vec::new();
    let at = hook.command.as_ref().map(|c| c.span()).or_else(|| hook.webhook.as_ref().map(|w| w.span()));
    match (&hook.command, &hook.webhook) {
        (Some(_), Some(_)) | (None, None) => out.push((
            at.clone(),
            "a deploy hook needs exactly one of `command` and `webhook`".into(),
            "e.g. command = [\"./deploy.sh\", \"{effect}\", \"{version}\"] or webhook = \"https://deploy.example.com/rollgate\"",
        )),
        (Some(command), None) if command.get_ref().first().is_none_or(|p| p.trim().is_empty()) => out.push((
            Some(command.span()),
            "the deploy command is empty".into(),
            "name the program first, e.g. command = [\"./deploy.sh\", \"{effect}\"]",
        )),
        (None, Some(url)) => {
            if let Err(why) = check_url(url.get_ref()) {
                out.push((Some(url.span()), format!("webhook `{}` {why}", url.get_ref()), "write it as https://HOST/PATH"));
            }
        }
        _ => {}
    }
    if hook.attempts == 0 {
        out.push((at.clone(), "attempts is 0: the hook would never run".into(), "give at least 1, e.g. attempts = 5"));
    }
    if hook.timeout == crate::hold::Hold::ZERO {
        out.push((at, "timeout is 0: every run would fail".into(), "e.g. timeout = \"10m\""));
    }
    out
}

pub(super) fn check(
    config: &Config,
    unreadable_plans: &[String],
    root: &DeTable<'_>,
    locate: &Locator<'_>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let plans = config.plan_names();
    let mut routes: Vec<(String, String)> = Vec::new();
    for (name, service) in &config.services {
        let at = |path: &[&str]| span_at(root, &[&["services", name], path].concat());
        if !is_slug(name) {
            out.push(locate.at(at(&[]), format!("service name `{name}` is not a plain name"), Some(SLUG_HINT.into())));
        }
        check_route(name, service, &at, locate, &mut routes, &mut out);
        if !service.versions.contains_key(service.stable.get_ref()) {
            let known = service.versions.keys().cloned().collect::<Vec<_>>().join(", ");
            out.push(locate.at(
                Some(service.stable.span()),
                format!(
                    "service `{name}` names stable version `{}`, which it does not define",
                    service.stable.get_ref()
                ),
                Some(format!("define [services.{name}.versions.{}] or pick one of: {known}", service.stable.get_ref())),
            ));
        }
        let plan = service.plan.get_ref();
        if !plans.contains(plan) && !unreadable_plans.contains(plan) {
            out.push(locate.at(
                Some(service.plan.span()),
                format!("service `{name}` uses plan `{}`, which is not defined", service.plan.get_ref()),
                Some(format!("define [plans.{}] or use one of: {}", service.plan.get_ref(), plans.join(", "))),
            ));
        }
        if let Some(sticky) = &service.sticky {
            let ways = [sticky.header.is_some(), sticky.cookie.is_some(), sticky.body.is_some()];
            if ways.iter().filter(|w| **w).count() != 1 {
                out.push(locate.at(
                    at(&["sticky"]),
                    format!("service `{name}`: sticky needs exactly one of `header`, `cookie` or `body`"),
                    Some("e.g. sticky = { header = \"x-user-id\" } or sticky = { body = \"/user\" }".into()),
                ));
            }
            if sticky.body.as_ref().is_some_and(|p| !p.starts_with('/')) {
                out.push(locate.at(
                    at(&["sticky"]),
                    format!("service `{name}`: sticky `body` is a JSON pointer, which starts with `/`"),
                    Some("e.g. sticky = { body = \"/user\" } for OpenAI's end-user field".into()),
                ));
            }
        }
        if let Some(split) = &service.split {
            let total: u32 = split.get_ref().values().map(|w| u32::from(w.basis_points())).sum();
            for version in split.get_ref().keys().filter(|v| !service.versions.contains_key(*v)) {
                out.push(locate.at(
                    Some(split.span()),
                    format!("service `{name}` splits traffic to `{version}`, which it does not define"),
                    Some("split only between the service's versions".into()),
                ));
            }
            if total != 10_000 {
                out.push(locate.at(
                    Some(split.span()),
                    format!("service `{name}`: the split adds up to {}%, not 100%", f64::from(total) / 100.0),
                    Some("e.g. split = { v1 = 95, v2 = 5 }".into()),
                ));
            }
        }
        if let Some(mirror) = &service.mirror
            && !service.versions.contains_key(mirror.version.get_ref())
        {
            out.push(locate.at(
                Some(mirror.version.span()),
                format!("service `{name}` mirrors to `{}`, which it does not define", mirror.version.get_ref()),
                Some("mirror to one of the service's versions".into()),
            ));
        }
        if let Some(capture) = &service.capture {
            let why = crate::redact::Redactor::new(&capture.redact, &[]).err().or_else(|| {
                let pointer = capture.redact_pointers.iter().find(|p| !p.starts_with('/'))?;
                Some(format!("redact_pointers: `{pointer}` is not a JSON pointer"))
            });
            let why = why.or_else(|| {
                (capture.max_files == 0 || capture.max_file_bytes < 1024)
                    .then(|| "max_files must be at least 1 and max_file_bytes at least 1024".to_string())
            });
            if let Some(why) = why {
                out.push(locate.at(
                    at(&["capture"]),
                    format!("service `{name}`: capture: {why}"),
                    Some("e.g. capture = { percent = 1, redact_pointers = [\"/user\"] }".into()),
                ));
            }
        }
        if let Some(probe) = &service.version_probe {
            let bad_path = !probe.path.starts_with('/');
            let bad_pointer = !(probe.pointer.is_empty() || probe.pointer.starts_with('/'));
            if bad_path || bad_pointer {
                out.push(locate.at(
                    at(&["version_probe"]),
                    format!("service `{name}`: version_probe needs a path and a JSON pointer that start with `/`"),
                    Some("e.g. version_probe = { path = \"/v2/models/fraud\", pointer = \"/model_version\" }".into()),
                ));
            }
        }
        if let Some(tls) = &service.tls
            && tls.client_cert.is_some() != tls.client_key.is_some()
        {
            out.push(locate.at(
                at(&["tls"]),
                format!("service `{name}`: mutual TLS needs both client_cert and client_key"),
                Some("give both PEM files, or neither".into()),
            ));
        }
        if let Some(health) = &service.health {
            for (why, hint) in health_problems(health) {
                out.push(locate.at(at(&["health"]), format!("service `{name}`: {why}"), Some(hint.into())));
            }
        }
        for (version_name, version) in &service.versions {
            let vat = |path: &[&str]| at(&[&["versions", version_name], path].concat());
            check_version(name, version_name, version, &vat, locate, &mut out);
        }
    }
    out.extend(
        check_staging_environments(config, &|name: &str| {
            span_at(root, &["services", name, "plan"]).or_else(|| span_at(root, &["services", name]))
        })
        .into_iter()
        .map(|(span, message, hint)| locate.at(span, message, Some(hint))),
    );
    // (A service that could not be read is reported as it is, not as a missing one.)
    let written = root.get("services").and_then(|s| s.get_ref().as_table()).is_some_and(|t| !t.is_empty());
    if !written {
        out.push(locate.at(
            span_at(root, &["services"]),
            "the config defines no services, so there is nothing to route or roll out",
            Some("add a [services.NAME] with its route, protocol, stable version and versions; `rollgate init` writes an example".into()),
        ));
    }
    for freeze in &config.policy.freezes {
        if let Some(why) = freeze.problem(&crate::window::Zone::utc()) {
            out.push(locate.at(
                span_at(root, &["policy", "freezes"]),
                why,
                Some("give `until` a later moment than `from`".into()),
            ));
        }
    }
    for (person, roles) in &config.roles {
        if roles.contains(&crate::roles::Role::System) {
            out.push(locate.at(
                span_at(root, &["roles", person]),
                format!("`{person}` is given the role system, which is rollgate's own (timers, judge verdicts)"),
                Some("give people viewer, deployer, admin or approver:KIND".into()),
            ));
        }
    }
    let hooks =
        config.services.iter().filter_map(|(name, s)| Some((format!("[services.{name}.deploy]"), s.deploy.as_ref()?)));
    let named = config.deploy.iter().map(|h| ("[deploy]".to_string(), h));
    let tickets = config.tickets.iter().map(|h| ("[tickets]".to_string(), h));
    for (section, hook) in named.chain(tickets).chain(hooks) {
        for (span, message, hint) in check_deploy_hook(hook) {
            out.push(locate.at(span, format!("{section}: {message}"), Some(hint.into())));
        }
    }
    for hook in &config.notifications.webhooks {
        if let Err(why) = check_url(hook.url.get_ref()) {
            out.push(locate.at(
                Some(hook.url.span()),
                format!("webhook `{}` {why}", hook.url.get_ref()),
                Some("write it as http://HOST:PORT/PATH or https://HOST/PATH".into()),
            ));
        }
    }
    if let Some(url) = &config.metrics.prometheus
        && let Err(why) = check_url(url.get_ref())
    {
        out.push(locate.at(
            Some(url.span()),
            format!("the Prometheus address `{}` {why}", url.get_ref()),
            Some("write it as http://HOST:PORT, e.g. http://127.0.0.1:9090".into()),
        ));
    }
    for (name, plan) in &config.plans {
        if plan.pre_deployment.monitoring_rules && config.metrics.prometheus.is_none() {
            out.push(locate.at(
                span_at(root, &["plans", name, "pre_deployment", "monitoring_rules"]),
                format!("plan `{name}` checks that monitoring rules are loaded, but no Prometheus is configured"),
                Some("add [metrics] prometheus = \"http://HOST:9090\"".into()),
            ));
        }
        if !plan.rollback.external.is_empty() && config.metrics.prometheus.is_none() {
            out.push(locate.at(
                span_at(root, &["plans", name, "rollback", "external"]),
                format!("plan `{name}` judges external metrics, but no Prometheus is configured"),
                Some("add [metrics] prometheus = \"http://HOST:9090\"".into()),
            ));
        }
        for problem in plan.problems() {
            let path: Vec<&str> = problem.path.iter().map(String::as_str).collect();
            let span = span_at(root, &[&["plans", name], path.as_slice()].concat());
            out.push(locate.at(span, format!("plan `{name}`: {}", problem.message), Some(problem.hint)));
        }
    }
    out
}

pub const SLUG_HINT: &str =
    "use up to 64 lower-case letters, digits, '-', '_' and '.', starting with a letter or digit";

/// The longest name or id: short enough for every path and header it goes into.
pub const MAX_NAME_LEN: usize = 64;

/// A plain name: lower-case letters, digits, '-', '_' and '.', starting with a letter or digit.
pub fn is_slug(s: &str) -> bool {
    s.len() <= MAX_NAME_LEN
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn check_route(
    name: &str,
    service: &Service,
    at: &dyn Fn(&[&str]) -> Option<Range<usize>>,
    locate: &Locator<'_>,
    routes: &mut Vec<(String, String)>,
    out: &mut Vec<Diagnostic>,
) {
    let route = &service.route;
    if route.path_prefix.is_none() && route.host.is_none() {
        out.push(locate.at(
            at(&["route"]),
            format!("service `{name}` has a route that matches nothing"),
            Some("set route.path_prefix (e.g. \"/v1/models/fraud\") and/or route.host".into()),
        ));
        return;
    }
    if let Some(prefix) = &route.path_prefix
        && !prefix.starts_with('/')
    {
        out.push(locate.at(
            at(&["route", "path_prefix"]),
            format!("path_prefix `{prefix}` does not start with '/'"),
            Some(format!("write it as \"/{prefix}\"")),
        ));
    }
    let key = format!("{}{}", route.host.as_deref().unwrap_or("*"), route.path_prefix.as_deref().unwrap_or("/"));
    if let Some((other, _)) = routes.iter().find(|(_, k)| *k == key) {
        out.push(locate.at(
            at(&["route"]),
            format!("service `{name}` has the same route as service `{other}`"),
            Some("give each service its own path_prefix or host".into()),
        ));
    }
    routes.push((name.to_string(), key));
}

/// A service whose plan runs staging needs the staging service the plan
/// names, unless it is itself another service's staging environment.
fn check_staging_environments(
    config: &Config,
    span_of: &dyn Fn(&str) -> Option<Range<usize>>,
) -> Vec<(Option<Range<usize>>, String, String)> {
    let environment_of = |name: &str| {
        let plan = config.plan(config.services[name].plan.get_ref())?;
        Some(plan.staging.environment?.service_for(name))
    };
    let staging_services: Vec<String> = config.services.keys().filter_map(|name| environment_of(name)).collect();
    config
        .services
        .keys()
        .filter(|name| !staging_services.contains(name))
        .filter_map(|name| {
            let staging = environment_of(name)?;
            (!config.services.contains_key(&staging)).then(|| {
                (
                    span_of(name),
                    format!("service `{name}`'s plan runs staging in service `{staging}`, which is not defined"),
                    format!("define [services.{staging}] with the staging endpoints of each version"),
                )
            })
        })
        .collect()
}

fn check_version(
    service: &str,
    name: &str,
    version: &Version,
    at: &dyn Fn(&[&str]) -> Option<Range<usize>>,
    locate: &Locator<'_>,
    out: &mut Vec<Diagnostic>,
) {
    if !is_slug(name) {
        out.push(locate.at(at(&[]), format!("version name `{name}` is not a plain name"), Some(SLUG_HINT.into())));
    }
    if version.endpoints.is_empty() {
        out.push(locate.at(
            at(&["endpoints"]),
            format!("version `{service}/{name}` has no endpoints"),
            Some("list at least one, e.g. endpoints = [\"http://10.0.0.5:8000\"]".into()),
        ));
    }
    for endpoint in &version.endpoints {
        if let Err(why) = check_url(endpoint.get_ref()) {
            out.push(locate.at(
                Some(endpoint.span()),
                format!("endpoint `{}` of `{service}/{name}` {why}", endpoint.get_ref()),
                Some("write it as http(s)://HOST:PORT or http(s)://HOST:PORT/PATH".into()),
            ));
        }
    }
    let sha = version.artifact.sha256.get_ref();
    if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        out.push(locate.at(
            Some(version.artifact.sha256.span()),
            format!("artifact sha256 of `{service}/{name}` is not 64 hexadecimal digits"),
            Some("use the output of `sha256sum FILE`".into()),
        ));
    }
}

/// An http:// or https:// URL rollgate calls (model servers, over TLS per their service's `tls`; webhooks;
/// Prometheus): a host, and a numeric port if any.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).ok_or("is not an http(s) URL")?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("has no host");
    }
    // In "[::1]:9000" the port follows the bracketed IPv6 host.
    let host_port = authority.rsplit_once(']').map_or(authority, |(_, after)| after);
    if let Some((_, port)) = host_port.rsplit_once(':')
        && port.parse::<u16>().is_err()
    {
        return Err("has a port that is not a number from 0 to 65535");
    }
    Ok(())
}

/// The span of the deepest key along `path` that the file actually has:
/// a problem with a value the file leaves at its default points at the
/// table that would hold it.
fn span_at(root: &DeTable<'_>, path: &[&str]) -> Option<Range<usize>> {
    let mut table = root;
    let mut found = None;
    for key in path {
        let Some((k, value)) = table.get_key_value(*key) else {
            break;
        };
        found = Some(k.span());
        match value.get_ref().as_table() {
            Some(inner) => table = inner,
            None => {
                found = Some(value.span());
                break;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_that_stages_needs_the_staging_service_and_sane_numbers() {
        let service = |name: &str| service(name, "staged");
        let plan = "[plans.staged.staging.environment]\nrate = 0\n";
        let errors = crate::config::Config::parse("x.toml", &(service("scorer") + plan)).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|e| e.contains("runs staging in service `scorer-staging`, which is not defined")),
            "{text:?}"
        );
        assert!(text.iter().any(|e| e.contains("staging rate is 0")), "{text:?}");
        // With the staging service defined (and a sane rate) the config is fine.
        let fixed = service("scorer") + &service("scorer-staging") + "[plans.staged.staging.environment]\nrate = 20\n";
        assert!(crate::config::Config::parse("x.toml", &fixed).is_ok());
    }

    #[test]
    fn endpoints_must_be_http_urls_with_numeric_ports() {
        assert!(check_url("http://127.0.0.1:9000").is_ok());
        assert!(check_url("http://models.internal/v1").is_ok());
        assert!(check_url("https://models.internal/v1").is_ok());
        assert!(check_url("http://[::1]:9000").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("http://").is_err());
        assert!(check_url("http://host:99999").is_err());
    }

    #[test]
    fn urls_rollgate_calls_itself_may_be_https() {
        assert!(check_url("https://hooks.slack.com/services/T0/B0/x").is_ok());
        assert!(check_url("https://deploy.example.com:8443/hook").is_ok());
        assert!(check_url("https://").is_err());
        assert!(check_url("mailto:ops@example.com").is_err());
    }

    /// A service of one version on `plan`.
    fn service(name: &str, plan: &str) -> String {
        format!(
            "[services.{name}]\nroute = {{ path_prefix = \"/{name}\" }}\nprotocol = \"json\"\nstable = \"v1\"\nplan = \"{plan}\"\n\
             [services.{name}.versions.v1]\nendpoints = [\"http://127.0.0.1:9001\"]\nowner = \"o\"\n\
             artifact = {{ uri = \"s3://m\", sha256 = \"{}\" }}\n",
            "a".repeat(64)
        )
    }

    #[test]
    fn external_metrics_need_a_prometheus_and_a_well_formed_rule() {
        let plan = "[plans.gpu.rollback]\nexternal = [\n  { name = \"gpu\", query = 'max(gpu{v=\"{version}\"})', max_ratio = 1.2 },\n  { name = \"both\", query = \"q\", max = 1, max_ratio = 2 },\n  { name = \"ratio\", query = \"no_placeholder\", max_ratio = 2 },\n]\n";
        let errors = crate::config::Config::parse("x.toml", plan).unwrap_err();
        let text: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
        let all = text.join("\n");
        assert!(all.contains("no Prometheus is configured"), "{all}");
        assert!(all.contains("needs exactly one of max and max_ratio"), "{all}");
        assert!(all.contains("must name `{version}`"), "{all}");
        let fixed = format!(
            "{}[metrics]\nprometheus = \"http://127.0.0.1:9090\"\n{}",
            service("scorer", "default"),
            plan.lines().take(3).collect::<Vec<_>>().join("\n") + "\n]\n"
        );
        assert!(crate::config::Config::parse("x.toml", &fixed).is_ok(), "{fixed}");
    }

    #[test]
    fn a_plan_that_checks_monitoring_rules_needs_a_prometheus() {
        let plan = "[plans.watched.pre_deployment]\nmonitoring_rules = true\n";
        let errors = crate::config::Config::parse("x.toml", plan).unwrap_err();
        let text: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("x.toml:2:20: error: plan `watched` checks that monitoring rules are loaded")),
            "{text:?}"
        );
        let fixed =
            format!("{}[metrics]\nprometheus = \"http://127.0.0.1:9090\"\n{plan}", service("scorer", "default"));
        assert!(crate::config::Config::parse("x.toml", &fixed).is_ok(), "{fixed}");
    }

    #[test]
    fn slugs_are_plain_names() {
        assert!(is_slug("fraud-scorer"));
        assert!(is_slug("v1.2"));
        assert!(!is_slug("Fraud"));
        assert!(!is_slug("-x"));
        assert!(!is_slug(""));
        assert!(is_slug(&"a".repeat(MAX_NAME_LEN)));
        assert!(!is_slug(&"a".repeat(MAX_NAME_LEN + 1)), "a name too long for the paths it goes into");
    }
}
