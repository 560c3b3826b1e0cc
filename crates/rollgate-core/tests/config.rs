//! `rollgate check`'s engine: every problem, with file:line:column and a hint; no panics on any input.

use proptest::prelude::*;
use rollgate_core::config::{Config, Diagnostic, EXAMPLE};

fn problems(text: &str) -> Vec<Diagnostic> {
    Config::parse("rollgate.toml", text).expect_err("the config should be refused")
}

/// The example with one line replaced.
fn example_with(old: &str, new: &str) -> String {
    assert!(EXAMPLE.contains(old), "the example no longer contains {old:?}");
    EXAMPLE.replacen(old, new, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle in text") + 1
}

#[test]
fn the_example_passes_and_means_what_its_comments_say() {
    let config = Config::parse("rollgate.toml", EXAMPLE).unwrap();
    let service = &config.services["fraud-scorer"];
    assert_eq!(service.stable.get_ref(), "v1");
    assert_eq!(service.versions["v2"].endpoints.len(), 2);
    let plan = config.plan("careful").unwrap();
    assert_eq!(plan.pre_deployment.approvals.required().len(), 4);
    assert_eq!(plan.rollback.error_rate_ratio, 1.5);
    // The organisation's freeze is added to the plan's window.
    assert_eq!(plan.window.freezes.len(), 1);
    assert!(config.plan("default").is_some());
}

#[test]
fn an_unknown_key_is_placed_exactly() {
    let text = example_with("owner = \"fraud-ml@example.com\"", "ownr = \"fraud-ml@example.com\"");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].line, found[0].column), (line_of(&text, "ownr ="), 1));
    assert!(found[0].message.contains("unknown field `ownr`"), "{}", found[0].message);
    assert!(found[0].hint.is_some());
}

#[test]
fn a_weight_over_100_is_refused_at_the_value() {
    let text = example_with("{ percent = 50, hold = \"24h\" }", "{ percent = 150, hold = \"24h\" }");
    let found = problems(&text);
    let d = found.iter().find(|d| d.message.contains("150% is not a share of traffic")).expect("weight problem");
    assert_eq!(d.line, line_of(&text, "percent = 150"));
    assert_eq!(d.column, text.lines().nth(d.line - 1).unwrap().find("150").unwrap() + 1);
}

#[test]
fn steps_that_do_not_increase_point_at_the_steps() {
    let text = example_with("{ percent = 25, hold = \"12h\" }", "{ percent = 2, hold = \"12h\" }");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("step 3 (2%) is not above step 2 (5%)"), "{}", found[0].message);
    assert_eq!(found[0].line, line_of(&text, "steps = ["));
}

#[test]
fn an_unparseable_hold_says_how_to_write_one() {
    let text = example_with("duration = \"6h\"", "duration = \"six hours\"");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("`six hours` is not a duration"), "{}", found[0].message);
    assert_eq!(found[0].line, line_of(&text, "six hours"));
}

#[test]
fn references_to_missing_plans_and_versions_are_refused() {
    let text =
        example_with("stable = \"v1\"", "stable = \"v0\"").replacen("plan = \"careful\"", "plan = \"carefull\"", 1);
    let found = problems(&text);
    let stable = found.iter().find(|d| d.message.contains("stable version `v0`")).expect("stable problem");
    assert_eq!(stable.line, line_of(&text, "stable = \"v0\""));
    assert!(stable.hint.as_deref().unwrap().contains("v1, v2"));
    let plan =
        found.iter().find(|d| d.message.contains("plan `carefull`, which is not defined")).expect("plan problem");
    assert!(plan.hint.as_deref().unwrap().ends_with("use one of: default, careful"), "{:?}", plan.hint);
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let text = example_with("protocol = \"kserve-v2\"", "protocol = \"grpc\"")
        .replacen("sha256 = \"9f86", "sha256 = \"zz86", 1)
        .replacen("error_rate_ratio = 1.5", "error_rate_ratio = 0.5", 1)
        .replacen("alice = [\"deployer\"]", "alice = [\"superuser\"]", 1)
        .replacen("[policy]", "[polcy]", 1);
    let found = problems(&text);
    let rendered: Vec<String> = found.iter().map(ToString::to_string).collect();
    for needle in
        ["unknown variant `grpc`", "`superuser` is not a role", "unknown section `polcy`", "error_rate_ratio is 0.5"]
    {
        assert!(rendered.iter().any(|d| d.contains(needle)), "missing {needle:?} in {rendered:#?}");
    }
    assert!(found.iter().all(|d| d.line > 0 && d.column > 0));
}

