//! The session (one v3 connection, many rooms) against the real server, in headless Chromium:
//! rooms joined over one connection, frames routed by room, unread counts, leave and join.
//!
//! The test script starts the server and passes its `ws://` base URL in
//! `SWITCHBOARD_TEST_SERVER` at build time.

use client::room::{LineKind, RoomStatus};
use client::state::{Session, parse_rooms};
use leptos::prelude::*;
use shared::RoomId;
use wasm_bindgen_test::*;

mod common;

use common::{server, sleep};

wasm_bindgen_test_configure!(run_in_browser);

fn room(name: &str) -> RoomId {
    RoomId::parse(name).unwrap()
}

/// Waits (up to 10 s) for `cond`.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        sleep(20).await;
    }
    panic!("timed out waiting for {what}");
}

fn status(session: &Session, name: &str) -> Option<RoomStatus> {
    session.room(name).map(|r| r.status.get_untracked())
}

fn chat_texts(session: &Session, name: &str) -> Vec<String> {
    session.room(name).map_or_else(Vec::new, |r| {
        r.lines.with_untracked(|lines| {
            lines
                .iter()
                .filter_map(|l| match &l.kind {
                    LineKind::Chat { text, .. } => Some(text.clone()),
                    LineKind::Notice(_) => None,
                })
                .collect()
        })
    })
}

#[wasm_bindgen_test]
async fn one_connection_joins_several_rooms_routes_frames_by_room_and_counts_unread() {
    let ada = Session::start(
        &server(),
        "sess-ada".into(),
        vec![room("sess-one"), room("sess-two")],
    );
    wait_until("ada in both rooms", || {
        status(&ada, "sess-one") == Some(RoomStatus::Joined)
            && status(&ada, "sess-two") == Some(RoomStatus::Joined)
    })
    .await;
    assert_eq!(ada.active.get_untracked(), Some(room("sess-one")));

    let bob = Session::start(&server(), "sess-bob".into(), vec![room("sess-two")]);
    wait_until("bob in sess-two", || {
        status(&bob, "sess-two") == Some(RoomStatus::Joined)
    })
    .await;
    bob.send_chat("only for two".into()).unwrap();
    wait_until("ada's sess-two gets it", || {
        chat_texts(&ada, "sess-two") == ["only for two"]
    })
    .await;
    // Routed by room: nothing in sess-one, and sess-two (not shown) counts it as unread.
    assert_eq!(chat_texts(&ada, "sess-one"), Vec::<String>::new());
    let two = ada.room("sess-two").unwrap();
    assert_eq!(two.unread.get_untracked(), 1);
    // Bob's own message is not unread for him, and his outbox is empty once it is broadcast.
    let bobs = bob.room("sess-two").unwrap();
    wait_until("bob's outbox empties", || {
        bobs.outbox.with_untracked(Vec::is_empty)
    })
    .await;
    assert_eq!(bobs.unread.get_untracked(), 0);

    ada.select(room("sess-two"));
    assert_eq!(two.unread.get_untracked(), 0);
    ada.send_chat("reply in two".into()).unwrap();
    wait_until("bob gets the reply", || {
        chat_texts(&bob, "sess-two") == ["only for two", "reply in two"]
    })
    .await;
    // News in the room shown is read, not unread.
    bob.send_chat("seen at once".into()).unwrap();
    wait_until("ada gets it", || chat_texts(&ada, "sess-two").len() == 3).await;
    assert_eq!(two.unread.get_untracked(), 0);

    // Leaving a room: gone from the list, the other stays shown, the server drops the member.
    ada.leave(&room("sess-one"));
    assert_eq!(ada.rooms.with_untracked(Vec::len), 1);
    ada.select(room("sess-two"));
    // Joining another on the same connection.
    ada.open_room(room("sess-three")).unwrap();
    assert_eq!(ada.active.get_untracked(), Some(room("sess-three")));
    wait_until("ada in sess-three", || {
        status(&ada, "sess-three") == Some(RoomStatus::Joined)
    })
    .await;
    assert!(ada.received.get_untracked() > 0, "frames were counted");
    ada.close();
    bob.close();
}

#[wasm_bindgen_test]
fn room_lists_parse_trimmed_and_deduplicated() {
    assert_eq!(
        parse_rooms(" lobby, random ,lobby,").unwrap(),
        vec![room("lobby"), room("random")]
    );
    assert!(parse_rooms(" , ").is_err());
    assert!(
        parse_rooms("lobby, bad room!")
            .unwrap_err()
            .contains("bad room!")
    );
}
