//! `GET /metrics` in the Prometheus text format, from the `prometheus-client` crate.
//!
//! Counters are bumped where things happen; gauges (connections, sessions, rooms) are read at
//! scrape time from their owners, so they cannot drift.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

use crate::sharded;

/// One label: what kind of frame (`chat`, `legacy`, `typing`, `feed`, `invalid`, `binary`).
pub type KindLabel = [(&'static str, &'static str); 1];

pub fn kind(kind: &'static str) -> KindLabel {
    [("kind", kind)]
}

/// One label: which backplane operation (`release`, `typing`, `leave`, …).
pub fn op(op: &'static str) -> KindLabel {
    [("op", op)]
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Frames received on chat sessions, by kind.
    pub frames_in: Family<KindLabel, Counter>,
    /// Frames written to WebSocket clients (chat sessions): one add per batch by every writer,
    /// so sharded (see `sharded.rs`).
    pub frames_out: sharded::Counter,
    /// Chat messages durably stored.
    pub persisted: Counter,
    /// Frames refused by a rate limit.
    pub rate_limited: Counter,
    /// Clients dropped because their outbound queue overflowed.
    pub slow_consumers: Counter,
    /// Volatile data points not delivered to a reader that was behind (or replaying).
    pub volatile_dropped: Counter,
    /// Data publications through the server API, by delivery (`durable`, `latest`,
    /// `volatile`).
    pub data_published: Family<KindLabel, Counter>,
    /// Store requests that failed, by kind (`unavailable`, `rejected`, `corrupt`).
    pub store_errors: Family<KindLabel, Counter>,
    /// Backplane (Redis) requests that failed, by operation.
    pub backplane_errors: Family<KindLabel, Counter>,
    /// Chat sessions opened, by transport (`ws`, `sse`, `poll`).
    pub sessions_opened: Family<KindLabel, Counter>,
    /// Connections and refreshes whose user token was refused, by error code.
    pub auth_refused: Family<KindLabel, Counter>,
    /// Sessions closed because their user token expired without a refresh.
    pub tokens_expired: Counter,
    /// User tokens refreshed in band.
    pub tokens_refreshed: Counter,
    /// Seconds from a chat message's commit to its frame being flushed to a member's socket.
    /// Lock-free: observed for every chat frame delivered (see `sharded.rs`).
    pub delivery_seconds: sharded::Histogram,
    connections: Gauge,
    /// Open HTTP sessions, by transport (`sse`, `poll`).
    http_sessions: Family<KindLabel, Gauge>,
    sessions: Gauge,
    rooms: Gauge,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("switchboard");
        let m = Self {
            frames_in: Family::default(),
            frames_out: sharded::Counter::default(),
            persisted: Counter::default(),
            rate_limited: Counter::default(),
            slow_consumers: Counter::default(),
            volatile_dropped: Counter::default(),
            data_published: Family::default(),
            store_errors: Family::default(),
            backplane_errors: Family::default(),
            sessions_opened: Family::default(),
            auth_refused: Family::default(),
            tokens_expired: Counter::default(),
            tokens_refreshed: Counter::default(),
            // 50 µs .. ~1.6 s
            delivery_seconds: sharded::Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            connections: Gauge::default(),
            http_sessions: Family::default(),
            sessions: Gauge::default(),
            rooms: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "frames_in",
            "Frames received on chat sessions, by kind",
            m.frames_in.clone(),
        );
        registry.register(
            "frames_out",
            "Frames written to chat clients",
            m.frames_out.clone(),
        );
        registry.register(
            "messages_persisted",
            "Chat messages durably stored",
            m.persisted.clone(),
        );
        registry.register(
            "rate_limited",
            "Frames refused by a rate limit",
            m.rate_limited.clone(),
        );
        registry.register(
            "slow_consumers_dropped",
            "Clients dropped because their outbound queue overflowed",
            m.slow_consumers.clone(),
        );
        registry.register(
            "volatile_dropped",
            "Volatile data points not delivered to a reader that was behind",
            m.volatile_dropped.clone(),
        );
        registry.register(
            "data_published",
            "Data publications through the server API, by delivery",
            m.data_published.clone(),
        );
        registry.register(
            "store_errors",
            "History store requests that failed, by kind (unavailable, rejected, corrupt)",
            m.store_errors.clone(),
        );
        registry.register(
            "backplane_errors",
            "Redis backplane requests that failed, by operation",
            m.backplane_errors.clone(),
        );
        registry.register(
            "sessions_opened",
            "Chat sessions opened, by transport (ws, sse, poll)",
            m.sessions_opened.clone(),
        );
        registry.register(
            "auth_refused",
            "Connections and refreshes whose user token was refused, by error code",
            m.auth_refused.clone(),
        );
        registry.register(
            "tokens_expired",
            "Sessions closed because their user token expired without a refresh",
            m.tokens_expired.clone(),
        );
        registry.register(
            "tokens_refreshed",
            "User tokens refreshed in band",
            m.tokens_refreshed.clone(),
        );
        registry.register(
            "delivery_seconds",
            "From a chat message's commit to its frame flushed to a member",
            m.delivery_seconds.clone(),
        );
        registry.register(
            "connections",
            "Open connections: chat and echo WebSockets, SSE and long-polling sessions",
            m.connections.clone(),
        );
        registry.register(
            "http_sessions",
            "Open chat sessions over the HTTP transports, by transport (sse, poll)",
            m.http_sessions.clone(),
        );
        registry.register("sessions", "Chat sessions", m.sessions.clone());
        registry.register("rooms", "Rooms with members", m.rooms.clone());
        Arc::new(Self { registry, ..m })
    }

    /// Counts a failed store request of this kind ([`crate::store::StoreError::kind`]).
    pub fn store_error(&self, kind_of: &'static str) {
        self.store_errors.get_or_create(&kind(kind_of)).inc();
    }

    /// The text exposition, with the gauges set to the values given (`http`: open HTTP
    /// sessions by transport name).
    pub fn render(
        &self,
        connections: usize,
        sessions: usize,
        rooms: usize,
        http: &[(&'static str, usize)],
    ) -> String {
        for &(transport, open) in http {
            self.http_sessions
                .get_or_create(&kind(transport))
                .set(open as i64);
        }
        self.connections.set(connections as i64);
        self.sessions.set(sessions as i64);
        self.rooms.set(rooms as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
