//! rollgate's data plane: an HTTP gateway in front of the model servers.
//! It routes each request to a service, splits traffic between versions by
//! weight (sticky per user, with nginx's hash), streams answers back
//! unbuffered, measures every version, and applies a new route table to the
//! very next request.

mod body;
pub mod capture;
mod feedback;
pub mod health;
pub mod mirror;
mod proxy;
mod server;
pub mod stats;
pub mod sticky;
pub mod table;
pub mod tls;
pub mod tokens;
mod upstream;

pub use proxy::{GATEWAY_ERROR, Gateway, REQUEST_ID, SERVED_BY};
pub use server::{RunningGateway, serve, serve_on_threads};
