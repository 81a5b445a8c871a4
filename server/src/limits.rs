//! Admission and rate limits: the Origin allowlist, connection caps, and the per-connection
//! token bucket.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// Which browser origins may open a WebSocket (cross-site WebSocket hijacking protection).
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    any: bool,
    allowed: Vec<String>,
    /// No `--allowed-origins`: the server's own origin is also whatever host the browser asked
    /// for (a page served through a reverse proxy, under another name).
    default: bool,
}

impl OriginPolicy {
    /// `configured` empty means the default: the server's own origin and the trunk dev origins.
    pub fn new(configured: &[String], bind: SocketAddr) -> Self {
        let mut allowed: Vec<String> = configured
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        let any = allowed.iter().any(|o| o == "*");
        let default = allowed.is_empty();
        if default {
            let port = bind.port();
            allowed.push(format!("http://{bind}"));
            if bind.ip().is_loopback() || bind.ip().is_unspecified() {
                allowed.push(format!("http://localhost:{port}"));
                allowed.push(format!("http://127.0.0.1:{port}"));
            }
            allowed.push("http://127.0.0.1:8080".into());
            allowed.push("http://localhost:8080".into());
        }
        Self {
            any,
            allowed,
            default,
        }
    }

    /// [`allows`](Self::allows), or, by default and for a request that came through a trusted
    /// proxy (`--trusted-proxies`), an Origin naming the host the request was sent to (its
    /// `Host` header): the proxy serves page and endpoint under one name of its own. Only
    /// through a trusted proxy: a direct request whose Origin matches its Host may come from a
    /// DNS-rebinding page (a foreign name resolved to this server).
    pub fn allows_request(
        &self,
        origin: Option<&str>,
        host: Option<&str>,
        via_proxy: bool,
    ) -> bool {
        if self.allows(origin) {
            return true;
        }
        let authority = origin.and_then(|o| o.split_once("://")).map(|(_, a)| a);
        self.default
            && via_proxy
            && matches!((authority, host), (Some(a), Some(h))
                if a.trim_end_matches('/').eq_ignore_ascii_case(h.trim()))
    }

    /// `None` (no Origin header) is a non-browser client and is allowed.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(_) if self.any => true,
            Some(o) => {
                let o = o.trim_end_matches('/').to_ascii_lowercase();
                self.allowed.contains(&o)
            }
        }
    }
}

/// Why a connection was refused before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionError {
    /// The server holds `--max-connections` already (503).
    ServerFull,
    /// This IP holds `--max-connections-per-ip` already (429).
    TooManyFromIp,
}

/// Counts open WebSocket connections, in total and per IP. A [`ConnectionPermit`] is held for
/// the life of each connection and gives its slot back when dropped.
#[derive(Debug)]
pub struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<LimiterState>,
}

#[derive(Debug, Default)]
struct LimiterState {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            state: Mutex::default(),
        })
    }

    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, AdmissionError> {
        let mut state = self.state.lock().expect("limiter lock");
        if state.total >= self.max_total {
            return Err(AdmissionError::ServerFull);
        }
        let from_ip = state.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(AdmissionError::TooManyFromIp);
        }
        *from_ip += 1;
        state.total += 1;
        Ok(ConnectionPermit {
            limiter: Arc::clone(self),
            ip,
        })
    }

    pub fn open(&self) -> usize {
        self.state.lock().expect("limiter lock").total
    }
}

#[derive(Debug)]
pub struct ConnectionPermit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut state = self.limiter.state.lock().expect("limiter lock");
        state.total -= 1;
        if let Some(n) = state.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                state.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A token bucket: `burst` tokens, refilled at `per_sec` tokens a second. Uses tokio's clock so
