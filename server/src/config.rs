//! Operator settings. Every option has a flag, an environment variable and a documented default;
//! `server --help` prints them all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use clap::builder::RangedU64ValueParser;

use crate::client_addr::{Cidr, TrustedProxies};

/// A `usize` option with a lower bound; below it, clap names the option and exits with 2.
fn at_least(min: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(min..)
}

/// A length limit in characters: 1 to `ceiling` (what the type deserializes with).
fn chars_up_to(ceiling: usize) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=ceiling as u64)
}

/// Switchboard: real-time chat and live data over WebSockets.
#[derive(Debug, Clone, Parser)]
#[command(name = "server", version, about)]
pub struct Settings {
    /// Address to listen on. Use port 0 to let the OS pick one (the chosen address is logged
    /// and printed as `listening on http://ADDR`).
    #[arg(long, env = "SWITCHBOARD_BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// Directory holding the built client bundle (`trunk build --release` writes `dist/`).
    /// Served at `/` with a fallback to `index.html`. Missing directory: only the API is served.
    #[arg(long, env = "SWITCHBOARD_STATIC_DIR", default_value = "dist")]
    pub static_dir: PathBuf,

    /// Origins allowed to open WebSockets, comma-separated (`*` allows any). Requests without
    /// an Origin header (non-browser clients) are always allowed. Default: the server's own
    /// origin (`http://<bind>`, plus `localhost` for a loopback bind) and the trunk dev server
    /// origins `http://127.0.0.1:8080` and `http://localhost:8080`.
    #[arg(long, env = "SWITCHBOARD_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Largest WebSocket message (and frame) accepted, in bytes. Bigger: close 1009.
    #[arg(long, env = "SWITCHBOARD_MAX_MESSAGE_BYTES", value_parser = at_least(128), default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,

    /// Longest chat message, in characters (at most 100,000). Longer: a `text_invalid` error.
    #[arg(long, env = "SWITCHBOARD_MAX_TEXT_CHARS", value_parser = chars_up_to(shared::MessageText::CEILING), default_value_t = shared::MessageText::DEFAULT_MAX_CHARS)]
    pub max_text_chars: usize,

    /// Longest name, in characters, after trimming (at most 64).
    #[arg(long, env = "SWITCHBOARD_MAX_NAME_CHARS", value_parser = chars_up_to(shared::Username::CEILING), default_value_t = shared::Username::DEFAULT_MAX_CHARS)]
    pub max_name_chars: usize,

    /// Sustained messages per second per connection (token bucket refill rate).
    #[arg(long, env = "SWITCHBOARD_RATE_PER_SEC", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 10)]
    pub rate_per_sec: u32,

    /// Messages a connection may send in a burst on top of the sustained rate (bucket size).
    #[arg(long, env = "SWITCHBOARD_RATE_BURST", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 20)]
    pub rate_burst: u32,

    /// Sustained typing notices and feed switches per second per connection (their own bucket,
    /// so typing never eats into the chat budget).
    #[arg(long, env = "SWITCHBOARD_CONTROL_RATE_PER_SEC", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 5)]
    pub control_rate_per_sec: u32,

    /// Burst of typing notices and feed switches on top of their sustained rate.
    #[arg(long, env = "SWITCHBOARD_CONTROL_RATE_BURST", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 10)]
    pub control_rate_burst: u32,

    /// Protocol v3: sustained joins per second per connection (their own bucket: a join
    /// announces the member and replays history, so churn costs the room far more than a
    /// message). Leaves are never limited: they only lighten the load.
    #[arg(long, env = "SWITCHBOARD_JOIN_RATE_PER_SEC", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 2)]
    pub join_rate_per_sec: u32,

    /// Burst of joins: a reconnecting client joins all its rooms again at once, so it must be
    /// at least `--max-rooms-per-connection` (checked at start).
    #[arg(long, env = "SWITCHBOARD_JOIN_RATE_BURST", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 32)]
    pub join_rate_burst: u32,

    /// Consecutive rate-limited frames after which the connection is closed with 1008.
    #[arg(long, env = "SWITCHBOARD_RATE_ABUSE_LIMIT", value_parser = clap::value_parser!(u32).range(1..), default_value_t = 50)]
    pub rate_abuse_limit: u32,

