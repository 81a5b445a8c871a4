//! The one connection: handles `open`, `message`, `close` and `error`, reconnects with
//! exponential backoff and full jitter (at once when the browser comes back `online`), and
//! refuses to send while it is not open.
//!
//! It goes over a WebSocket where it can, and down the [`transport`](crate::transport) ladder
//! (SSE with POSTs, then long-polling) where it cannot: when the upgrade is refused, when the
//! socket closes before the server's `hello`, or when no `hello` comes within
//! [`HELLO_TIMEOUT_MS`], until a way has worked (after that, a failed reconnect is an outage,
//! retried the same way). The way that worked is remembered for the server for a while, and a
//! WebSocket is probed again later (with backoff); `?transport=ws|sse|poll` in the page URL
//! forces one way.
//!
//! Independent of Leptos: it reports through a callback, so it can be tested on its own in a
//! browser against the real server.

use std::cell::RefCell;
use std::rc::Rc;

use shared::{Command, ServerMsg, close_code};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::endpoint;
use crate::later::drop_later;
use crate::token::{self, TokenError};
use crate::transport::{self, HttpLink, LinkEvent, Transport};

/// How long a way to the server has to deliver the server's `hello` before the next way down
/// the ladder is tried.
pub const HELLO_TIMEOUT_MS: i32 = 5_000;
/// The first wait before a WebSocket is probed again from a fallback; doubled per failed
/// probe up to [`PROBE_CAP_MS`].
pub const PROBE_BASE_MS: f64 = 30_000.0;
const PROBE_CAP_MS: f64 = 600_000.0;

/// First reconnect delay ceiling, doubled per attempt up to [`BACKOFF_CAP_MS`].
pub const BACKOFF_BASE_MS: f64 = 500.0;
/// The longest a client waits between reconnect attempts.
pub const BACKOFF_CAP_MS: f64 = 30_000.0;
/// Shortest delay, so a flapping server is not hammered in a tight loop.
const BACKOFF_FLOOR_MS: f64 = 100.0;

/// What the user sees of the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnState {
    Connecting,
    Open,
    /// Waiting to reconnect; `retry_at_ms` is a `Date.now()` timestamp.
    Reconnecting {
        attempt: u32,
        retry_at_ms: f64,
    },
    /// Closed for good: the server refused the session (e.g. name taken) or the user left.
    Closed {
        code: u16,
        reason: String,
    },
}

impl ConnState {
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Open)
    }
}

/// Everything the connection reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnEvent {
    State(ConnState),
    /// The way the next (or current) attempt goes.
    Transport(Transport),
    /// The socket's `open` event.
    Opened,
    /// A server message from a `message` event.
    Message(ServerMsg),
    /// A `message` that is not a valid server message.
    BadFrame(String),
    /// The socket's `close` event.
    Closed {
        code: u16,
        reason: String,
        clean: bool,
    },
    /// The socket's `error` event (browsers give no detail; a `close` follows).
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The socket is not open; nothing was sent.
    NotOpen,
}

/// The delay before reconnect attempt `attempt` (0-based): uniform in [floor, min(cap, base·2^n)).
pub fn backoff_ms(attempt: u32, random: f64) -> f64 {
    let ceiling = (BACKOFF_BASE_MS * 2f64.powi(attempt.min(16) as i32)).min(BACKOFF_CAP_MS);
    (random * ceiling).max(BACKOFF_FLOOR_MS)
}

type Listener = Rc<dyn Fn(ConnEvent)>;
type Timer = (i32, Closure<dyn FnMut()>);

/// A handle on the connection; clones share it.
#[derive(Clone)]
pub struct Connection {
    inner: Rc<RefCell<Inner>>,
    listener: Listener,
}

/// The link to the server of one attempt.
enum Link {
    /// A WebSocket and its callbacks (kept alive while it lives).
    Ws(WebSocket, Vec<Closure<dyn FnMut(JsValueEvent)>>),
    Http(HttpLink),
}

impl Link {
    fn is_open(&self) -> bool {
        match self {
            Self::Ws(socket, _) => socket.ready_state() == WebSocket::OPEN,
            Self::Http(link) => link.is_open(),
        }
    }

    /// Closes without a word to the listener; `leave`: the client leaves on purpose.
    fn close(self, leave: bool) {
        match self {
            Self::Ws(socket, callbacks) => {
                detach(&socket);
                let _ = if leave {
                    socket.close_with_code_and_reason(1000, "left")
                } else {
                    socket.close()
                };
                drop_later(callbacks);
            }
            Self::Http(link) => link.close(leave),
        }
    }
}

