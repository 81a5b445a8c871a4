//! The ways to the server, best first: a WebSocket; Server-Sent Events down with POSTs up;
//! long-polling. The connection ([`crate::connection`]) climbs down this ladder when a way
//! fails before the server's `hello`, remembers the way that worked for this server for a
//! while, and probes the better one later.
//!
//! [`HttpLink`] is one session over SSE or long-polling, reporting the same events a WebSocket
//! does. Requests go through `gloo-net`; the event stream is the browser's `EventSource` itself,
//! because gloo-net's wrapper hides the errors of the browser's own reconnects, and a dropped
//! stream must show as a dropped connection.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use gloo_net::http::Request;
use shared::{HttpClose, PollAnswer, ServerMsg};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::MessageEvent;

use crate::identity::storage;

/// A way to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    Sse,
    LongPoll,
}

impl Transport {
    /// The name in `?transport=` and in the browser's memory.
    pub fn key(self) -> &'static str {
        match self {
            Self::WebSocket => "ws",
            Self::Sse => "sse",
            Self::LongPoll => "poll",
        }
    }

    /// The name people read.
    pub fn label(self) -> &'static str {
        match self {
            Self::WebSocket => "WebSocket",
            Self::Sse => "SSE",
            Self::LongPoll => "long-polling",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        [Self::WebSocket, Self::Sse, Self::LongPoll]
            .into_iter()
            .find(|t| t.key() == key)
    }

    /// The next way down the ladder.
    pub fn fallback(self) -> Option<Self> {
        match self {
            Self::WebSocket => Some(Self::Sse),
            Self::Sse => Some(Self::LongPoll),
            Self::LongPoll => None,
        }
    }
}

/// How long a fallback that worked is remembered for a server.
pub const REMEMBER_MS: f64 = 10.0 * 60_000.0;

fn memory_key(server: &str) -> String {
    format!("switchboard.transport:{server}")
}

/// Reads a remembered way, `<key>@<until, whole ms since the epoch>`, if still valid at
/// `now_ms`. (Integers: float formatting and parsing would add 10 KB to the bundle.)
pub fn parse_memory(value: &str, now_ms: f64) -> Option<Transport> {
    let (key, until) = value.split_once('@')?;
    let until: u64 = until.parse().ok()?;
    ((now_ms as u64) < until).then_some(())?;
    Transport::from_key(key)
}

/// The way that worked last for `server`, if it was a fallback and recently.
pub fn remembered(server: &str, now_ms: f64) -> Option<Transport> {
    parse_memory(&storage()?.get_item(&memory_key(server)).ok()??, now_ms)
}

/// Remembers the way that worked for `server` (a WebSocket needs no memory: it is tried first
/// anyway).
pub fn remember(server: &str, transport: Transport, now_ms: f64) {
    let Some(storage) = storage() else { return };
    let key = memory_key(server);
    let _ = match transport {
        Transport::WebSocket => storage.remove_item(&key),
        t => storage.set_item(
            &key,
            &format!("{}@{}", t.key(), (now_ms + REMEMBER_MS) as u64),
        ),
    };
}

/// What a link reports: the same four events a WebSocket has, with frames decoded. (Each is
/// moved once, straight to the connection: boxing frames would cost an allocation each.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// The session is there (an HTTP link: its first frame arrived).
    Open,
    Frame(Result<ServerMsg, String>),
    Close {
        code: u16,
        reason: String,
        clean: bool,
    },
    Error,
    /// An event stream went silent (a `Close` follows): a middlebox may have started
    /// buffering, so the ladder is open again.
    Stalled,
}

type Emit = Rc<dyn Fn(LinkEvent)>;
type Handler = Closure<dyn FnMut(MessageEvent)>;
/// A browser timer's id and its callback.
type Timer = (i32, Closure<dyn FnMut()>);

const NETWORK_ERROR: &str = "network error";

