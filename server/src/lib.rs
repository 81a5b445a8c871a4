//! # Switchboard server
//!
//! # Layout
//! Dependencies point one way: `routes` → `session` → `hub` → (`store`, and clustered, the
//! [`hub::Backplane`] it is handed); `cluster` sits beside them, holding the hub, the Redis
//! store and the backplane's other end, and calls into the hub, never the reverse. What other
//! nodes forward to this node's HTTP sessions, the cluster hands over through a channel that
//! `routes::http_session` reads: the cluster never calls into sessions or routes.
//! - [`config`] — `Settings`, every operator option with its default.
//! - [`app`] — `Application` (bind, wire the parts together, router, run until stopped,
//!   graceful shutdown).
//! - [`routes`] — `/ws` (chat: origin, caps and identity checked before the upgrade),
//!   `/v3/sse`, `/v3/poll`, `/v3/send` (`routes::http_session`: the same session where
//!   WebSockets do not get through, and the forwarding of polls and POSTs between nodes),
//!   `/echo`, `/healthz`, `/readyz`, `/metrics`, `/api` history; the client bundle is served
//!   at `/`.
//! - [`session`] — one chat session, whatever its transport: a reader over `Incoming` events
//!   and one bounded queue of `Outbound` frames; `session::v3` (protocol v3 commands: many
//!   rooms per connection), `session::ws` (the WebSocket adapter: frames in, bytes out, close
//!   handshake), `session::http` (the SSE and long-polling adapter: a numbered mailbox that
//!   streams and polls read, resumable by frame number).
//! - [`resume`] — what a reconnecting client gets replayed, and the outcome it is told.
//! - [`hub`] — rooms, each behind its own lock, one file per concept: the registry
//!   (`hub/mod.rs`), `names`, `presence`, `typing`, `delivery` (fan-out, slow consumers,
//!   replay hold-back), `stats`.
//! - [`store`] — the `Store` trait and durable per-room history: SQLite with group commit, or
//!   Redis Streams when clustered; `seq`, `epoch`, dedup, `Range` reads.
//! - [`cluster`] — several nodes on one Redis: fan-out, catch-up, presence and names, the
//!   typed messages between nodes, the watch on the history's epoch.
//! - [`redis_keys`] — every Redis key and channel, with what it holds.
//! - [`feed`] — the once-a-second live stats feed.
//! - [`listener`] — the accept loop, with hyper's header-read timeout (slowloris).
//! - [`metrics`] — `/metrics` (Prometheus text format); [`sharded`], the counter and histogram
//!   every writer updates without a lock or a cache line shared between cores.
//! - [`limits`] — Origin allowlist, connection caps, token buckets (per connection, per address).
//! - [`client_addr`] — the client's address, through trusted proxies (`--trusted-proxies`).
//! - [`kick`] — closing a session with a code from anywhere, and every session at a shutdown.
//! - [`telemetry`] — logging.

pub mod app;
pub mod auth;
pub mod client_addr;
pub mod cluster;
pub mod config;
pub mod feed;
pub mod hub;
pub mod kick;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod outbox;
pub mod redis_keys;
pub mod resume;
pub mod routes;
pub mod session;
pub mod sharded;
pub mod store;
pub mod telemetry;

pub use app::Application;
pub use config::Settings;
