//! Evidence gates: named checks that must pass before a stage is left.
//! Each category (validation, documentation, …) starts from the gates our
//! users' guide lists; a plan can make them optional, set criteria, or add
//! gates of its own.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// One gate as a plan configures it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// A missing or failed required gate blocks the stage; an optional one is shown but never blocks.
    pub required: bool,
    pub description: String,
    /// Thresholds the evidence is judged against (e.g. `min_accuracy = 0.92`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub criteria: BTreeMap<String, f64>,
    /// Whose evidence counts: anyone's who may submit it, or only what rollgate recorded itself.
    #[serde(default, skip_serializing_if = "EvidenceSource::is_anyone")]
    pub source: EvidenceSource,
}

/// Whose evidence satisfies a gate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    /// Anyone allowed to submit evidence (a CI job, a person, rollgate).
    #[default]
    Anyone,
    /// Only evidence rollgate recorded itself (its probes, staging, shadow, post-deployment checks):
    /// evidence typed in by hand is kept in the log but does not pass the gate.
    Rollgate,
}

impl EvidenceSource {
    fn is_anyone(&self) -> bool {
        *self == EvidenceSource::Anyone
    }
}

/// What a plan may write for a gate: every field optional, merged over the default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GateOverride {
    required: Option<bool>,
    description: Option<String>,
    criteria: Option<BTreeMap<String, f64>>,
    source: Option<EvidenceSource>,
}

/// The built-in gates of one category.
pub trait GateCategory {
    const NAME: &'static str;
    /// (name, description) of each built-in gate, all required by default.
    const DEFAULTS: &'static [(&'static str, &'static str)];
}

/// The gates of one category, in the order they are listed.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSet<C> {
    gates: Vec<(String, GateSpec)>,
    category: PhantomData<C>,
}

impl<C: GateCategory> GateSet<C> {
    pub fn iter(&self) -> impl Iterator<Item = (String, &GateSpec)> {
        self.gates.iter().map(|(name, spec)| (format!("{}.{name}", C::NAME), spec))
    }

    pub fn get(&self, name: &str) -> Option<&GateSpec> {
        self.gates.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    fn apply(&mut self, name: String, patch: GateOverride) -> Result<(), String> {
        if let Some((_, spec)) = self.gates.iter_mut().find(|(n, _)| *n == name) {
            if let Some(required) = patch.required {
                spec.required = required;
            }
            if let Some(description) = patch.description {
                spec.description = description;
            }
            if let Some(criteria) = patch.criteria {
                spec.criteria = criteria;
            }
            if let Some(source) = patch.source {
                spec.source = source;
            }
            return Ok(());
        }
        // A new gate must say what it checks; this also catches typos of
        // built-in names, which would otherwise add a gate nobody feeds.
        let Some(description) = patch.description else {
            let known: Vec<&str> = C::DEFAULTS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown {} gate `{name}`: the built-in ones are {}; to add a gate of your own, give it a `description`",
                C::NAME,
                known.join(", ")
            ));
        };
        let spec = GateSpec {
            required: patch.required.unwrap_or(true),
            description,
            criteria: patch.criteria.unwrap_or_default(),
            source: patch.source.unwrap_or_default(),
        };
        self.gates.push((name, spec));
        Ok(())
    }
}

impl<C: GateCategory> Default for GateSet<C> {
    fn default() -> Self {
        let gates = C::DEFAULTS
            .iter()
            .map(|(name, description)| {
                let spec = GateSpec {
                    required: true,
                    description: (*description).to_string(),
                    criteria: BTreeMap::new(),
                    source: EvidenceSource::Anyone,
                };
                ((*name).to_string(), spec)
            })
            .collect();
        GateSet { gates, category: PhantomData }
    }
}

impl<C> Serialize for GateSet<C> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.gates.len()))?;
        for (name, spec) in &self.gates {
            map.serialize_entry(name, spec)?;
        }
        map.end()
    }
}

impl<'de, C: GateCategory> Deserialize<'de> for GateSet<C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SetVisitor<C>(PhantomData<C>);
        impl<'de, C: GateCategory> Visitor<'de> for SetVisitor<C> {
            type Value = GateSet<C>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a table of {} gates", C::NAME)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GateSet<C>, A::Error> {
                let mut set = GateSet::<C>::default();
                while let Some((name, patch)) = map.next_entry::<String, GateOverride>()? {
                    set.apply(name, patch).map_err(serde::de::Error::custom)?;
                }
                Ok(set)
            }
        }
        d.deserialize_map(SetVisitor(PhantomData))
    }
}

macro_rules! category {
    ($ty:ident, $name:literal, [$(($gate:literal, $desc:literal)),* $(,)?]) => {
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $ty;
        impl GateCategory for $ty {
            const NAME: &'static str = $name;
            const DEFAULTS: &'static [(&'static str, &'static str)] = &[$(($gate, $desc)),*];
        }
    };
}

