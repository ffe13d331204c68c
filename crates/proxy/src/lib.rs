//! residency-proxy's server side: config, the request handler, the upstream client, the admin
//! listener and the commands. Policy lives in the `policy` crate and body reading in
//! `inspect`; this crate wires them to sockets.
//!
//! A request walks the phases of [`pipeline`]; read that module first, then [`handler`]
//! (`serve`) and [`explain`].
#![forbid(unsafe_code)]

/// The error type of every body and connection in the proxy.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

mod admin;
pub mod audit;
pub mod batch;
pub mod body;
mod body_checks;
mod budget;
mod catalog_cmd;
pub mod cli;
mod client;
pub mod config;
pub mod error;
pub mod evaluate;
mod explain;
pub mod framing;
mod handler;
mod headers;
pub mod identity;
mod include_edit;
mod keepalive;
pub mod metrics;
pub mod pipeline;
pub mod pool;
mod server;
mod shared;
pub mod snapshot;
mod status_page;
mod tls;