/// tests can pause time.
#[derive(Debug)]
pub struct TokenBucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_sec: f64::from(per_sec),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
    }

    /// Whether the bucket has refilled completely (nothing recent to remember).
    pub fn is_full(&mut self) -> bool {
        self.refill();
        self.tokens >= self.burst
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A token bucket per client address: the HTTP API's rate limit.
#[derive(Debug)]
pub struct AddressLimiter {
    per_sec: u32,
    burst: u32,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

/// Addresses remembered before full buckets (idle addresses) are forgotten.
const ADDRESS_BUCKETS: usize = 4096;

impl AddressLimiter {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            per_sec,
            burst,
            buckets: Mutex::default(),
        }
    }

    /// Takes a token from `ip`'s bucket if it has one.
    pub fn try_take(&self, ip: IpAddr) -> bool {
        let mut buckets = self.buckets.lock().expect("address limiter lock");
        if buckets.len() >= ADDRESS_BUCKETS {
            // A full bucket is the same as none: forgetting it loses nothing.
            buckets.retain(|_, bucket| !bucket.is_full());
        }
        buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(self.per_sec, self.burst))
            .try_take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn default_origins_are_own_and_dev() {
        let p = OriginPolicy::new(&[], "127.0.0.1:3000".parse().unwrap());
        assert!(p.allows(Some("http://127.0.0.1:3000")));
        assert!(p.allows(Some("http://localhost:3000/")));
        assert!(p.allows(Some("http://localhost:8080")));
        assert!(p.allows(None));
        assert!(!p.allows(Some("https://evil.example")));
        // Through a proxy that serves the page under another name, the page's origin is the
        // host it sends to.
        assert!(p.allows_request(
            Some("http://chat.example:8443"),
            Some("chat.example:8443"),
            true
        ));
        assert!(!p.allows_request(
            Some("https://evil.example"),
            Some("chat.example:8443"),
            true
        ));
        assert!(!p.allows_request(Some("null"), Some("null"), true));
        // Not through a trusted proxy: a DNS-rebinding page's Origin matches its Host too.
        assert!(!p.allows_request(
            Some("http://rebound.example:3000"),
            Some("rebound.example:3000"),
            false
        ));
        assert!(!p.allows(Some("null")));
    }

    #[test]
    fn configured_origins_replace_the_default() {
        let p = OriginPolicy::new(
            &["https://chat.example.com".into()],
            "0.0.0.0:80".parse().unwrap(),
        );
        assert!(p.allows(Some("https://CHAT.example.com")));
        assert!(!p.allows(Some("http://localhost:8080")));
        // A configured list is the whole list.
        assert!(!p.allows_request(Some("https://other.example"), Some("other.example"), true));
        let any = OriginPolicy::new(&["*".into()], "0.0.0.0:80".parse().unwrap());
        assert!(any.allows(Some("https://anything.example")));
    }

    #[test]
    fn permits_are_counted_per_ip_and_returned_on_drop() {
        let limiter = ConnectionLimiter::new(3, 2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let p1 = limiter.try_acquire(a).unwrap();
        let _p2 = limiter.try_acquire(a).unwrap();
        assert_eq!(
            limiter.try_acquire(a).unwrap_err(),
            AdmissionError::TooManyFromIp
        );
        let _p3 = limiter.try_acquire(b).unwrap();
        assert_eq!(
            limiter.try_acquire(b).unwrap_err(),
            AdmissionError::ServerFull
        );
        drop(p1);
        assert_eq!(limiter.open(), 2);
        assert!(limiter.try_acquire(a).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn each_address_has_its_own_bucket_and_idle_ones_are_forgotten() {
        let limiter = AddressLimiter::new(1, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.try_take(a) && limiter.try_take(a));
        assert!(!limiter.try_take(a));
        assert!(limiter.try_take(b));
        tokio::time::advance(Duration::from_secs(5)).await;
        for i in 0..ADDRESS_BUCKETS as u32 {
            limiter.try_take(IpAddr::from(i.to_be_bytes()));
        }
        assert!(limiter.buckets.lock().unwrap().len() <= ADDRESS_BUCKETS);
        assert!(limiter.try_take(a), "refilled");
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_the_sustained_rate() {
        let mut bucket = TokenBucket::new(10, 5);
        assert_eq!((0..10).filter(|_| bucket.try_take()).count(), 5);
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(bucket.try_take());
        assert!(!bucket.try_take());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!((0..10).filter(|_| bucket.try_take()).count(), 5);
    }
}
