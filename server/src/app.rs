//! Start-up: bind, build the router, run until a shutdown signal, then close every session
//! with 1001 and wait for the writers (with a deadline).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, header};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};

use crate::cluster::{self, Cluster};
use crate::config::Settings;
use crate::hub::Hub;
use crate::kick::Kicks;
use crate::limits::{AddressLimiter, ConnectionLimiter, OriginPolicy};
use crate::metrics::Metrics;
use crate::routes::relay::Relay;
use crate::routes::{self, AppState};
use crate::store::redis::RedisStore;
use crate::store::sqlite::{RoomInUse, SqliteStore};
use crate::store::{CommitListener, Store};

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// The state every handler shares (for tests that drive a session without a socket).
    #[cfg(test)]
    pub(crate) fn state(&self) -> &AppState {
        &self.state
    }

    /// Binds the listener (port 0 picks a free port) and builds the router.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate().map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("binding {}", settings.bind))?;
        let local = listener.local_addr()?;
        let metrics = Metrics::new();
        // Clustered, the hub tells the other nodes through a backplane it is handed now; the
        // cluster started below reads the other end.
        let (backplane, events) = settings.redis().map(|_| cluster::backplane()).unzip();
        let hub = Hub::new(
            settings.stats_history,
            settings.name_grace(),
            settings.outbound_queue.max(64) * 4,
            metrics.clone(),
            backplane,
            settings.presence(),
        );
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        // Clustered: what other nodes forward to this node's HTTP sessions.
        let (forward_tx, forward_rx) = tokio::sync::mpsc::unbounded_channel();
        let (store, cluster): (Arc<dyn Store>, _) = match settings.redis() {
            Some(config) => {
                let store = Arc::new(
                    RedisStore::connect(config)
                        .await
                        .context("connecting to Redis (--redis-url)")?,
                );
                tracing::info!(epoch = store.epoch(), "history store ready (Redis)");
                let cluster = Cluster::start(
                    store.clone(),
                    hub.clone(),
                    events.expect("made with the backplane"),
                    settings.presence_ttl(),
                    shutdown.clone(),
                    &tracker,
                    forward_tx.clone(),
                );
                (store, Some(cluster))
            }
            None => {
                let on_commit: CommitListener = {
                    let hub = hub.clone();
                    Arc::new(move |messages| hub.publish_committed(messages))
                };
                let in_use: RoomInUse = {
                    let hub = hub.clone();
                    Arc::new(move |room| hub.room_in_use(room))
                };
                let store =
                    SqliteStore::open(&settings.db, settings.retention(), on_commit, in_use)
                        .with_context(|| {
                            format!("opening the history database {}", settings.db.display())
                        })?;
                tracing::info!(db = %settings.db.display(), epoch = store.epoch(), "history store ready");
                (Arc::new(store), None)
            }
        };
        let auth = settings
            .verifier()
            .map_err(anyhow::Error::msg)?
            .map(Arc::new);
        let state = AppState {
            auth,
            hub,
            store,
            cluster,
            metrics,
            http_sessions: Arc::default(),
            relay: Arc::new(Relay::new(settings.outbound_queue)),
            origins: Arc::new(OriginPolicy::new(&settings.allowed_origins, local)),
            limiter: ConnectionLimiter::new(
                settings.max_connections,
                settings.max_connections_per_ip,
            ),
            proxies: Arc::new(settings.trusted_proxies()),
            api_limiter: Arc::new(AddressLimiter::new(
                settings.api_rate_per_sec,
                settings.api_rate_burst,
            )),
            settings: Arc::new(settings),
            shutdown,
            kicks: Kicks::default(),
            tracker,
        };
        if state.cluster.is_some() {
            state.tracker.spawn(routes::http_session::serve_forwarded(
                forward_rx,
                state.clone(),
            ));
        }
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Cancelling this token stops the server as a signal would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until `stop` resolves or the shutdown token is cancelled.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            state,
        } = self;
        let shutdown = state.shutdown.clone();
        tokio::spawn({
            let shutdown = shutdown.clone();
            let kicks = state.kicks.clone();
            async move {
                tokio::select! {
                    () = stop => shutdown.cancel(),
                    () = shutdown.cancelled() => {}
                }
                // Sessions learn of it through their kicks, not by polling the token.
                kicks.shut_down();
            }
        });
        let feed = tokio::spawn(crate::feed::run(state.hub.clone(), shutdown.clone()));

        // Upgraded connections hear of the shutdown through their kicks (`kicks.shut_down`
        // above); they and the HTTP connections are all in the tracker waited for below.
        let header_timeout = Duration::from_secs(state.settings.handshake_timeout_secs);
        crate::listener::serve(
            listener,
            router,
            header_timeout,
            shutdown.clone(),
            state.tracker.clone(),
        )
        .await;

        state.tracker.close();
        let grace = state.settings.shutdown_grace();
        if tokio::time::timeout(grace, state.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = state.tracker.len(),
                "shutdown deadline passed; dropping sessions"
            );
        }
        feed.abort();
        tracing::info!("stopped");
        Ok(())
    }
}