/// The server's heartbeat interval until its first heartbeat says otherwise (its default).
const DEFAULT_HEARTBEAT_MS: f64 = 15_000.0;
/// Beyond two heartbeat intervals, how long a stream may be silent.
const SILENCE_MARGIN_MS: f64 = 5_000.0;
/// How often the silence is checked.
const SILENCE_CHECK_MS: i32 = 1_000;

/// One session over SSE (with POSTs up) or long-polling.
pub struct HttpLink {
    inner: Rc<HttpInner>,
}

struct HttpInner {
    /// The server's HTTP base (`http://h`).
    base: String,
    /// The session's secret, from its first frame.
    secret: RefCell<Option<String>>,
    ended: Cell<bool>,
    /// Frames waiting for the POST in flight to finish.
    queue: RefCell<Vec<String>>,
    sending: Cell<bool>,
    /// The SSE stream and its handlers (frames, close, error, heartbeats).
    events: RefCell<Option<(web_sys::EventSource, [Handler; 4])>>,
    /// When the stream last had an event (`Date.now()`), the server's heartbeat interval, and
    /// the timer that watches for silence.
    last_event: Cell<f64>,
    heartbeat_ms: Cell<f64>,
    watchdog: RefCell<Option<Timer>>,
    /// Aborts the poll in flight.
    abort: Option<web_sys::AbortController>,
    emit: Emit,
}

impl HttpLink {
    /// Opens a session over `transport` (SSE or long-polling) at `base` with the connection's
    /// `query` (`?name=&token=`).
    pub fn open(
        transport: Transport,
        base: &str,
        query: &str,
        emit: impl Fn(LinkEvent) + 'static,
    ) -> Self {
        let inner = Rc::new(HttpInner {
            base: base.to_owned(),
            secret: RefCell::new(None),
            ended: Cell::new(false),
            queue: RefCell::new(Vec::new()),
            sending: Cell::new(false),
            events: RefCell::new(None),
            last_event: Cell::new(0.0),
            heartbeat_ms: Cell::new(DEFAULT_HEARTBEAT_MS),
            watchdog: RefCell::new(None),
            abort: web_sys::AbortController::new().ok(),
            emit: Rc::new(emit),
        });
        match transport {
            Transport::Sse => open_sse(&inner, &format!("{base}/v3/sse{query}")),
            _ => {
                let weak = Rc::downgrade(&inner);
                let url = format!("{base}/v3/poll{query}");
                wasm_bindgen_futures::spawn_local(poll_loop(weak, url));
            }
        }
        Self { inner }
    }

    /// Whether the session is there and has not ended.
    pub fn is_open(&self) -> bool {
        self.inner.secret.borrow().is_some() && !self.inner.ended.get()
    }

    /// Sends one frame (in order, batched with others waiting).
    pub fn send(&self, text: String) {
        self.inner.queue.borrow_mut().push(text);
        if !self.inner.sending.replace(true) {
            wasm_bindgen_futures::spawn_local(flush(Rc::downgrade(&self.inner)));
        }
    }

    /// Ends the link without a word to the listener. `leave`: tell the server the client left
    /// (its names are released at once, as a WebSocket's close 1000 does).
    pub fn close(&self, leave: bool) {
        let inner = &self.inner;
        if inner.ended.replace(true) {
            return;
        }
        inner.stop();
        if let (true, Some(secret)) = (leave, inner.secret.borrow().clone()) {
            let url = format!("{}/v3/send", inner.base);
            // What still waits goes with the leave, before it.
            let queued = std::mem::take(&mut *inner.queue.borrow_mut());
            let body = shared::send_body(&secret, &queued, true);
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(request) = Request::post(&url).body(body) {
                    let _ = request.send().await;
                }
            });
        }
    }
}

