//! Stand-ins for what a team has in production: model servers that can be
//! told to fail, and traffic from users. Used by `rollgate sim`, the demo,
//! the tests and the benchmarks.

pub mod model;
pub mod traffic;
