//! The diarist WebSocket service: protocol v1 (`docs/PROTOCOL.md`) on `/v1/stream`, one shared
//! streaming engine for every session, HTTP health and Prometheus metrics beside it, and a
//! client that streams a recording to a server.
//!
//! Sessions hold no state outside their own task and stream, so several servers scale out behind
//! any TCP or HTTP load balancer.

pub mod checkpoint;
pub mod client;
pub mod config;
pub mod http;
pub mod logs;
pub mod protocol;
mod ready;
mod server;
mod session;
pub mod stitch;

pub use config::ServerConfig;
pub use server::{Server, serve_until_signalled};
pub use session::Redaction;