#[test]
fn splits_mirrors_and_roles_are_checked() {
    let text = example_with("sticky = { header = \"x-user-id\" }", "sticky = { header = \"x-user-id\" }\nsplit = { v1 = 90, v9 = 5 }\nmirror = { version = \"v7\", percent = 100 }")
        .replacen("dana = [\"admin\"]", "dana = [\"admin\", \"system\"]", 1);
    let found: Vec<String> = problems(&text).iter().map(ToString::to_string).collect();
    for needle in
        ["splits traffic to `v9`", "the split adds up to 95%", "mirrors to `v7`", "`dana` is given the role system"]
    {
        assert!(found.iter().any(|d| d.contains(needle)), "missing {needle:?} in {found:#?}");
    }
}

#[test]
fn a_capture_whose_redaction_cannot_work_is_refused_where_it_is_written() {
    let capture = "capture = { percent = 5, redact = [\"(unclosed\"], redact_pointers = [\"/user\"] }";
    let text = example_with(
        "sticky = { header = \"x-user-id\" }",
        &format!("sticky = {{ header = \"x-user-id\" }}\n{capture}"),
    );
    let found = problems(&text);
    let bad = found.iter().find(|d| d.message.contains("capture")).expect("the capture is refused");
    assert!(bad.message.contains("`(unclosed` does not compile"), "{bad}");
    assert!(bad.line > 0, "located: {bad}");
    let pointer = example_with(
        "sticky = { header = \"x-user-id\" }",
        "sticky = { header = \"x-user-id\" }\ncapture = { redact_pointers = [\"user\"] }",
    );
    let found: Vec<String> = problems(&pointer).iter().map(ToString::to_string).collect();
    assert!(found.iter().any(|d| d.contains("`user` is not a JSON pointer")), "{found:#?}");
    let fine = example_with(
        "sticky = { header = \"x-user-id\" }",
        "sticky = { header = \"x-user-id\" }\ncapture = { percent = 1 }",
    );
    let config = Config::parse("rollgate.toml", &fine).expect("a plain capture is accepted");
    assert_eq!(config.services["fraud-scorer"].capture.as_ref().map(|c| c.percent.basis_points()), Some(100));
}

#[test]
fn syntax_errors_are_located() {
    let found = problems("[services.a]\nprotocol = \"json\nroute = { path_prefix = \"/a\" }\n");
    assert!(!found.is_empty());
    assert_eq!(found[0].line, 2, "{}", found[0]);
    assert!(found[0].to_string().starts_with("rollgate.toml:2:"), "{}", found[0]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        let _ = Config::parse("fuzz.toml", &text);
    }

    #[test]
    fn never_panics_on_a_mangled_example(cut in 0..EXAMPLE.len(), len in 0..40usize, insert in "[\\[\\]{}=\"',.#a-z0-9 \\n\u{e9}]{0,8}") {
        let mut text = EXAMPLE.to_string();
        let start = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let end = (start + len).min(text.len());
        let end = (end..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        text.replace_range(start..end, &insert);
        if let Err(found) = Config::parse("fuzz.toml", &text) {
            for d in found {
                prop_assert!(d.line >= 1 && d.line <= text.lines().count().max(1) + 1, "{d}");
            }
        }
    }
}

#[test]
fn deploy_hooks_need_exactly_one_way_to_run_and_a_service_may_have_its_own() {
    let global = "\n[deploy]\ncommand = [\"./deploy.sh\", \"{effect}\"]\n";
    let own = "\n[services.fraud-scorer.deploy]\nwebhook = \"https://deploy.example.com/hook\"\nattempts = 2\n";
    let config = Config::parse("rollgate.toml", &format!("{EXAMPLE}{global}")).unwrap();
    let hook = config.deploy_hook("fraud-scorer").unwrap();
    assert_eq!(hook.command.as_ref().unwrap().get_ref(), &["./deploy.sh", "{effect}"]);
    assert_eq!((hook.attempts, hook.timeout.as_secs()), (5, 600), "defaults");
    let both = Config::parse("rollgate.toml", &format!("{EXAMPLE}{global}{own}")).unwrap();
    assert_eq!(both.deploy_hook("fraud-scorer").unwrap().attempts, 2, "the service's own hook wins");
    assert!(both.deploy_hook("fraud-scorer").unwrap().webhook.is_some());

    let text = format!("{EXAMPLE}\n[deploy]\ncommand = [\"a\"]\nwebhook = \"https://x.example.com\"\n");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("exactly one of `command` and `webhook`"), "{}", found[0].message);
    assert_eq!(found[0].line, line_of(&text, "command = [\"a\"]"));
}

