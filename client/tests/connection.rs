//! The connection module against the real server, in headless Chromium.
//!
//! The test script starts a server (`--allowed-origins '*' --max-message-bytes 4096`) on an
//! OS-picked port and passes its `ws://` base URL at build time in `SWITCHBOARD_TEST_SERVER`.

use std::cell::RefCell;
use std::rc::Rc;

use client::connection::{BACKOFF_CAP_MS, ConnEvent, ConnState, Connection, SendError, backoff_ms};
use client::endpoint::{chat_url, to_ws};
use client::transport::{Transport, parse_memory};
use shared::{Command, ErrorCode, RoomId, ServerMsg, close_code};
use wasm_bindgen_test::*;

mod common;

use common::{server, sleep};

wasm_bindgen_test_configure!(run_in_browser);

/// A connection with every event recorded.
struct Recorded {
    conn: Connection,
    events: Rc<RefCell<Vec<ConnEvent>>>,
}

fn open(url: String) -> Recorded {
    let events = Rc::new(RefCell::new(Vec::new()));
    let sink = events.clone();
    let conn = Connection::open(move || url.clone(), move |e| sink.borrow_mut().push(e));
    Recorded { conn, events }
}

impl Recorded {
    /// Waits (up to 10 s) until `count` events match `pred`.
    async fn wait_for(&self, what: &str, count: usize, pred: impl Fn(&ConnEvent) -> bool) {
        for _ in 0..500 {
            if self.events.borrow().iter().filter(|e| pred(e)).count() >= count {
                return;
            }
            sleep(20).await;
        }
        panic!(
            "timed out waiting for {what}; events: {:#?}",
            self.events.borrow()
        );
    }

    fn position(&self, pred: impl Fn(&ConnEvent) -> bool) -> usize {
        self.events
            .borrow()
            .iter()
            .position(pred)
            .expect("event present")
    }
}

/// A distinct token per test name (each test is a different person).
fn token(who: &str) -> String {
    format!("{who:-<16}-test-token")
}

fn is_hello(e: &ConnEvent) -> bool {
    matches!(e, ConnEvent::Message(ServerMsg::Hello(_)))
}

fn room(name: &str) -> RoomId {
    RoomId::parse(name).unwrap()
}

fn join(name: &str) -> Command {
    Command::Join {
        room: room(name),
        epoch: None,
        seq: None,
    }
}

fn chat(room_name: &str, msg: &str) -> Command {
    Command::Chat {
        room: room(room_name),
        msg: msg.into(),
        id: None,
    }
}

fn is_subscribed(room: &'static str) -> impl Fn(&ConnEvent) -> bool {
    move |e| matches!(e, ConnEvent::Message(ServerMsg::Subscribed(s)) if s.room == room)
}

#[wasm_bindgen_test]
async fn open_and_message_events_arrive_and_send_is_refused_until_open() {
    let a = open(chat_url(&server(), "wasm-ada", &token("wasm-ada")));
    // Still connecting: the command is refused, not queued or lost silently.
    assert_eq!(a.conn.send(&join("wasm-open")), Err(SendError::NotOpen));
    a.wait_for("open", 1, |e| matches!(e, ConnEvent::Opened))
        .await;
    a.wait_for("hello", 1, is_hello).await;
    assert!(a.conn.is_open());
    a.conn.send(&join("wasm-open")).unwrap();
    a.wait_for("subscribed", 1, is_subscribed("wasm-open"))
        .await;
    a.conn.send(&chat("wasm-open", "hello from wasm")).unwrap();
    a.wait_for(
        "own chat",
        1,
        |e| matches!(e, ConnEvent::Message(ServerMsg::Chat(c)) if c.msg == "hello from wasm"),
    )
    .await;
    assert!(a.position(|e| matches!(e, ConnEvent::Opened)) < a.position(is_hello));
    a.conn.close();
    a.wait_for("closed state", 1, |e| {
        matches!(e, ConnEvent::State(ConnState::Closed { .. }))
    })
    .await;
    assert_eq!(
        a.conn.send(&chat("wasm-open", "after close")),
        Err(SendError::NotOpen)
    );
}

