//! # Switchboard server
//!
//! # Layout
//! - [`config`] — `Settings`, every operator option with its default.
//! - [`app`] — `Application` (bind, router, run until stopped, graceful shutdown).
//! - [`routes`] — `/ws` (chat), `/echo`, `/healthz`; the client bundle is served at `/`.
//! - [`resume`] — what a reconnecting client gets replayed, and the outcome it is told.
//! - [`session`] — one chat WebSocket: validation, reader loop, writer task, heartbeat.
//! - [`hub`] — rooms, names held by tokens, presence, typing, fan-out through bounded
//!   per-session queues (one file per concept).
//! - [`store`] — durable per-room history (SQLite with group commit, or Redis Streams when
//!   clustered), `seq`, `epoch`, dedup.
//! - [`cluster`] — several nodes on one Redis: fan-out, catch-up, presence and names; the typed
//!   messages between nodes.
//! - [`redis_keys`] — every Redis key and channel, with what it holds.
//! - [`feed`] — the once-a-second live stats feed.
//! - [`listener`] — the accept loop, with hyper's header-read timeout (slowloris).
//! - [`metrics`] — `/metrics` (Prometheus text format).
//! - [`limits`] — Origin allowlist, connection caps, token buckets (per connection, per address).
//! - [`client_addr`] — the client's address, through trusted proxies (`--trusted-proxies`).
//! - [`kick`] — closing a session with a code from anywhere.
//! - [`telemetry`] — logging.

pub mod app;
pub mod client_addr;
pub mod cluster;
pub mod config;
pub mod feed;
pub mod hub;
pub mod kick;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod redis_keys;
pub mod resume;
pub mod routes;
pub mod session;
pub mod store;
pub mod telemetry;

pub use app::Application;
pub use config::Settings;