    /// Seconds between server pings.
    #[arg(
        long,
        env = "SWITCHBOARD_HEARTBEAT_INTERVAL_SECS", value_parser = clap::value_parser!(u64).range(1..),
        default_value_t = 15
    )]
    pub heartbeat_interval_secs: u64,

    /// Seconds of silence, beyond one heartbeat interval, after which a peer is closed.
    #[arg(long, env = "SWITCHBOARD_HEARTBEAT_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..), default_value_t = 10)]
    pub heartbeat_timeout_secs: u64,

    /// Frames queued for one connection before it counts as a slow consumer and is closed
    /// with 4429 (the room never waits for it).
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_QUEUE", value_parser = at_least(2), default_value_t = 256)]
    pub outbound_queue: usize,

    /// Most bytes one WebSocket read takes from a socket. Reads go into a scratch buffer per
    /// thread; a connection keeps only an unfinished frame, so an idle one holds no buffer.
    #[arg(long, env = "SWITCHBOARD_READ_BUFFER_BYTES", value_parser = at_least(256), default_value_t = 2 * 1024)]
    pub read_buffer_bytes: usize,

    /// Bytes buffered before a write reaches the socket (writers flush after each burst anyway;
    /// the buffer is released once written out).
    #[arg(long, env = "SWITCHBOARD_WRITE_BUFFER_BYTES", default_value_t = 8 * 1024)]
    pub write_buffer_bytes: usize,

    /// Seconds a client has to send its complete HTTP request headers (per request, also while
    /// a keep-alive connection idles); slower connections are closed (slowloris protection).
    #[arg(long, env = "SWITCHBOARD_HANDSHAKE_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..), default_value_t = 10)]
    pub handshake_timeout_secs: u64,

    /// Proxies (load balancers) whose `Forwarded` / `X-Forwarded-For` headers name the client,
    /// as comma-separated addresses or CIDR blocks (`10.0.0.0/8,fd00::/8`). Only a connection
    /// from one of these has its client address taken from the headers (for per-IP caps, rate
    /// limits, logs and the welcome); from anyone else the headers are ignored. Default: none.
    #[arg(long, env = "SWITCHBOARD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<Cidr>,

    /// Sustained requests per second per client address to the HTTP API (`/api/…`).
    #[arg(long, env = "SWITCHBOARD_API_RATE_PER_SEC", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_rate_per_sec: u32,

    /// Burst of HTTP API requests per client address on top of the sustained rate.
    #[arg(long, env = "SWITCHBOARD_API_RATE_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_rate_burst: u32,

    /// Keys of the server API (`/api/v1`, for the app's backend), comma-separated so that a
    /// new key can be added before the old one is retired. Requests carry
    /// `Authorization: Bearer <key>`. None (the default): the server API is off (404).
    #[arg(
        long = "api-key",
        env = "SWITCHBOARD_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// Signed user tokens (JWT, HS256) with this shared secret (at least 32 bytes): every
    /// connection must then carry `?access_token=`, and names come from the tokens. Off by
    /// default (anonymous mode). Exclusive with `--jwt-public-key`.
    #[arg(
        long,
        env = "SWITCHBOARD_JWT_HS256_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_public_key"
    )]
    pub jwt_hs256_secret: Option<String>,

    /// Signed user tokens checked with this public key (a PEM file): RS256 for an RSA key,
    /// ES256 / ES384 for a P-256 / P-384 key, EdDSA for an Ed25519 key. Only the key's
    /// algorithm is accepted. Off by default.
    #[arg(long, env = "SWITCHBOARD_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Signed user tokens must name this audience in `aud` (as an identity provider issues
    /// tokens for several apps). Default: `aud` is not checked.
    #[arg(long, env = "SWITCHBOARD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Signed user tokens must carry this `iss`. Default: `iss` is not checked.
    #[arg(long, env = "SWITCHBOARD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Clock skew tolerated on a token's `exp`, `nbf` and `iat`, in seconds.
    #[arg(long, env = "SWITCHBOARD_JWT_LEEWAY_SECS", default_value_t = 5)]
    pub jwt_leeway_secs: u64,

    /// How long before its token expires a session is sent `token_expiring`, in seconds (a
    /// token that lives less than this gets it at once).
    #[arg(
        long,
        env = "SWITCHBOARD_JWT_REFRESH_WINDOW_SECS",
        default_value_t = 60
    )]
    pub jwt_refresh_window_secs: u64,

    /// Where the stock client fetches a fresh user token (GET, with the browser's cookies):
    /// written into the served page as `<meta name="switchboard-token-url">`. A page hosted
    /// elsewhere sets the meta tag itself. Default: none.
    #[arg(long, env = "SWITCHBOARD_JWT_TOKEN_URL")]
    pub jwt_token_url: Option<String>,

    /// Protocol v3: most rooms one connection may join at once; more get `join_refused`
    /// with `too_many_rooms`.
    #[arg(long, env = "SWITCHBOARD_MAX_ROOMS_PER_CONNECTION", default_value_t = 32, value_parser = at_least(1))]
    pub max_rooms_per_connection: usize,

    /// Most WebSocket connections open at once; more get 503.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", value_parser = at_least(1), default_value_t = 20_000)]
    pub max_connections: usize,

    /// Most WebSocket connections open at once from one IP address; more get 429.
    #[arg(
        long,
        env = "SWITCHBOARD_MAX_CONNECTIONS_PER_IP", value_parser = at_least(1),
        default_value_t = 256
    )]
    pub max_connections_per_ip: usize,

    /// Points of live-feed history sent in the welcome (one per second).
    #[arg(long, env = "SWITCHBOARD_STATS_HISTORY", default_value_t = 60)]
    pub stats_history: usize,

    /// Serve `GET /relay`, a raw broadcast of every frame to all other relay clients, for the
    /// benchmarks' comparison with other servers. Off by default (it is unauthenticated).
    #[arg(long, env = "SWITCHBOARD_BENCH_RELAY")]
    pub bench_relay: bool,

    /// The SQLite history database (created with its directory if missing).
    #[arg(long, env = "SWITCHBOARD_DB", default_value = "switchboard.db")]
    pub db: PathBuf,

    /// Messages sent to a client joining a room for the first time (no position given).
    #[arg(long, env = "SWITCHBOARD_HISTORY_ON_JOIN", default_value_t = 50)]
    pub history_on_join: u64,

    /// Messages kept per room; older ones are deleted as new ones arrive (0: no limit).
    #[arg(
        long,
        env = "SWITCHBOARD_RETENTION_MAX_MESSAGES",
        default_value_t = 100_000
    )]
    pub retention_max_messages: u64,

    /// Messages older than this many seconds are deleted (0: no limit; default 30 days).
    #[arg(long, env = "SWITCHBOARD_RETENTION_MAX_AGE_SECS", default_value_t = 30 * 24 * 3600)]
    pub retention_max_age_secs: u64,

    /// Seconds a name stays held after its holder's last connection goes, so a reconnect keeps
    /// it and presence does not flicker.
    #[arg(long, env = "SWITCHBOARD_NAME_GRACE_SECS", default_value_t = 30)]
    pub name_grace_secs: u64,

    /// Largest page of `GET /api/rooms/{room}/messages`.
    #[arg(long, env = "SWITCHBOARD_MAX_HISTORY_PAGE", value_parser = at_least(1), default_value_t = 200)]
    pub max_history_page: usize,

    /// On SIGINT/SIGTERM, how long to wait for sessions to send close 1001 and finish.
    #[arg(long, env = "SWITCHBOARD_SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,

    /// Run as one node of a cluster: history, fan-out, presence and names live in this Redis
    /// server (e.g. `redis://127.0.0.1:6379/`) instead of SQLite and this process. Unset: one
    /// node with SQLite. The no-loss promise needs Redis with `appendonly yes` and
    /// `appendfsync always` (see README).
    #[arg(long, env = "SWITCHBOARD_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Milliseconds between a room's presence announcements: the first change after a quiet
    /// spell goes out at once, the changes within this interval after it go out together
    /// (one `presence_batch` frame). 0 announces every change at once.
    #[arg(long, env = "SWITCHBOARD_PRESENCE_INTERVAL_MS", value_parser = clap::value_parser!(u64).range(0..=60_000), default_value_t = 100)]
    pub presence_interval_ms: u64,

    /// Rooms with more members than this announce their member count instead of each
    /// member's arrival and departure, and send joiners the first page of members only (the
    /// rest is paged with the `members` command): N members joining then cost O(N) frames.
    /// Such a room announces at most once per presence interval times how many times this
    /// limit it holds (10,000 members: once a second with the defaults).
    #[arg(long, env = "SWITCHBOARD_PRESENCE_LIST_MAX", value_parser = at_least(1), default_value_t = 1000)]
    pub presence_list_max: usize,

    /// Members per page of a room's member list (`members` command, and what a joiner of a
    /// room too large to list gets).
    #[arg(long, env = "SWITCHBOARD_MEMBERS_PAGE", value_parser = at_least(1), default_value_t = 100)]
    pub members_page: usize,

    /// Clustered: seconds a node's presence entry and name claims live without a refresh (each
    /// node refreshes every third of it). A crashed node's members leave within this plus one
    /// refresh interval (TTL + TTL/3).
    #[arg(long, env = "SWITCHBOARD_PRESENCE_TTL_SECS", value_parser = clap::value_parser!(u64).range(1..), default_value_t = 10)]
    pub presence_ttl_secs: u64,

    /// Clustered: seconds an append keeps retrying while Redis is unreachable before the client
    /// is told to send the message again (it stays in the client's outbox meanwhile).
    #[arg(long, env = "SWITCHBOARD_STORE_RETRY_SECS", default_value_t = 10)]
    pub store_retry_secs: u64,

    /// Clustered: seconds a message id is remembered for dedup (SQLite remembers while the
    /// message is kept).
    #[arg(long, env = "SWITCHBOARD_DEDUP_TTL_SECS", value_parser = clap::value_parser!(u64).range(1..), default_value_t = 24 * 3600)]
    pub dedup_ttl_secs: u64,
}

