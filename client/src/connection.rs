//! The one WebSocket: handles `open`, `message`, `close` and `error`, reconnects with exponential
//! backoff and full jitter (at once when the browser comes back `online`), and refuses to send
//! while the socket is not open.
//!
//! Independent of Leptos: it reports through a callback, so it can be tested on its own in a
//! browser against the real server.

use std::cell::RefCell;
use std::rc::Rc;

use shared::{Command, ServerMsg, close_code};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

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

/// A handle on the connection; clones share it.
#[derive(Clone)]
pub struct Connection {
    inner: Rc<RefCell<Inner>>,
    listener: Listener,
}

struct Inner {
    /// Builds the URL for each attempt, so a reconnect carries the latest history position.
    url: Rc<dyn Fn() -> String>,
    socket: Option<WebSocket>,
    /// Keeps the socket's callbacks alive while it lives.
    callbacks: Vec<Closure<dyn FnMut(JsValueEvent)>>,
    attempt: u32,
    retry_timer: Option<(i32, Closure<dyn FnMut()>)>,
    /// A delay the server asked for (`shutdown`), used for the next reconnect.
    retry_hint_ms: Option<f64>,
    stopped: bool,
    online: Option<Closure<dyn FnMut()>>,
}

type JsValueEvent = wasm_bindgen::JsValue;

impl Connection {
    /// Opens the `ws://` or `wss://` URL that `url` returns (asked again before every
    /// reconnect) and keeps it open until [`close`](Self::close).
    pub fn open(
        url: impl Fn() -> String + 'static,
        listener: impl Fn(ConnEvent) + 'static,
    ) -> Self {
        let conn = Self {
            inner: Rc::new(RefCell::new(Inner {
                url: Rc::new(url),
                socket: None,
                callbacks: Vec::new(),
                attempt: 0,
                retry_timer: None,
                retry_hint_ms: None,
                stopped: false,
                online: None,
            })),
            listener: Rc::new(listener),
        };
        conn.watch_online();
        conn.connect();
        conn
    }

    pub fn is_open(&self) -> bool {
        self.inner
            .borrow()
            .socket
            .as_ref()
            .is_some_and(|s| s.ready_state() == WebSocket::OPEN)
    }

    /// Sends a message if, and only if, the socket is open.
    pub fn send(&self, msg: &Command) -> Result<(), SendError> {
        let inner = self.inner.borrow();
        let socket = inner
            .socket
            .as_ref()
            .filter(|s| s.ready_state() == WebSocket::OPEN);
        let socket = socket.ok_or(SendError::NotOpen)?;
        socket
            .send_with_str(&msg.encode())
            .map_err(|_| SendError::NotOpen)
    }

    /// Skips the wait and reconnects now (used on the browser's `online` event).
    pub fn reconnect_now(&self) {
        let waiting = {
            let inner = self.inner.borrow();
            !inner.stopped && inner.retry_timer.is_some()
        };
        if waiting {
            self.cancel_timer();
            self.connect();
        }
    }

