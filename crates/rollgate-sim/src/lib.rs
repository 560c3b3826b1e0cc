//! Stand-ins for what a team has in production: model servers that can be
//! told to fail, and traffic from users. Used by `rollgate sim`, the demo,
//! the tests and the benchmarks; and rehearsals of a whole plan on a
//! virtual clock (`rehearse`, pure).

pub mod model;
pub mod rehearse;
pub mod traffic;