#[wasm_bindgen_test]
async fn close_event_is_followed_by_an_automatic_reconnect() {
    let a = open(chat_url(&server(), "wasm-bob", &token("wasm-bob")));
    a.wait_for("hello", 1, is_hello).await;
    a.conn.send(&join("wasm-reconnect")).unwrap();
    a.wait_for("subscribed", 1, is_subscribed("wasm-reconnect"))
        .await;
    // Bigger than the server's --max-message-bytes: it closes the socket with 1009.
    a.conn
        .send(&chat("wasm-reconnect", &"x".repeat(5000)))
        .unwrap();
    a.wait_for("close 1009", 1, |e| {
        matches!(e, ConnEvent::Closed { code: 1009, .. })
    })
    .await;
    a.wait_for("reconnecting", 1, |e| {
        matches!(
            e,
            ConnEvent::State(ConnState::Reconnecting { attempt: 1, .. })
        )
    })
    .await;
    a.wait_for("second open", 2, |e| matches!(e, ConnEvent::Opened))
        .await;
    a.wait_for("second hello", 2, is_hello).await;
    // A new connection has joined nothing: the room is joined again.
    a.conn.send(&join("wasm-reconnect")).unwrap();
    a.wait_for("second subscribed", 2, is_subscribed("wasm-reconnect"))
        .await;
    a.conn.send(&chat("wasm-reconnect", "back")).unwrap();
    a.wait_for(
        "chat after reconnect",
        1,
        |e| matches!(e, ConnEvent::Message(ServerMsg::Chat(c)) if c.msg == "back"),
    )
    .await;
    a.conn.close();
}

#[wasm_bindgen_test]
async fn error_event_fires_when_the_server_is_unreachable_and_retries_are_scheduled() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let a = open("ws://127.0.0.1:1/ws?name=nobody".into());
    a.wait_for("error", 1, |e| matches!(e, ConnEvent::Error))
        .await;
    a.wait_for("close", 1, |e| {
        matches!(e, ConnEvent::Closed { code: 1006, .. })
    })
    .await;
    a.wait_for("reconnecting", 1, |e| {
        matches!(e, ConnEvent::State(ConnState::Reconnecting { .. }))
    })
    .await;
    a.conn.close();
}

#[wasm_bindgen_test]
async fn a_taken_name_refuses_that_room_only_and_the_connection_goes_on() {
    let first = open(chat_url(&server(), "wasm-dup", &token("wasm-dup")));
    first.wait_for("hello", 1, is_hello).await;
    first.conn.send(&join("wasm-dup")).unwrap();
    first
        .wait_for("subscribed", 1, is_subscribed("wasm-dup"))
        .await;
    // Another person (another token) asks for the same name in that room and in another.
    let second = open(chat_url(&server(), "wasm-dup", &token("wasm-dup-other")));
    second.wait_for("hello", 1, is_hello).await;
    second.conn.send(&join("wasm-dup")).unwrap();
    second
        .wait_for("join_refused", 1, |e| {
            matches!(
                e,
                ConnEvent::Message(ServerMsg::JoinRefused {
                    code: ErrorCode::NameTaken,
                    room,
                    ..
                }) if room == "wasm-dup"
            )
        })
        .await;
    second.conn.send(&join("wasm-dup-elsewhere")).unwrap();
    second
        .wait_for("other room", 1, is_subscribed("wasm-dup-elsewhere"))
        .await;
    assert!(second.conn.is_open());
    first.conn.close();
    second.conn.close();
}

#[wasm_bindgen_test]
async fn an_invalid_name_ends_the_session_without_retrying() {
    let a = open(chat_url(&server(), &"n".repeat(80), &token("wasm-long")));
    a.wait_for("name_invalid", 1, |e| {
        matches!(
            e,
            ConnEvent::Message(ServerMsg::Error {
                code: ErrorCode::NameInvalid,
                ..
            })
        )
    })
    .await;
    a.wait_for("final close", 1, |e| {
        matches!(e, ConnEvent::State(ConnState::Closed { code, .. }) if *code == close_code::REJECTED)
    })
    .await;
    sleep(700).await;
    assert!(
        !a.events
            .borrow()
            .iter()
            .any(|e| matches!(e, ConnEvent::State(ConnState::Reconnecting { .. }))),
        "retried a refused name"
    );
}

#[wasm_bindgen_test]
fn backoff_grows_exponentially_with_full_jitter_and_a_cap() {
    assert!(backoff_ms(0, 0.999) <= 500.0);
    assert!(backoff_ms(3, 0.999) <= 4000.0 && backoff_ms(3, 0.999) > 3900.0);
    assert_eq!(backoff_ms(30, 1.0), BACKOFF_CAP_MS);
    assert!(backoff_ms(5, 0.0) >= 100.0, "floor");
}