struct Inner {
    /// Builds the WebSocket URL for each attempt (`ws://h/ws?name=…`); the HTTP ways use the
    /// same server and query.
    url: Rc<dyn Fn() -> String>,
    link: Option<Link>,
    /// Numbers the attempts: events of an older attempt's link are ignored.
    generation: u32,
    attempt: u32,
    retry_timer: Option<Timer>,
    /// A delay the server asked for (`shutdown`), used for the next reconnect.
    retry_hint_ms: Option<f64>,
    stopped: bool,
    online: Option<Closure<dyn FnMut()>>,
    /// The way this attempt goes, and the way the page forces (`?transport=`), if any.
    transport: Transport,
    forced: Option<Transport>,
    /// The server's `hello` arrived on this attempt's link.
    hello_seen: bool,
    /// The way that last delivered a `hello` on this connection. Once one has, reconnects stay
    /// on it: an attempt that fails then is a network or server outage, not a middlebox, and
    /// climbing down the ladder would only add failed requests.
    worked: Option<Transport>,
    hello_timer: Option<Timer>,
    /// On a fallback: when a WebSocket is tried again, and how many probes failed.
    probe_timer: Option<Timer>,
    probes_failed: u32,
    probe: Option<Link>,
    /// Signed user tokens: where the page gets them (`<meta name="switchboard-token-url">`),
    /// the last one fetched, and which fetch is the current one (an older one's late answer
    /// is ignored).
    token_url: Option<String>,
    access_token: Option<String>,
    fetches: u32,
}

type JsValueEvent = wasm_bindgen::JsValue;

/// Splits a chat URL (`ws://h/ws?q`) into the server's HTTP base (`http://h`) and the query.
fn http_parts(url: &str) -> (String, String) {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let base = base.strip_suffix("/ws").unwrap_or(base);
    (endpoint::http_base(base), format!("?{query}"))
}

impl Connection {
    /// Opens the chat URL that `url` returns (asked again before every reconnect) and keeps
    /// the connection open until [`close`](Self::close). The way is the page's
    /// `?transport=`, else the one remembered for the server, else a WebSocket.
    pub fn open(
        url: impl Fn() -> String + 'static,
        listener: impl Fn(ConnEvent) + 'static,
    ) -> Self {
        let forced = endpoint::query_param("transport").and_then(|t| Transport::from_key(&t));
        Self::open_on(forced, url, listener)
    }

    /// [`open`](Self::open) on the way given, or on the ladder when `None`.
    pub fn open_on(
        forced: Option<Transport>,
        url: impl Fn() -> String + 'static,
        listener: impl Fn(ConnEvent) + 'static,
    ) -> Self {
        let first = forced.unwrap_or_else(|| {
            transport::remembered(&http_parts(&url()).0, js_sys::Date::now())
                .unwrap_or(Transport::WebSocket)
        });
        let conn = Self {
            inner: Rc::new(RefCell::new(Inner {
                url: Rc::new(url),
                link: None,
                generation: 0,
                attempt: 0,
                retry_timer: None,
                retry_hint_ms: None,
                stopped: false,
                online: None,
                transport: first,
                forced,
                hello_seen: false,
                worked: None,
                hello_timer: None,
                probe_timer: None,
                probes_failed: 0,
                probe: None,
                token_url: token::token_url(),
                access_token: None,
                fetches: 0,
            })),
            listener: Rc::new(listener),
        };
        conn.watch_online();
        conn.connect();
        conn
    }

    pub fn is_open(&self) -> bool {
        self.inner.borrow().link.as_ref().is_some_and(Link::is_open)
    }

    /// The way the current attempt goes.
    pub fn transport(&self) -> Transport {
        self.inner.borrow().transport
    }

    /// Sends a message if, and only if, the connection is open.
    pub fn send(&self, msg: &Command) -> Result<(), SendError> {
        let inner = self.inner.borrow();
        match inner.link.as_ref().filter(|l| l.is_open()) {
            Some(Link::Ws(socket, _)) => socket
                .send_with_str(&msg.encode())
                .map_err(|_| SendError::NotOpen),
            Some(Link::Http(link)) => {
                link.send(msg.encode());
                Ok(())
            }
            None => Err(SendError::NotOpen),
        }
    }