/// The client's page with `<meta name="switchboard-token-url" content=url>` added to its head
/// (`None` if there is no page to serve).
fn page_with_token_url(index: &std::path::Path, url: &str) -> Option<String> {
    let html = std::fs::read_to_string(index).ok()?;
    let escaped: String = url
        .chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let meta = format!("<meta name=\"switchboard-token-url\" content=\"{escaped}\" />\n");
    let at = html.find("</head>")?;
    Some(format!("{}{meta}{}", &html[..at], &html[at..]))
}

fn router(state: AppState) -> Router {
    let static_dir = state.settings.static_dir.clone();
    let index = static_dir.join("index.html");
    if !index.exists() {
        tracing::warn!(
            dir = %static_dir.display(),
            "no client bundle (index.html) found; serving the API only. Build it with `trunk build --release`"
        );
    }
    // With `--jwt-token-url`, the page tells the client where to get user tokens: it is read
    // once and served with the meta tag written in (for `/`, `/index.html` and every client
    // route); everything else comes from the directory as is.
    let page = state
        .settings
        .jwt_token_url
        .as_deref()
        .and_then(|url| page_with_token_url(&index, url));
    // A client bundle served from another host calls the API cross-origin: allow the same
    // origins that may open WebSockets.
    let origins = state.origins.clone();
    let cors = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
        ])
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.allows(origin.to_str().ok())
        }));
    let body_limit = routes::http_session::send_body_limit(state.settings.max_message_bytes);
    let api = Router::new()
        .route("/api/rooms/{room}/messages", get(routes::history::handler))
        .route(
            "/api/v1/rooms/{room}/messages",
            post(routes::api_v1::post_message),
        )
        .route(
            "/api/v1/rooms/{room}/data",
            post(routes::api_data::post_data),
        )
        .route("/api/v1/rooms", get(routes::api_v1::rooms))
        .route("/api/v1/broadcast", post(routes::api_v1::broadcast))
        .route("/api/v1/openapi.json", get(routes::api_v1::openapi))
        .route("/api/v1/rooms/{room}/members", get(routes::api_v1::members))
        .route(
            "/api/v1/users/{sub}/disconnect",
            post(routes::api_v1::disconnect_user),
        )
        .route("/v3/sse", get(routes::http_session::sse))
        .route("/v3/poll", post(routes::http_session::poll))
        .route("/v3/send", post(routes::http_session::send))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(cors);
    let router = Router::new()
        .route("/ws", get(routes::ws::handler))
        .route("/echo", get(routes::echo::handler))
        .route("/healthz", get(routes::health::handler))
        .route("/readyz", get(routes::health::ready))
        .route("/metrics", get(routes::metrics::handler))
        .route("/relay", get(routes::relay::handler))
        .merge(api);
    let router = match page {
        Some(page) => {
            let page = axum::response::Html(page);
            let serve = move || std::future::ready(page.clone());
            let fallback: axum::routing::MethodRouter = get(serve.clone());
            router
                .route("/", get(serve.clone()))
                .route("/index.html", get(serve))
                .fallback_service(
                    ServeDir::new(&static_dir)
                        .append_index_html_on_directories(false)
                        .fallback(fallback),
                )
        }
        None => router.fallback_service(ServeDir::new(&static_dir).fallback(ServeFile::new(index))),
    };
    router.layer(CompressionLayer::new()).with_state(state)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