category!(
    Validation,
    "validation",
    [
        ("performance", "Performance meets requirements"),
        ("bias", "Bias testing completed"),
        ("safety", "Safety testing passed"),
        ("edge_cases", "Edge cases evaluated"),
    ]
);
category!(
    Documentation,
    "documentation",
    [
        ("model_card", "Model card complete"),
        ("runbook", "Deployment runbook ready"),
        ("monitoring_plan", "Monitoring plan defined"),
        ("rollback_plan", "Rollback plan documented"),
    ]
);
category!(
    Infrastructure,
    "infrastructure",
    [
        ("endpoints_healthy", "Resources provisioned: candidate endpoints answer health checks"),
        ("scaling_declared", "Scaling configured"),
        ("monitoring_instrumented", "Monitoring instrumented: metrics flowing for the candidate"),
        ("logging_enabled", "Logging enabled"),
    ]
);
category!(
    StagingTests,
    "staging",
    [
        ("functional_tests", "Functional tests pass (all tests pass)"),
        ("performance_under_load", "Performance under realistic load is acceptable"),
        ("integration", "Integration with dependencies works"),
        ("error_handling", "Error handling works: malformed inputs, slow or failing dependencies"),
        ("monitoring_captures_issues", "Monitoring captures issues: the fault drill was detected"),
        ("rollback_drill", "Rollback verified in staging and timed"),
        ("no_blocking_issues", "No blocking issues open"),
    ]
);
category!(
    ShadowChecks,
    "shadow",
    [
        ("output_agreement", "Output quality compared with production"),
        ("performance", "Performance compared with production"),
        ("error_patterns", "Error patterns and edge-case handling compared with production"),
    ]
);
category!(PostDeployment, "post_deployment", [("metrics_stable", "All metrics stable within acceptable ranges"),]);

/// Ids of the built-in gates that rollgate itself records evidence for, so
/// that the shell names them by constant, never by a string it could misspell.
pub mod ids {
    pub const STAGING_FUNCTIONAL_TESTS: &str = "staging.functional_tests";
    pub const STAGING_PERFORMANCE_UNDER_LOAD: &str = "staging.performance_under_load";
    pub const STAGING_INTEGRATION: &str = "staging.integration";
    pub const STAGING_ERROR_HANDLING: &str = "staging.error_handling";
    pub const STAGING_MONITORING_CAPTURES_ISSUES: &str = "staging.monitoring_captures_issues";
    pub const STAGING_ROLLBACK_DRILL: &str = "staging.rollback_drill";
    pub const STAGING_NO_BLOCKING_ISSUES: &str = "staging.no_blocking_issues";

    pub const SHADOW_OUTPUT_AGREEMENT: &str = "shadow.output_agreement";
    pub const SHADOW_PERFORMANCE: &str = "shadow.performance";
    pub const SHADOW_ERROR_PATTERNS: &str = "shadow.error_patterns";

    pub const POST_DEPLOYMENT_METRICS_STABLE: &str = "post_deployment.metrics_stable";
    pub const DOCUMENTATION_MONITORING_PLAN: &str = "documentation.monitoring_plan";

    /// The staging run's gates.
    pub const STAGING: [&str; 7] = [
        STAGING_FUNCTIONAL_TESTS,
        STAGING_PERFORMANCE_UNDER_LOAD,
        STAGING_INTEGRATION,
        STAGING_ERROR_HANDLING,
        STAGING_MONITORING_CAPTURES_ISSUES,
        STAGING_ROLLBACK_DRILL,
        STAGING_NO_BLOCKING_ISSUES,
    ];
    /// The shadow comparison's gates.
    pub const SHADOW: [&str; 3] = [SHADOW_OUTPUT_AGREEMENT, SHADOW_PERFORMANCE, SHADOW_ERROR_PATTERNS];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_merge_over_the_built_in_gates() {
        let set: GateSet<Validation> = toml::from_str(
            r#"
            bias = { required = false }
            performance = { criteria = { min_accuracy = 0.92 } }
            calibration = { description = "Calibration error below 0.05" }
            "#,
        )
        .unwrap();
        let ids: Vec<String> = set.iter().map(|(id, _)| id).collect();
        assert_eq!(
            ids,
            [
                "validation.performance",
                "validation.bias",
                "validation.safety",
                "validation.edge_cases",
                "validation.calibration"
            ]
        );
        assert!(!set.get("bias").unwrap().required);
        assert_eq!(set.get("performance").unwrap().criteria["min_accuracy"], 0.92);
        assert_eq!(set.get("performance").unwrap().description, "Performance meets requirements");
    }

    #[test]
    fn a_misspelt_gate_is_an_error_naming_the_real_ones() {
        let err = toml::from_str::<GateSet<Validation>>("perfromance = { required = false }").unwrap_err();
        assert!(err.message().contains("unknown validation gate `perfromance`"), "{err}");
        assert!(err.message().contains("performance, bias, safety, edge_cases"), "{err}");
    }

    #[test]
    fn every_gate_id_constant_names_a_built_in_gate() {
        let plan = crate::plan::Plan::default();
        for id in ids::STAGING.iter().chain(&ids::SHADOW) {
            assert!(plan.gate(id).is_some(), "{id} is not a gate of the default plan");
        }
    }

    #[test]
    fn serialized_sets_read_back_identically() {
        let set = GateSet::<StagingTests>::default();
        let text = toml::to_string(&set).unwrap();
        assert_eq!(toml::from_str::<GateSet<StagingTests>>(&text).unwrap(), set);
    }
}