    /// Skips the wait and reconnects now (used on the browser's `online` event).
    pub fn reconnect_now(&self) {
        let waiting = {
            let inner = self.inner.borrow();
            !inner.stopped && inner.retry_timer.is_some()
        };
        if waiting {
            cancel(&mut self.inner.borrow_mut().retry_timer);
            self.connect();
        }
    }

    /// Closes the connection (a WebSocket with 1000; an HTTP session is told the client left)
    /// and stops reconnecting.
    pub fn close(&self) {
        let (link, probe) = {
            let mut inner = self.inner.borrow_mut();
            inner.stopped = true;
            inner.online = None;
            cancel(&mut inner.retry_timer);
            cancel(&mut inner.hello_timer);
            cancel(&mut inner.probe_timer);
            (inner.link.take(), inner.probe.take())
        };
        if let Some(link) = link {
            link.close(true);
        }
        if let Some(probe) = probe {
            probe.close(false);
        }
        self.emit(ConnEvent::State(ConnState::Closed {
            code: 1000,
            reason: "left".into(),
        }));
    }

    fn emit(&self, event: ConnEvent) {
        (self.listener)(event);
    }

    fn watch_online(&self) {
        let this = self.clone_weak();
        let cb = Closure::<dyn FnMut()>::new(move || {
            if let Some(conn) = this.upgrade() {
                conn.reconnect_now();
            }
        });
        if let Some(window) = web_sys::window() {
            let _ = window.add_event_listener_with_callback("online", cb.as_ref().unchecked_ref());
        }
        self.inner.borrow_mut().online = Some(cb);
    }

    /// One attempt. With signed user tokens, a fresh token is fetched first: an attempt never
    /// goes out with an expired one.
    fn connect(&self) {
        let (url, fetch) = {
            let mut inner = self.inner.borrow_mut();
            inner.fetches = inner.fetches.wrapping_add(1);
            (inner.token_url.clone(), inner.fetches)
        };
        let Some(url) = url else {
            return self.connect_now();
        };
        self.emit(ConnEvent::State(ConnState::Connecting));
        let weak = self.clone_weak();
        wasm_bindgen_futures::spawn_local(async move {
            let token = token::fetch(&url).await;
            let Some(conn) = weak.upgrade() else { return };
            {
                let inner = conn.inner.borrow();
                if inner.stopped || inner.fetches != fetch {
                    return;
                }
            }
            match token {
                Ok(token) => {
                    conn.inner.borrow_mut().access_token = Some(token);
                    conn.connect_now();
                }
                Err(TokenError::Refused(status)) => conn.finish(
                    close_code::UNAUTHORIZED,
                    format!("sign in again: the token URL answered {status}"),
                ),
                Err(TokenError::Unavailable(why)) => {
                    conn.emit(ConnEvent::Closed {
                        code: 1006,
                        reason: why,
                        clean: false,
                    });
                    conn.schedule_reconnect();
                }
            }
        });
    }

    /// The server says the token is expiring: fetch a new one and send it as a `refresh`. If
    /// none comes, the session closes at `exp` (4401) and the reconnect fetches one.
    fn refresh_token(&self) {
        let Some(url) = self.inner.borrow().token_url.clone() else {
            return;
        };
        let weak = self.clone_weak();
        wasm_bindgen_futures::spawn_local(async move {
            let Ok(token) = token::fetch(&url).await else {
                return;
            };
            if let Some(conn) = weak.upgrade() {
                conn.inner.borrow_mut().access_token = Some(token.clone());
                let _ = conn.send(&Command::Refresh { token });
            }
        });
    }

    /// One attempt, on the way in `transport`, now.
    fn connect_now(&self) {
        let old = self.inner.borrow_mut().link.take();
        if let Some(old) = old {
            old.close(false);
        }
        let (url, transport, generation) = {
            let mut inner = self.inner.borrow_mut();
            inner.generation = inner.generation.wrapping_add(1);
            inner.hello_seen = false;
            let mut url = (inner.url.clone())();
            if let Some(token) = &inner.access_token {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str("access_token=");
                url.push_str(&endpoint::encode(token));
            }
            (url, inner.transport, inner.generation)
        };
        self.emit(ConnEvent::Transport(transport));
        self.emit(ConnEvent::State(ConnState::Connecting));
        let link = match transport {
            Transport::WebSocket => match self.open_socket(&url, generation) {
                Some(link) => link,
                None => {
                    // An invalid URL: nothing to retry.
                    self.emit(ConnEvent::Error);
                    self.finish(1006, format!("cannot open {url}"));
                    return;
                }
            },
            http => {
                let (base, query) = http_parts(&url);
                let weak = self.clone_weak();
                Link::Http(HttpLink::open(http, &base, &query, move |event| {
                    if let Some(conn) = weak.upgrade() {
                        conn.on_link(generation, event);
                    }
                }))
            }
        };
        self.inner.borrow_mut().link = Some(link);
        let timer = self.timer(HELLO_TIMEOUT_MS, move |conn| {
            let stale = {
                let inner = conn.inner.borrow();
                inner.generation != generation || inner.hello_seen || inner.stopped
            };
            if !stale {
                conn.fall_back("no hello in time");
            }
        });
        self.inner.borrow_mut().hello_timer = timer;
    }

