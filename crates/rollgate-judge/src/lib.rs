//! rollgate's canary judge. Pure: it is fed measurements and a clock
//! reading, and answers with a verdict that carries its numbers.
//!
//! The statistics follow `shared/research/canary-statistics.md`: every
//! rate-like trigger (errors, slow requests, bad outputs, complaints) is a
//! conditional-binomial e-process on events attributed to canary or baseline
//! and tagged with the routing weight, so a shared drift cancels and the
//! false-rollback rate stays under the plan's budget however often the judge
//! looks. [`sim`] is the benchmark that compares it with the anchors' judges.

pub mod config;
pub mod dirichlet;
pub mod external;
pub mod judge;
mod latency;
pub mod mann_whitney;
pub mod pooled;
pub mod quantile;
pub mod ratio;
mod rng;
pub mod shadow;
pub mod trace;
pub mod watch;

pub use config::JudgeConfig;
pub use judge::{ArmTick, Judge, JudgeState, Report, Samples, Tick, TriggerReport, Verdict};
pub mod sim;
