//! The vidswarm node: the content-addressed fragment store, the libp2p swarm, fetching, and the
//! code behind the `vidswarm` CLI.
//!
//! - [`store`]: the data dir; the only code that touches it.
//! - [`net`]: the swarm (one event loop task) and the [`net::Client`] handle to it.
//! - [`fetch`]: downloading a video's fragments from many peers at once, verified per chunk.
//! - [`service`]: what a node does, as HTTP, the CLI and the node's tasks ask for it.
//! - [`node`]: a running node: store + swarm + service + announcer + auto-fetch; its shutdown.
//! - `control`: the swarm's lossless inputs to the node's tasks.
//! - [`availability`]: who holds what, from gossip.
//! - [`events`]: the node's event stream (demo log, progress bars, SSE, metrics).
//! - [`metrics`]: Prometheus metrics, libp2p's and the node's.
//! - [`http`]: the HTTP sidecar (axum, utoipa, Swagger UI).
//! - [`cli`]: argument parsing and the subcommands.
//! - `fuzz_api` (feature `fuzzing`): the way in for the fuzz targets in `fuzz/`.

pub mod availability;
pub mod cli;
mod control;
pub mod events;
pub mod fetch;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_api;
pub mod http;
pub mod metrics;
pub mod net;
pub mod node;
pub mod service;
pub mod store;