    fn open_socket(&self, url: &str, generation: u32) -> Option<Link> {
        // The typed protocol is asked for by name; without a subprotocol the server treats a
        // connection as a plain tutorial page.
        let socket = WebSocket::new_with_str(url, shared::SUBPROTOCOL_V3).ok()?;
        let weak = self.clone_weak();
        let handler = |f: fn(&Connection, u32, JsValueEvent)| {
            let weak = weak.clone();
            Closure::<dyn FnMut(JsValueEvent)>::new(move |e: JsValueEvent| {
                if let Some(conn) = weak.upgrade() {
                    f(&conn, generation, e);
                }
            })
        };
        let on_open = handler(|c, g, _| c.on_link(g, LinkEvent::Open));
        let on_message = handler(|c, g, e| {
            let frame = match e.unchecked_into::<MessageEvent>().data().as_string() {
                Some(text) => ServerMsg::decode(&text).map_err(|e| e.to_string()),
                None => Err("binary frame".into()),
            };
            c.on_link(g, LinkEvent::Frame(frame));
        });
        let on_error = handler(|c, g, _| c.on_link(g, LinkEvent::Error));
        let on_close = handler(|c, g, e| {
            let e = e.unchecked_into::<CloseEvent>();
            c.on_link(
                g,
                LinkEvent::Close {
                    code: e.code(),
                    reason: e.reason(),
                    clean: e.was_clean(),
                },
            );
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Some(Link::Ws(
            socket,
            vec![on_open, on_message, on_error, on_close],
        ))
    }

    /// An event of the link of attempt `generation`.
    fn on_link(&self, generation: u32, event: LinkEvent) {
        if self.inner.borrow().generation != generation {
            return; // an older attempt's late event
        }
        match event {
            LinkEvent::Open => {
                self.emit(ConnEvent::Opened);
                self.emit(ConnEvent::State(ConnState::Open));
            }
            LinkEvent::Frame(Ok(msg)) => self.on_message(msg),
            LinkEvent::Frame(Err(why)) => self.emit(ConnEvent::BadFrame(why)),
            LinkEvent::Error => self.emit(ConnEvent::Error),
            LinkEvent::Stalled => self.inner.borrow_mut().worked = None,
            LinkEvent::Close {
                code,
                reason,
                clean,
            } => self.on_close(code, reason, clean),
        }
    }

    fn on_message(&self, msg: ServerMsg) {
        match &msg {
            ServerMsg::Shutdown { retry_after_ms } => {
                self.inner.borrow_mut().retry_hint_ms = Some(*retry_after_ms as f64);
            }
            ServerMsg::Hello(_) => self.on_hello(),
            ServerMsg::TokenExpiring { .. } => self.refresh_token(),
            _ => {}
        }
        self.emit(ConnEvent::Message(msg));
    }

    /// The way works: remember it, and from a fallback, probe a WebSocket later.
    fn on_hello(&self) {
        let (transport, forced, url) = {
            let mut inner = self.inner.borrow_mut();
            inner.hello_seen = true;
            inner.worked = Some(inner.transport);
            inner.attempt = 0;
            cancel(&mut inner.hello_timer);
            (inner.transport, inner.forced, (inner.url.clone())())
        };
        if forced.is_none() {
            transport::remember(&http_parts(&url).0, transport, js_sys::Date::now());
            if transport != Transport::WebSocket && self.inner.borrow().probe_timer.is_none() {
                self.schedule_probe();
            }
        }
    }

    fn on_close(&self, code: u16, reason: String, clean: bool) {
        self.emit(ConnEvent::Closed {
            code,
            reason: reason.clone(),
            clean,
        });
        let (stopped, hello_seen, can_fall_back) = {
            let mut inner = self.inner.borrow_mut();
            cancel(&mut inner.hello_timer);
            if let Some(Link::Ws(_, callbacks)) = inner.link.take() {
                // Dropped after this event has run, not during it.
                drop_later(callbacks);
            }
            let can_fall_back = inner.forced.is_none()
                && inner.worked.is_none()
                && inner.transport.fallback().is_some();
            // Told to get a new token, with nowhere to get one: reconnecting cannot help.
            let tokenless = code == close_code::UNAUTHORIZED && inner.token_url.is_none();
            (inner.stopped || tokenless, inner.hello_seen, can_fall_back)
        };
        if stopped || !close_code::should_reconnect(code) {
            self.finish(code, reason);
        } else if !hello_seen && can_fall_back {
            self.fall_back("closed before hello");
        } else {
            self.schedule_reconnect();
        }
    }

    /// This way failed before the server's `hello`: the next way down, at once (only while no
    /// way has worked on this connection yet).
    fn fall_back(&self, _why: &str) {
        let link = {
            let mut inner = self.inner.borrow_mut();
            let next = match (inner.forced, inner.worked, inner.transport.fallback()) {
                (None, None, Some(next)) => next,
                _ => {
                    drop(inner);
                    // Nowhere further down: close this attempt and retry with backoff.
                    if let Some(link) = self.inner.borrow_mut().link.take() {
                        link.close(false);
                    }
                    self.emit(ConnEvent::Closed {
                        code: 1006,
                        reason: "no hello in time".into(),
                        clean: false,
                    });
                    self.schedule_reconnect();
                    return;
                }
            };
            inner.transport = next;
            inner.link.take()
        };
        if let Some(link) = link {
            link.close(false);
        }
        self.connect();
    }

    fn finish(&self, code: u16, reason: String) {
        let probe = {
            let mut inner = self.inner.borrow_mut();
            inner.stopped = true;
            cancel(&mut inner.probe_timer);
            inner.probe.take()
        };
        if let Some(probe) = probe {
            probe.close(false);
        }
        self.emit(ConnEvent::State(ConnState::Closed { code, reason }));
    }

    fn schedule_reconnect(&self) {
        let (attempt, delay) = {
            let mut inner = self.inner.borrow_mut();
            let attempt = inner.attempt;
            inner.attempt += 1;
            // Each reconnect goes the way that worked on this connection, else from the best
            // way known to work for the server.
            let url = (inner.url.clone())();
            inner.transport = inner.forced.or(inner.worked).unwrap_or_else(|| {
                transport::remembered(&http_parts(&url).0, js_sys::Date::now())
                    .unwrap_or(Transport::WebSocket)
            });
            let delay = inner
                .retry_hint_ms
                .take()
                .unwrap_or_else(|| backoff_ms(attempt, js_sys::Math::random()));
            (attempt, delay)
        };
        let timer = self.timer(delay as i32, |conn| {
            conn.inner.borrow_mut().retry_timer = None;
            if !conn.inner.borrow().stopped {
                conn.connect();
            }
        });
        if timer.is_none() {
            return;
        }
        self.inner.borrow_mut().retry_timer = timer;
        self.emit(ConnEvent::State(ConnState::Reconnecting {
            attempt: attempt + 1,
            retry_at_ms: js_sys::Date::now() + delay,
        }));
    }

    /// On a fallback: after a wait, checks with a WebSocket to `/echo` whether WebSockets get
    /// through now; if so, moves the session to a WebSocket (the rooms resume from their
    /// positions), else waits twice as long.
    fn schedule_probe(&self) {
        let delay = {
            let inner = self.inner.borrow();
            (PROBE_BASE_MS * 2f64.powi(inner.probes_failed.min(8) as i32)).min(PROBE_CAP_MS)
        };
        let timer = self.timer(delay as i32, |conn| {
            conn.inner.borrow_mut().probe_timer = None;
            conn.probe();
        });
        self.inner.borrow_mut().probe_timer = timer;
    }

    fn probe(&self) {
        let url = {
            let inner = self.inner.borrow();
            if inner.stopped || inner.transport == Transport::WebSocket {
                return;
            }
            (inner.url.clone())()
        };
        let base = url.split_once('?').map_or(url.as_str(), |(b, _)| b);
        let echo = format!("{}/echo", base.strip_suffix("/ws").unwrap_or(base));
        let Ok(socket) = WebSocket::new(&echo) else {
            return;
        };
        let weak = self.clone_weak();
        let outcome = move |worked: bool| {
            let Some(conn) = weak.upgrade() else { return };
            let probe = conn.inner.borrow_mut().probe.take();
            if let Some(probe) = probe {
                probe.close(false);
            } else {
                return; // already decided
            }
            if worked {
                conn.switch_to_websocket();
            } else {
                conn.inner.borrow_mut().probes_failed += 1;
                conn.schedule_probe();
            }
        };
        let on_open = Closure::<dyn FnMut(JsValueEvent)>::new({
            let socket = socket.clone();
            move |_| {
                let _ = socket.send_with_str("probe");
            }
        });
        let on_message = Closure::<dyn FnMut(JsValueEvent)>::new({
            let outcome = outcome.clone();
            move |e: JsValueEvent| {
                let echoed = e.unchecked_into::<MessageEvent>().data().as_string();
                outcome(echoed.as_deref() == Some("probe"));
            }
        });
        let on_close = Closure::<dyn FnMut(JsValueEvent)>::new({
            let outcome = outcome.clone();
            move |_| outcome(false)
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        self.inner.borrow_mut().probe = Some(Link::Ws(socket, vec![on_open, on_message, on_close]));
        // A probe that hangs counts as failed.
        let timer = self.timer(HELLO_TIMEOUT_MS, move |_| outcome(false));
        self.inner.borrow_mut().probe_timer = timer;
    }

    /// WebSockets get through again: the session moves to one.
    fn switch_to_websocket(&self) {
        let link = {
            let mut inner = self.inner.borrow_mut();
            if inner.stopped {
                return;
            }
            cancel(&mut inner.retry_timer);
            inner.probes_failed = 0;
            cancel(&mut inner.probe_timer);
            inner.transport = Transport::WebSocket;
            inner.worked = None;
            let url = (inner.url.clone())();
            transport::remember(&http_parts(&url).0, Transport::WebSocket, 0.0);
            inner.link.take()
        };
        if let Some(link) = link {
            link.close(false);
        }
        self.emit(ConnEvent::Closed {
            code: 1000,
            reason: "moving to a WebSocket".into(),
            clean: true,
        });
        self.connect();
    }

    /// A one-shot timer that calls `f` with the connection (if it still exists).
    fn timer(&self, delay_ms: i32, f: impl FnOnce(&Connection) + 'static) -> Option<Timer> {
        let weak = self.clone_weak();
        let mut f = Some(f);
        let cb = Closure::<dyn FnMut()>::new(move || {
            if let (Some(conn), Some(f)) = (weak.upgrade(), f.take()) {
                f(&conn);
            }
        });
        let id = web_sys::window()?
            .set_timeout_with_callback_and_timeout_and_arguments_0(
                cb.as_ref().unchecked_ref(),
                delay_ms,
            )
            .ok()?;
        Some((id, cb))
    }

    fn clone_weak(&self) -> WeakConnection {
        WeakConnection {
            inner: Rc::downgrade(&self.inner),
            listener: Rc::downgrade(&self.listener),
        }
    }
}

/// Clears a pending timer. The closure is dropped later: the timer being cleared may be the
/// one running.
fn cancel(timer: &mut Option<Timer>) {
    if let Some((id, cb)) = timer.take() {
        if let Some(window) = web_sys::window() {
            window.clear_timeout_with_handle(id);
        }
        drop_later(cb);
    }
}

/// Removes the socket's handlers, so no event reaches a dropped closure.
pub(crate) fn detach(socket: &WebSocket) {
    socket.set_onopen(None);
    socket.set_onmessage(None);
    socket.set_onerror(None);
    socket.set_onclose(None);
}

struct WeakConnection {
    inner: std::rc::Weak<RefCell<Inner>>,
    listener: std::rc::Weak<dyn Fn(ConnEvent)>,
}

impl Clone for WeakConnection {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            listener: self.listener.clone(),
        }
    }
}

impl WeakConnection {
    fn upgrade(&self) -> Option<Connection> {
        Some(Connection {
            inner: self.inner.upgrade()?,
            listener: self.listener.upgrade()?,
        })
    }
}

/// Cleans up the window listener and the link when the last handle goes.
impl Drop for Inner {
    fn drop(&mut self) {
        if let (Some(cb), Some(window)) = (self.online.take(), web_sys::window()) {
            let _ =
                window.remove_event_listener_with_callback("online", cb.as_ref().unchecked_ref());
        }
        for timer in [
            &mut self.retry_timer,
            &mut self.hello_timer,
            &mut self.probe_timer,
        ] {
            cancel(timer);
        }
        if let Some(link) = self.link.take() {
            link.close(false);
        }
        if let Some(probe) = self.probe.take() {
            probe.close(false);
        }
    }
}