    /// Closes the socket with 1000 and stops reconnecting.
    pub fn close(&self) {
        self.cancel_timer();
        let socket = {
            let mut inner = self.inner.borrow_mut();
            inner.stopped = true;
            inner.online = None;
            inner.socket.take()
        };
        if let Some(socket) = socket {
            detach(&socket);
            let _ = socket.close_with_code_and_reason(1000, "left");
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

    fn connect(&self) {
        let url = (self.inner.borrow().url.clone())();
        self.emit(ConnEvent::State(ConnState::Connecting));
        // The typed protocol is asked for by name; without a subprotocol the server treats a
        // connection as a plain tutorial page.
        let socket = match WebSocket::new_with_str(&url, shared::SUBPROTOCOL_V3) {
            Ok(socket) => socket,
            Err(_) => {
                // An invalid URL: nothing to retry.
                self.emit(ConnEvent::Error);
                self.finish(1006, format!("cannot open {url}"));
                return;
            }
        };
        let weak = self.clone_weak();
        let on_open = Closure::<dyn FnMut(JsValueEvent)>::new({
            let weak = weak.clone();
            move |_| {
                if let Some(conn) = weak.upgrade() {
                    conn.inner.borrow_mut().attempt = 0;
                    conn.emit(ConnEvent::Opened);
                    conn.emit(ConnEvent::State(ConnState::Open));
                }
            }
        });
        let on_message = Closure::<dyn FnMut(JsValueEvent)>::new({
            let weak = weak.clone();
            move |e: JsValueEvent| {
                let Some(conn) = weak.upgrade() else { return };
                let Some(text) = e.unchecked_into::<MessageEvent>().data().as_string() else {
                    conn.emit(ConnEvent::BadFrame("binary frame".into()));
                    return;
                };
                match ServerMsg::decode(&text) {
                    Ok(msg) => conn.on_message(msg),
                    Err(e) => conn.emit(ConnEvent::BadFrame(e.to_string())),
                }
            }
        });
        let on_error = Closure::<dyn FnMut(JsValueEvent)>::new({
            let weak = weak.clone();
            move |_| {
                if let Some(conn) = weak.upgrade() {
                    conn.emit(ConnEvent::Error);
                }
            }
        });
        let on_close = Closure::<dyn FnMut(JsValueEvent)>::new({
            let weak = weak.clone();
            let socket = socket.clone();
            move |e: JsValueEvent| {
                if let Some(conn) = weak.upgrade() {
                    conn.on_close(&socket, e.unchecked_into::<CloseEvent>());
                }
            }
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let mut inner = self.inner.borrow_mut();
        inner.socket = Some(socket);
        inner.callbacks = vec![on_open, on_message, on_error, on_close];
    }

    fn on_message(&self, msg: ServerMsg) {
        if let ServerMsg::Shutdown { retry_after_ms } = &msg {
            self.inner.borrow_mut().retry_hint_ms = Some(*retry_after_ms as f64);
        }
        self.emit(ConnEvent::Message(msg));
    }

    fn on_close(&self, socket: &WebSocket, e: CloseEvent) {
        let (code, reason, clean) = (e.code(), e.reason(), e.was_clean());
        let (current, stopped) = {
            let inner = self.inner.borrow();
            let current = inner.socket.as_ref().is_some_and(|s| s == socket);
            (current, inner.stopped)
        };
        if !current {
            return; // an old socket's late event
        }
        self.emit(ConnEvent::Closed {
            code,
            reason: reason.clone(),
            clean,
        });
        {
            let mut inner = self.inner.borrow_mut();
            inner.socket = None;
            // Drop the callbacks after this event has run, not during it.
            drop_later(std::mem::take(&mut inner.callbacks));
        }
        if stopped || !close_code::should_reconnect(code) {
            self.finish(code, reason);
        } else {
            self.schedule_reconnect();
        }
    }

    fn finish(&self, code: u16, reason: String) {
        self.inner.borrow_mut().stopped = true;
        self.emit(ConnEvent::State(ConnState::Closed { code, reason }));
    }

    fn schedule_reconnect(&self) {
        let (attempt, delay) = {
            let mut inner = self.inner.borrow_mut();
            let attempt = inner.attempt;
            inner.attempt += 1;
            let delay = inner
                .retry_hint_ms
                .take()
                .unwrap_or_else(|| backoff_ms(attempt, js_sys::Math::random()));
            (attempt, delay)
        };
        let weak = self.clone_weak();
        let cb = Closure::<dyn FnMut()>::new(move || {
            if let Some(conn) = weak.upgrade() {
                conn.inner.borrow_mut().retry_timer = None;
                if !conn.inner.borrow().stopped {
                    conn.connect();
                }
            }
        });
        let Some(window) = web_sys::window() else {
            return;
        };
        let Ok(id) = window.set_timeout_with_callback_and_timeout_and_arguments_0(
            cb.as_ref().unchecked_ref(),
            delay as i32,
        ) else {
            return;
        };
        self.inner.borrow_mut().retry_timer = Some((id, cb));
        self.emit(ConnEvent::State(ConnState::Reconnecting {
            attempt: attempt + 1,
            retry_at_ms: js_sys::Date::now() + delay,
        }));
    }

    fn cancel_timer(&self) {
        let timer = self.inner.borrow_mut().retry_timer.take();
        if let (Some((id, _cb)), Some(window)) = (timer, web_sys::window()) {
            window.clear_timeout_with_handle(id);
        }
    }

    fn clone_weak(&self) -> WeakConnection {
        WeakConnection {
            inner: Rc::downgrade(&self.inner),
            listener: Rc::downgrade(&self.listener),
        }
    }
}

/// Removes the socket's handlers, so no event reaches a dropped closure.
pub(crate) fn detach(socket: &WebSocket) {
    socket.set_onopen(None);
    socket.set_onmessage(None);
    socket.set_onerror(None);
    socket.set_onclose(None);
}

/// Drops `value` on a zero-delay timer. Closures must outlive the event that is running them,
/// so a callback that ends its socket's life hands the closures here instead of dropping them.
pub(crate) fn drop_later<T: 'static>(value: T) {
    let cb = Closure::once_into_js(move || drop(value));
    if let Some(window) = web_sys::window() {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), 0);
    }
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

/// Cleans up the window listener when the last handle goes.
impl Drop for Inner {
    fn drop(&mut self) {
        if let (Some(cb), Some(window)) = (self.online.take(), web_sys::window()) {
            let _ =
                window.remove_event_listener_with_callback("online", cb.as_ref().unchecked_ref());
        }
        if let Some(socket) = self.socket.take() {
            detach(&socket);
            let _ = socket.close();
        }
    }
}