impl Settings {
    /// Defaults for everything, listening on `bind`. Used by tests (`127.0.0.1:0`).
    pub fn with_bind(bind: SocketAddr) -> Self {
        let mut settings = Self::parse_from(["server"]);
        settings.bind = bind;
        settings
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat_interval_secs)
    }

    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs(self.heartbeat_timeout_secs)
    }

    pub fn name_grace(&self) -> Duration {
        Duration::from_secs(self.name_grace_secs)
    }

    /// How the hub announces presence.
    pub fn presence(&self) -> crate::hub::PresenceOptions {
        crate::hub::PresenceOptions {
            interval: Duration::from_millis(self.presence_interval_ms),
            list_max: self.presence_list_max,
            page: self.members_page,
        }
    }

    pub fn retention(&self) -> crate::store::Retention {
        crate::store::Retention {
            max_messages: self.retention_max_messages,
            max_age_ms: self.retention_max_age_secs.saturating_mul(1000),
            prune_every: Duration::from_secs(10),
        }
    }

    /// The Redis store's settings, when clustered.
    pub fn redis(&self) -> Option<crate::store::redis::RedisConfig> {
        Some(crate::store::redis::RedisConfig {
            url: self.redis_url.clone()?,
            max_messages: self.retention_max_messages,
            retry: Duration::from_secs(self.store_retry_secs),
            dedup_ttl: Duration::from_secs(self.dedup_ttl_secs),
        })
    }

    pub fn presence_ttl(&self) -> Duration {
        Duration::from_secs(self.presence_ttl_secs)
    }

    pub fn trusted_proxies(&self) -> TrustedProxies {
        TrustedProxies::new(self.trusted_proxies.clone())
    }

    /// Checks what a single option's parser cannot: options against each other and values
    /// with a shape. `main` prints the message and exits with 2, as for a parse error; the
    /// message names the option.
    pub fn validate(&self) -> Result<(), String> {
        for origin in &self.allowed_origins {
            let o = origin.trim();
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(format!(
                    "invalid value {origin:?} for --allowed-origins: an origin is `*` or \
                     starts with http:// or https:// (e.g. https://chat.example.com)"
                ));
            }
        }
        if (self.join_rate_burst as usize) < self.max_rooms_per_connection {
            return Err(format!(
                "--join-rate-burst ({}) must be at least --max-rooms-per-connection ({}): a \
                 reconnecting client joins all its rooms again at once",
                self.join_rate_burst, self.max_rooms_per_connection
            ));
        }
        self.verifier()?;
        if let Some(url) = &self.redis_url
            && let Err(e) = redis::Client::open(url.as_str())
        {
            return Err(format!("invalid value {url:?} for --redis-url: {e}"));
        }
        Ok(())
    }

    /// The user-token verifier, when tokens are on (`--jwt-hs256-secret`, `--jwt-public-key`).
    pub fn verifier(&self) -> Result<Option<crate::auth::Verifier>, String> {
        use crate::auth::{KeySource, Verifier};
        let window = Duration::from_secs(self.jwt_refresh_window_secs);
        let (leeway, names) = (self.jwt_leeway_secs, self.max_name_chars);
        let verifier = match (&self.jwt_hs256_secret, &self.jwt_public_key) {
            (Some(secret), _) => {
                Verifier::new(KeySource::Hs256(secret.as_bytes()), leeway, window, names)?
            }
            (None, Some(path)) => Verifier::from_pem_file(path, leeway, window, names)?,
            (None, None) => return Ok(None),
        };
        Ok(Some(verifier.expecting(
            self.jwt_audience.as_deref(),
            self.jwt_issuer.as_deref(),
        )))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn limits(&self) -> shared::Limits {
        shared::Limits {
            max_message_bytes: self.max_message_bytes,
            max_text_chars: self.max_text_chars,
            max_name_chars: self.max_name_chars,
            rate_per_sec: self.rate_per_sec,
            rate_burst: self.rate_burst,
        }
    }
}