impl HttpInner {
    fn stop(&self) {
        if let Some((id, check)) = self.watchdog.borrow_mut().take() {
            if let Some(window) = web_sys::window() {
                window.clear_interval_with_handle(id);
            }
            crate::later::drop_later(check);
        }
        if let Some((events, handlers)) = self.events.borrow_mut().take() {
            events.set_onmessage(None);
            events.set_onerror(None);
            events.close();
            // The handler running now may be one of these.
            crate::later::drop_later(handlers);
        }
        if let Some(abort) = &self.abort {
            abort.abort();
        }
    }

    /// Ends the link and tells the listener.
    fn finish(&self, code: u16, reason: String, clean: bool) {
        if self.ended.replace(true) {
            return;
        }
        self.stop();
        if !clean {
            (self.emit)(LinkEvent::Error);
        }
        (self.emit)(LinkEvent::Close {
            code,
            reason,
            clean,
        });
    }

    /// A frame of session `secret` arrived. A new secret on the same stream (the browser
    /// reconnected it by itself, and the server had forgotten the session) is a new session:
    /// the old one is reported closed first.
    fn frame(&self, secret: &str, frame: Result<ServerMsg, String>) {
        let known = self.secret.borrow().clone();
        if known.as_deref() != Some(secret) {
            if known.is_some() {
                (self.emit)(LinkEvent::Close {
                    code: 1006,
                    reason: "the server forgot the session".into(),
                    clean: false,
                });
            }
            *self.secret.borrow_mut() = Some(secret.to_owned());
            (self.emit)(LinkEvent::Open);
        }
        (self.emit)(LinkEvent::Frame(frame));
    }
}

fn open_sse(inner: &Rc<HttpInner>, url: &str) {
    let Ok(events) = web_sys::EventSource::new(url) else {
        let inner = inner.clone();
        // Reported after `open` returns, as a browser reports a failed socket.
        wasm_bindgen_futures::spawn_local(async move {
            inner.finish(1006, "cannot open the event stream".into(), false)
        });
        return;
    };
    let weak = Rc::downgrade(inner);
    let handler = |f: fn(&HttpInner, MessageEvent)| {
        let weak = weak.clone();
        Handler::new(move |e: MessageEvent| {
            if let Some(inner) = weak.upgrade() {
                f(&inner, e);
            }
        })
    };
    let on_frame = handler(|inner, event| {
        inner.last_event.set(js_sys::Date::now());
        let id = event.last_event_id();
        let secret = id.split_once(':').map_or(id.as_str(), |(s, _)| s);
        let data = event.data().as_string().unwrap_or_default();
        let frame = ServerMsg::decode(&data).map_err(|e| e.to_string());
        inner.frame(secret, frame);
    });
    let on_close = handler(|inner, event| {
        let data = event.data().as_string().unwrap_or_default();
        match HttpClose::decode(&data) {
            Ok(close) => inner.finish(close.code, close.reason, true),
            Err(e) => inner.finish(1006, format!("unreadable close: {e}"), false),
        }
    });
    // A heartbeat: proof the stream is alive, and the server's interval.
    let on_ping = handler(|inner, event| {
        inner.last_event.set(js_sys::Date::now());
        if let Some(ms) = event.data().as_string().and_then(|d| d.parse::<u32>().ok()) {
            inner.heartbeat_ms.set(f64::from(ms));
        }
    });
    // Any error ends the link, the browser's own retry included: the connection reconnects
    // with its backoff, shows it, and the rooms resume from their positions.
    let on_error = handler(|inner, _| inner.finish(1006, String::new(), false));
    events.set_onmessage(Some(on_frame.as_ref().unchecked_ref()));
    events.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let _ = events.add_event_listener_with_callback("close", on_close.as_ref().unchecked_ref());
    let _ = events.add_event_listener_with_callback("ping", on_ping.as_ref().unchecked_ref());
    *inner.events.borrow_mut() = Some((events, [on_frame, on_close, on_error, on_ping]));
    inner.last_event.set(js_sys::Date::now());
    watch_for_silence(inner);
}

