//! rollgate's pure core: the plan a team deploys by, the rollout state
//! machine with its gates, the event records it is rebuilt from, and the
//! hash chain that makes the log tamper-evident.
//!
//! Nothing here touches the world: no sockets, files, threads, environment
//! or clock reads. Time comes in as an argument (see [`clock`]), which is
//! what lets a 48-hour rollout be tested in milliseconds.

pub mod archive;
pub mod audit;
pub mod clock;
pub mod config;
pub mod event;
pub mod hold;
pub mod markdown;
pub mod measure;
pub mod plan;
pub mod redact;
pub mod report;
pub mod retro;
pub mod roles;
pub mod rollout;
pub mod routing;
pub mod weight;
pub mod window;

pub use jiff::Timestamp;
