//! residency-proxy's server side: config, the request handler, the upstream client, the admin
//! listener and the commands. Policy lives in the `policy` crate and body reading in
//! `inspect`; this crate wires them to sockets.
//!
//! A request walks the phases of [`pipeline`]; read that module first, then [`handler`]
//! (`serve`) and [`explain`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod batch;
pub mod body;
pub mod catalog_cmd;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod explain;
pub mod framing;
pub mod handler;
pub mod headers;
pub mod identity;
pub mod metrics;
pub mod pipeline;
pub mod pool;
pub mod server;
pub mod snapshot;
pub mod status_page;
pub mod tls;