#[test]
fn values_that_hurt_are_refused_where_they_are_written() {
    // Probes in a tight loop against the model servers.
    let text = example_with(
        "sticky = { header = \"x-user-id\" }",
        "sticky = { header = \"x-user-id\" }\nhealth = { interval = \"0s\", unhealthy_after = 0 }",
    );
    let found = problems(&text);
    let line = line_of(&text, "health = {");
    assert!(found.iter().all(|p| p.line == line), "{found:?}");
    assert!(found.iter().any(|p| p.message.contains("health checks every 0s would flood")), "{found:?}");
    assert!(found.iter().any(|p| p.message.contains("at least 1")), "{found:?}");
    // A freeze that ends before it begins, in the policy and in a plan.
    let text =
        example_with("from = \"2026-12-21\", until = \"2027-01-04\"", "from = \"2027-01-04\", until = \"2026-12-21\"");
    let found = problems(&text);
    assert!(found[0].message.contains("ends (2026-12-21) before or when it begins (2027-01-04)"), "{found:?}");
    let plan_freeze = "no_start_on = [\"friday\", \"saturday\", \"sunday\"]\nfreezes = [{ from = \"2026-12-02T10:00:00Z\", until = \"2026-12-01T10:00:00Z\", reason = \"audit\" }]";
    let text = example_with("no_start_on = [\"friday\", \"saturday\", \"sunday\"]", plan_freeze);
    let found = problems(&text);
    assert!(found.iter().any(|p| p.message.contains("the freeze `audit` ends")), "{found:?}");
    // Nothing to deploy.
    for empty in ["", "# just a comment\n", "[roles]\nalice = [\"deployer\"]\n"] {
        let found = problems(empty);
        assert!(found.iter().any(|p| p.message.contains("defines no services")), "{empty:?}: {found:?}");
    }
}

#[test]
fn https_endpoints_are_taken_and_mutual_tls_needs_both_halves() {
    let tls = "\n[services.fraud-scorer.tls]\nca_file = \"ca.pem\"\nclient_cert = \"client.pem\"\n";
    let text = format!("{EXAMPLE}{tls}");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("mutual TLS needs both client_cert and client_key"), "{}", found[0].message);
    let both = format!("{text}client_key = \"client.key\"\n");
    let config = Config::parse("rollgate.toml", &both).unwrap();
    assert_eq!(config.services["fraud-scorer"].tls.as_ref().unwrap().ca_file.as_deref(), Some("ca.pem"));
    let https = example_with("http://127.0.0.1:9001", "https://models.internal:8443");
    assert!(Config::parse("rollgate.toml", &https).is_ok(), "an https endpoint is a valid endpoint");
}

#[test]
fn sticky_takes_one_way_and_a_body_field_is_a_json_pointer() {
    let both =
        example_with("sticky = { header = \"x-user-id\" }", "sticky = { header = \"x-user-id\", body = \"/user\" }");
    assert!(problems(&both).iter().any(|p| p.message.contains("exactly one of `header`, `cookie` or `body`")));
    let bare = example_with("sticky = { header = \"x-user-id\" }", "sticky = { body = \"user\" }");
    assert!(problems(&bare).iter().any(|p| p.message.contains("JSON pointer")));
    let body = example_with("sticky = { header = \"x-user-id\" }", "sticky = { body = \"/user\" }");
    let config = Config::parse("rollgate.toml", &body).unwrap();
    assert_eq!(config.services["fraud-scorer"].sticky.as_ref().unwrap().body.as_deref(), Some("/user"));
}
