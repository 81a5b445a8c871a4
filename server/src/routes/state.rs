//! What every handler shares: the parts of the running server, wired by [`crate::app`].

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::relay::Relay;
use crate::client_addr::{ClientAddr, TrustedProxies};
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::hub::Hub;
use crate::kick::Kicks;
use crate::limits::{AddressLimiter, ConnectionLimiter, ConnectionPermit, OriginPolicy};
use crate::metrics::Metrics;
use crate::session::http::HttpSessions;
use crate::session::{Negotiated, SessionParams};
use crate::store::Store;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub store: Arc<dyn Store>,
    /// Set when clustered (`--redis-url`).
    pub cluster: Option<Arc<Cluster>>,
    pub metrics: Arc<Metrics>,
    /// The sessions carried by SSE or long-polling on this node.
    pub http_sessions: Arc<HttpSessions>,
    /// The benchmarks' raw relay (`--bench-relay`).
    pub relay: Arc<Relay>,
    pub settings: Arc<Settings>,
    pub origins: Arc<OriginPolicy>,
    pub limiter: Arc<ConnectionLimiter>,
    /// Whose forwarding headers name the client (`--trusted-proxies`).
    pub proxies: Arc<TrustedProxies>,
    /// Checks signed user tokens, when they are on (`--jwt-*`).
    pub auth: Option<Arc<crate::auth::Verifier>>,
    /// The HTTP API's rate limit, per client address.
    pub api_limiter: Arc<AddressLimiter>,
    /// Cancelled on SIGINT/SIGTERM: the listener stops, and `kicks` is shut down.
    pub shutdown: CancellationToken,
    /// Every session's kick: a shutdown wakes them all, and they send close 1001 and end.
    pub kicks: Kicks,
    /// Every session and writer task, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

impl AppState {
    /// A new session's parameters from the server's parts, counted as opened over `transport`
    /// (`ws`, `sse`, `poll`). Who connects (room, name, token, position) is left empty and the
    /// feed on, for the caller to fill in.
    /// Checks a connection's signed user token when tokens are on: `Ok(None)` in anonymous
    /// mode, the user otherwise.
    pub fn authenticate(
        &self,
        token: Option<&str>,
    ) -> Result<Option<crate::auth::User>, crate::auth::Refused> {
        match &self.auth {
            None => Ok(None),
            Some(verifier) => {
                let user = verifier
                    .verify(token)
                    .and_then(|user| self.hub.users.not_signed_out(user));
                if let Err(refused) = &user {
                    self.metrics
                        .auth_refused
                        .get_or_create(&crate::metrics::kind(refused.code.name()))
                        .inc();
                }
                user.map(Some)
            }
        }
    }

    pub fn session_params(
        &self,
        peer: ClientAddr,
        permit: ConnectionPermit,
        protocol: Negotiated,
        transport: &'static str,
    ) -> SessionParams {
        self.metrics
            .sessions_opened
            .get_or_create(&crate::metrics::kind(transport))
            .inc();
        SessionParams {
            hub: self.hub.clone(),
            settings: self.settings.clone(),
            peer,
            room: None,
            name: None,
            token: None,
            user: None,
            auth: self.auth.clone(),
            position: None,
            feed: true,
            store: self.store.clone(),
            cluster: self.cluster.clone(),
            metrics: self.metrics.clone(),
            kicks: self.kicks.clone(),
            tracker: self.tracker.clone(),
            permit,
            protocol,
        }
    }

    /// Applies the WebSocket limits and small buffers to an upgrade.
    pub fn configure(&self, upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
        let s = &self.settings;
        upgrade
            .read_buffer_size(s.read_buffer_bytes)
            .write_buffer_size(s.write_buffer_bytes)
            // Writers flush after every burst, so the buffer only grows while a write is
            // pending; bound it so a stuck peer cannot hold unbounded memory.
            .max_write_buffer_size(s.write_buffer_bytes + 2 * s.max_message_bytes.max(64 * 1024))
            .max_message_size(s.max_message_bytes)
            .max_frame_size(s.max_message_bytes)
    }
}
