//! Pre-deployment validation, pure: what a suite is (a manifest and JSONL
//! cases), the metrics computed from a run's answers (performance per
//! fairlearn's and scikit-learn's definitions, bias across groups), the
//! intervals around them, the thresholds judged against those intervals (a
//! small suite cannot pass by luck: it is "too small to decide"), and the
//! report in JSON, text and JUnit XML. The CLI sends the cases and hands the
//! answers in.

pub mod bias;
pub mod docs;
pub mod edge;
pub mod interval;
pub mod junit;
pub mod markdown;
pub mod metrics;
pub mod report;
pub mod safety;
pub mod suite;