/// A stream that goes silent (no frame and no heartbeat for two of the server's heartbeat
/// intervals, and a margin) is dead even if the browser cannot tell: a proxy started
/// buffering, or the connection is half-open. The link then ends as stalled, and the
/// connection may climb down the ladder again.
fn watch_for_silence(inner: &Rc<HttpInner>) {
    let weak = Rc::downgrade(inner);
    let check = Closure::<dyn FnMut()>::new(move || {
        let Some(inner) = weak.upgrade() else { return };
        let silent_for = js_sys::Date::now() - inner.last_event.get();
        if silent_for > 2.0 * inner.heartbeat_ms.get() + SILENCE_MARGIN_MS {
            (inner.emit)(LinkEvent::Stalled);
            inner.finish(1006, "the event stream went silent".into(), false);
        }
    });
    let id = web_sys::window().and_then(|w| {
        w.set_interval_with_callback_and_timeout_and_arguments_0(
            check.as_ref().unchecked_ref(),
            SILENCE_CHECK_MS,
        )
        .ok()
    });
    if let Some(id) = id {
        *inner.watchdog.borrow_mut() = Some((id, check));
    }
}

/// Polls until the session ends: the first poll opens the session, each next one
/// acknowledges what the last answer carried.
async fn poll_loop(weak: Weak<HttpInner>, open_url: String) {
    let mut url = open_url;
    let mut body = String::new();
    loop {
        let Some(request) = weak.upgrade().and_then(|inner| {
            Request::post(&url)
                .abort_signal(inner.abort.as_ref().map(|a| a.signal()).as_ref())
                .body(body.clone())
                .ok()
        }) else {
            return;
        };
        let answer = match request.send().await {
            // gloo-net's errors are not formatted: their Display would bring serde_json's into
            // the bundle.
            Ok(response) if response.status() == 200 => response
                .text()
                .await
                .map_err(|_| NETWORK_ERROR.to_owned())
                .and_then(|text| PollAnswer::decode(&text).map_err(|e| e.to_string())),
            Ok(response) => Err(format!("poll refused ({})", response.status())),
            Err(_) => Err(NETWORK_ERROR.into()),
        };
        let Some(inner) = weak.upgrade() else { return };
        if inner.ended.get() {
            return;
        }
        let answer = match answer {
            Ok(answer) => answer,
            Err(reason) => return inner.finish(1006, reason, false),
        };
        for frame in answer.frames {
            inner.frame(&answer.session, Ok(frame));
        }
        if let Some(close) = answer.close {
            return inner.finish(close.code, close.reason, true);
        }
        url = format!("{}/v3/poll", inner.base);
        body = PollAnswer::request(&answer.session, answer.last);
    }
}

/// Sends what waits, one POST at a time, until nothing does. A refused POST ends the link
/// (the session is gone); what it carried is sent again by the rooms' outboxes on reconnect.
async fn flush(weak: Weak<HttpInner>) {
    loop {
        let Some((url, body)) = weak.upgrade().and_then(|inner| {
            let frames = std::mem::take(&mut *inner.queue.borrow_mut());
            let secret = inner.secret.borrow().clone();
            match (frames.is_empty(), secret) {
                (false, Some(secret)) => Some((
                    format!("{}/v3/send", inner.base),
                    shared::send_body(&secret, &frames, false),
                )),
                _ => {
                    inner.sending.set(false);
                    None
                }
            }
        }) else {
            return;
        };
        let sent = match Request::post(&url).body(body) {
            Ok(request) => request.send().await.map(|r| r.status()).ok(),
            Err(_) => None,
        };
        let Some(inner) = weak.upgrade() else { return };
        match sent {
            Some(204) => {}
            Some(status) => {
                inner.sending.set(false);
                return inner.finish(1006, format!("send refused ({status})"), false);
            }
            None => {
                inner.sending.set(false);
                return inner.finish(1006, NETWORK_ERROR.into(), false);
            }
        }
    }
}

impl Drop for HttpInner {
    fn drop(&mut self) {
        self.stop();
    }
}