#[wasm_bindgen_test]
fn server_urls_become_websocket_urls() {
    assert_eq!(to_ws("https://chat.example.com/"), "wss://chat.example.com");
    assert_eq!(to_ws("http://127.0.0.1:3000"), "ws://127.0.0.1:3000");
    assert_eq!(to_ws("wss://x"), "wss://x");
    assert_eq!(to_ws("localhost:3000"), "ws://localhost:3000");
    assert_eq!(
        chat_url("ws://h", "Zoë & co", "t0123456789abcdef"),
        "ws://h/ws?name=Zo%C3%AB%20%26%20co&token=t0123456789abcdef"
    );
    assert_eq!(client::endpoint::http_base("wss://h:1"), "https://h:1");
    assert_eq!(client::numbers::tenths(12.34), "12.3");
    assert_eq!(client::numbers::tenths(0.05), "0.1");
    assert_eq!(client::numbers::tenths(-0.06), "-0.1");
    assert_eq!(client::numbers::tenths(7.0), "7.0");
    assert_eq!(
        client::numbers::spread(&mut [3.0, 1.0, 2.0, 9.0, 0.5]),
        (0.5, 2.0, 9.0)
    );
    assert_eq!(client::numbers::spread(&mut []), (0.0, 0.0, 0.0));
}

/// A connection forced onto one way, with every event recorded.
fn open_on(transport: Transport, url: String) -> Recorded {
    let events = Rc::new(RefCell::new(Vec::new()));
    let sink = events.clone();
    let conn = Connection::open_on(
        Some(transport),
        move || url.clone(),
        move |e| sink.borrow_mut().push(e),
    );
    Recorded { conn, events }
}

/// The same exchange over SSE (with POSTs) and over long-polling: refused before the session
/// is there, then hello, a join, a message to a WebSocket client in the room and one back.
#[wasm_bindgen_test]
async fn sse_and_long_polling_carry_the_same_session_as_a_websocket() {
    for (transport, who) in [
        (Transport::Sse, "wasm-sse"),
        (Transport::LongPoll, "wasm-poll"),
    ] {
        let room_name: &'static str = if transport == Transport::Sse {
            "wasm-http-sse"
        } else {
            "wasm-http-poll"
        };
        let ws = open(chat_url(
            &server(),
            &format!("{who}-ws"),
            &token(&format!("{who}-ws")),
        ));
        ws.wait_for("hello", 1, is_hello).await;
        ws.conn.send(&join(room_name)).unwrap();
        ws.wait_for("subscribed", 1, is_subscribed(room_name)).await;

        let a = open_on(transport, chat_url(&server(), who, &token(who)));
        assert_eq!(a.conn.transport(), transport);
        assert_eq!(a.conn.send(&join(room_name)), Err(SendError::NotOpen));
        a.wait_for("transport", 1, |e| *e == ConnEvent::Transport(transport))
            .await;
        a.wait_for("open", 1, |e| matches!(e, ConnEvent::Opened))
            .await;
        a.wait_for("hello", 1, is_hello).await;
        assert!(a.conn.is_open());
        a.conn.send(&join(room_name)).unwrap();
        a.wait_for("subscribed", 1, is_subscribed(room_name)).await;
        ws.conn
            .send(&chat(room_name, "to the http client"))
            .unwrap();
        a.wait_for("the WebSocket client's message", 1, |e| {
            matches!(e, ConnEvent::Message(ServerMsg::Chat(c)) if c.msg == "to the http client")
        })
        .await;
        a.conn
            .send(&chat(room_name, "from the http client"))
            .unwrap();
        ws.wait_for("the http client's message", 1, |e| {
            matches!(e, ConnEvent::Message(ServerMsg::Chat(c)) if c.msg == "from the http client")
        })
        .await;
        // Leaving tells the server at once: the WebSocket client sees the member go.
        a.conn.close();
        ws.wait_for("the http client left", 1, |e| {
            matches!(e, ConnEvent::Message(ServerMsg::Left { member, .. }) if member.name == who)
        })
        .await;
        ws.conn.close();
    }
}

#[wasm_bindgen_test]
fn a_remembered_transport_is_read_back_until_it_expires() {
    assert_eq!(parse_memory("sse@2000", 1000.0), Some(Transport::Sse));
    assert_eq!(parse_memory("poll@2000", 1999.0), Some(Transport::LongPoll));
    assert_eq!(parse_memory("poll@2000", 2000.0), None, "expired");
    assert_eq!(parse_memory("carrier-pigeon@2000", 0.0), None);
    assert_eq!(parse_memory("sse", 0.0), None);
    assert_eq!(Transport::WebSocket.fallback(), Some(Transport::Sse));
    assert_eq!(Transport::Sse.fallback(), Some(Transport::LongPoll));
    assert_eq!(Transport::LongPoll.fallback(), None);
    for t in [Transport::WebSocket, Transport::Sse, Transport::LongPoll] {
        assert_eq!(Transport::from_key(t.key()), Some(t));
    }
}
