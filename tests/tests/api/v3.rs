//! Protocol v3 (`switchboard.v3`): one connection, many rooms. Each join is answered with the
//! room's epoch, resume outcome and members, then its replay, then its live frames; every
//! room-scoped frame names its room; acks, dedup and resume work per room.

use futures_util::SinkExt;
use shared::{
    Command, ErrorCode, GapReason, Member, PROTOCOL_V3, Resume, RoomId, ServerMsg, close_code,
};
use switchboard_tests::{spawn_app, spawn_app_with};
use tokio_tungstenite::tungstenite::Message;

fn room(name: &str) -> RoomId {
    RoomId::parse(name).unwrap()
}

#[tokio::test]
async fn one_connection_joins_two_rooms_and_every_frame_names_its_room() {
    let app = spawn_app().await;
    let (mut ada, hello) = app.connect_v3("?name=ada&feed=0").await;
    assert_eq!(
        (hello.protocol, hello.name.as_deref(), hello.max_rooms),
        (PROTOCOL_V3, Some("ada"), 32)
    );
    let lobby = ada.join_room("lobby", None).await;
    assert_eq!(lobby.room, "lobby");
    assert_eq!(lobby.resume, Resume::Fresh { count: 0 });
    assert_eq!(
        lobby.members,
        [Member {
            name: "ada".into(),
            connections: 1
        }]
    );
    let kitchen = ada.join_room("kitchen", None).await;
    // One connection in two rooms is one session, not two.
    let (_, _, health) = app.http_get("/healthz").await.unwrap();
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["sessions"], 1);
    assert_eq!(
        (kitchen.room.as_str(), &kitchen.epoch),
        ("kitchen", &lobby.epoch)
    );

    // A v2 client in one of the rooms: ada hears of it, in that room.
    let (mut bob, _) = app.join("bob", "kitchen").await;
    match ada.recv().await {
        ServerMsg::Joined { room, member } => {
            assert_eq!((room.as_str(), member.name.as_str()), ("kitchen", "bob"))
        }
        other => panic!("expected bob joining the kitchen, got {other:?}"),
    }
    ada.chat_in("kitchen", "soup is ready", "k1").await;
    let chat = ada.chats(1).await.remove(0);
    assert_eq!(
        (chat.room.as_str(), chat.seq, chat.msg.as_str()),
        ("kitchen", 1, "soup is ready")
    );
    match ada.recv().await {
        ServerMsg::Ack { id, seq, room, .. } => {
            assert_eq!(
                (id.as_str(), seq, room.as_deref()),
                ("k1", 1, Some("kitchen"))
            )
        }
        other => panic!("expected the ack, got {other:?}"),
    }
    let heard = bob.chats(1).await.remove(0);
    assert_eq!(
        (heard.name.as_str(), heard.room.as_str()),
        ("ada", "kitchen")
    );
    bob.chat("coming").await;
    let from_bob = ada.chats(1).await.remove(0);
    assert_eq!(
        (from_bob.room.as_str(), from_bob.seq, from_bob.name.as_str()),
        ("kitchen", 2, "bob")
    );
    // Each room has its own seqs.
    ada.chat_in("lobby", "hello lobby", "l1").await;
    let in_lobby = ada.chats(1).await.remove(0);
    assert_eq!((in_lobby.room.as_str(), in_lobby.seq), ("lobby", 1));
    assert_eq!(ada.ack("l1").await, 1);
    // A room not joined is a typed error, and the connection goes on.
    ada.chat_in("attic", "anyone?", "a1").await;
    match ada.recv().await {
        ServerMsg::Error { code, room, .. } => {
            assert_eq!(
                (code, room.as_deref()),
                (ErrorCode::NotJoined, Some("attic"))
            )
        }
        other => panic!("expected not_joined, got {other:?}"),
    }
    // An error about a room-scoped command names its room.
    ada.chat_in("kitchen", "   ", "k2").await;
    match ada.recv().await {
        ServerMsg::Error { code, room, .. } => {
            assert_eq!(
                (code, room.as_deref()),
                (ErrorCode::TextInvalid, Some("kitchen"))
            )
        }
        other => panic!("expected text_invalid, got {other:?}"),
    }
    // A frame that is about no room gets an error that names none.
    ada.stream
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![1, 2]))
        .await
        .unwrap();
    match ada.recv().await {
        ServerMsg::Error { code, room, .. } => {
            assert_eq!((code, room), (ErrorCode::BinaryNotSupported, None))
        }
        other => panic!("expected binary_not_supported, got {other:?}"),
    }
}

#[tokio::test]
async fn each_room_resumes_from_its_own_position_without_gap_or_duplicate() {
    let app = spawn_app().await;
    let (mut bob, _) = app.join("bob", "r1").await;
    let (mut cy, _) = app.join("cy", "r2").await;
    let (mut ada, _) = app
        .connect_v3("?name=ada&feed=0&token=ada-token-0123456789")
        .await;
    let epoch = ada.join_room("r1", None).await.epoch;
    ada.join_room("r2", None).await;
    for text in ["one", "two"] {
        bob.chat(text).await;
    }
    cy.chat("only one").await;
    let seen = ada.chats(3).await;
    let last = |room: &str| {
        seen.iter()
            .filter(|c| c.room == room)
            .map(|c| c.seq)
            .max()
            .unwrap()
    };
    assert_eq!((last("r1"), last("r2")), (2, 1));
    drop(ada);

    for text in ["three", "four", "five"] {
        bob.chat(text).await;
    }
    bob.chats(5).await; // bob's own messages, so they are stored before ada comes back
    let (mut ada, _) = app
        .connect_v3("?name=ada&feed=0&token=ada-token-0123456789")
        .await;
    let r1 = ada.join_room("r1", Some((&epoch, 2))).await;
    assert_eq!(r1.resume, Resume::Recovered { count: 3 });
    let replayed: Vec<(String, u64, String)> = ada
        .chats(3)
        .await
        .into_iter()
        .map(|c| (c.room, c.seq, c.msg))
        .collect();
    assert_eq!(
        replayed,
        [
            ("r1".into(), 3, "three".into()),
            ("r1".into(), 4, "four".into()),
            ("r1".into(), 5, "five".into())
        ]
    );
    let r2 = ada.join_room("r2", Some((&epoch, 1))).await;
    assert_eq!(r2.resume, Resume::Live);
    let old = ada.join_room("r3", Some(("another-epoch", 7))).await;
    assert_eq!(
        old.resume,
        Resume::Gap {
            reason: GapReason::EpochChanged,
            count: 0
        }
    );
    // Live again: the next messages in r1 come once each, after the replay (a duplicate of 6
    // would come before 7).
    bob.chat("six").await;
    bob.chat("seven").await;
    let live: Vec<(String, u64)> = ada
        .chats(2)
        .await
        .into_iter()
        .map(|c| (c.room, c.seq))
        .collect();
    assert_eq!(live, [("r1".into(), 6), ("r1".into(), 7)]);
}

#[tokio::test]
async fn a_connection_joins_at_most_its_limit_of_rooms_and_leaving_frees_a_place() {
    let app = spawn_app_with(|s| s.max_rooms_per_connection = 2).await;
    let (mut watcher, _) = app.join("watcher", "a").await;
    let (mut ada, hello) = app.connect_v3("?name=ada&feed=0").await;
    assert_eq!(hello.max_rooms, 2);
    ada.join_room("a", None).await;
    ada.join_room("b", None).await;
    let refused = |ada_frame: ServerMsg, want_room: &str, want: ErrorCode| match ada_frame {
        ServerMsg::JoinRefused { room, code, .. } => {
            assert_eq!((room.as_str(), code), (want_room, want))
        }
        other => panic!("expected join_refused, got {other:?}"),
    };
    ada.command(&Command::Join {
        room: room("c"),
        epoch: None,
        seq: None,
    })
    .await;
    refused(ada.recv().await, "c", ErrorCode::TooManyRooms);
    ada.command(&Command::Join {
        room: room("a"),
        epoch: None,
        seq: None,
    })
    .await;
    refused(ada.recv().await, "a", ErrorCode::AlreadyJoined);
    // Ada's arrival is announced (a join and a leave within one presence interval would net
    // out to nothing).
    let joined = watcher
        .recv_until(|m| match m {
            ServerMsg::Joined { room, member } => Some((room, member.name)),
            _ => None,
        })
        .await;
    assert_eq!(joined, ("a".to_owned(), "ada".to_owned()));

    ada.command(&Command::Leave { room: room("a") }).await;
    match ada.recv().await {
        ServerMsg::Unsubscribed { room } => assert_eq!(room, "a"),
        other => panic!("expected unsubscribed, got {other:?}"),
    }
    // Leaving on purpose releases the name at once.
    let left = watcher
        .recv_until(|m| match m {
            ServerMsg::Left { room, member } => Some((room, member.name)),
            _ => None,
        })
        .await;
    assert_eq!(left, ("a".to_owned(), "ada".to_owned()));
    assert_eq!(ada.join_room("c", None).await.room, "c");
}

/// Joins have their own bucket: a join announces a member and replays history, so churn is
/// limited apart from messages. A join over the rate is refused as a join (the client knows
/// which room to ask for again); one refused for the room limit spends no join token (a
/// control token instead); leaving a joined room is never limited; messages still go through.
#[tokio::test]
async fn joins_over_their_own_rate_are_refused_while_leaves_and_messages_go_through() {
    let app = spawn_app_with(|s| {
        s.join_rate_per_sec = 1;
        s.join_rate_burst = 3;
        s.max_rooms_per_connection = 2;
    })
    .await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("a", None).await;
    ada.join_room("b", None).await;
    let join = |name: &str| Command::Join {
        room: room(name),
        epoch: None,
        seq: None,
    };
    let refused = |frame: ServerMsg| match frame {
        ServerMsg::JoinRefused { room, code, reason } => (room, code, reason),
        other => panic!("expected join_refused, got {other:?}"),
    };
    let left = |frame: ServerMsg, name: &str| match frame {
        ServerMsg::Unsubscribed { room } => assert_eq!(room, name),
        other => panic!("expected unsubscribed from {name}, got {other:?}"),
    };
    // At the room limit: refused for that, without spending the last join token.
    ada.command(&join("c")).await;
    let (r, code, _) = refused(ada.recv().await);
    assert_eq!((r.as_str(), code), ("c", ErrorCode::TooManyRooms));
    ada.command(&Command::Leave { room: room("a") }).await;
    left(ada.recv().await, "a");
    // The third token is still there.
    assert_eq!(ada.join_room("c", None).await.room, "c");
    // The bucket is empty now; a leave still goes through.
    ada.command(&Command::Leave { room: room("c") }).await;
    left(ada.recv().await, "c");
    ada.command(&join("d")).await;
    let (r, code, reason) = refused(ada.recv().await);
    assert_eq!((r.as_str(), code), ("d", ErrorCode::RateLimited));
    assert!(reason.contains("joins per second"), "{reason}");
    // Messages have their own budget.
    ada.chat_in("b", "still here", "b1").await;
    assert_eq!(ada.ack("b1").await, 1);
}

/// A join or leave refused outright costs a control token: a client looping refusals is rate
/// limited (the error names the room) and, refused often enough in a row, closed with 1008.
#[tokio::test]
async fn looping_refused_joins_and_leaves_is_rate_limited_and_then_closed() {
    let app = spawn_app_with(|s| {
        s.control_rate_per_sec = 1;
        s.control_rate_burst = 2;
        s.rate_abuse_limit = 3;
    })
    .await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("a", None).await;
    let again = Command::Join {
        room: room("a"),
        epoch: None,
        seq: None,
    };
    ada.command(&again).await;
    let (r, code) = match ada.recv().await {
        ServerMsg::JoinRefused { room, code, .. } => (room, code),
        other => panic!("expected join_refused, got {other:?}"),
    };
    assert_eq!((r.as_str(), code), ("a", ErrorCode::AlreadyJoined));
    ada.command(&Command::Leave { room: room("z") }).await;
    match ada.recv().await {
        ServerMsg::Error { code, room, .. } => {
            assert_eq!((code, room.as_deref()), (ErrorCode::NotJoined, Some("z")))
        }
        other => panic!("expected not_joined, got {other:?}"),
    }
    // The control bucket is empty: the next refusals are rate limited, and the third in a
    // row closes the connection.
    for _ in 0..2 {
        ada.command(&again).await;
        match ada.recv().await {
            ServerMsg::Error { code, room, .. } => {
                assert_eq!((code, room.as_deref()), (ErrorCode::RateLimited, Some("a")))
            }
            other => panic!("expected rate_limited, got {other:?}"),
        }
    }
    ada.command(&again).await;
    assert_eq!(ada.close_code().await, 1008);
}

/// While one room replays a backlog to a client that is slow to read (the socket's buffers
/// full, the queue more than half full), the connection's live frames (the feed, another
/// room's chat) still fit: the replay never holds free slots it is not using, so nothing finds
/// the queue full and the client is not dropped as a slow consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_frames_of_other_rooms_and_the_feed_still_fit_while_a_room_replays() {
    use switchboard_tests::Event;
    // 3,000 messages of ~4 KB (12 MB): more than the server's send buffer (at most 4 MiB) and
    // ada's fixed 64 KiB receive buffer hold, so the replay waits.
    const BACKLOG: usize = 3000;
    let app = spawn_app_with(|s| {
        s.history_on_join = BACKLOG as u64;
        s.rate_per_sec = 100_000;
        s.rate_burst = 100_000;
    })
    .await;
    let (mut writer, _) = app.join("writer", "backlog").await;
    // Every message stored (acknowledged) before ada joins.
    writer.fill_history(BACKLOG, &"x".repeat(3900)).await;
    // The feed on (the stock client's default), and a second room with traffic.
    let (mut ada, _) = app.connect_v3_small_window("?name=ada").await;
    ada.join_room("other", None).await;
    ada.command(&Command::Join {
        room: room("backlog"),
        epoch: None,
        seq: None,
    })
    .await;
    let (mut bob, _) = app.join("bob", "other").await;
    bob.chat("live in other").await;
    // Ada reads nothing for a while: her socket fills, the replay waits with her queue half
    // full, and the feed's ticks (once a second) and bob's message arrive meanwhile.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (mut backlog, mut other) = (0, false);
    while backlog < BACKLOG || !other {
        match ada.next_event().await.expect("a frame") {
            Event::Msg(ServerMsg::Chat(c)) if c.room == "backlog" => backlog += 1,
            Event::Msg(ServerMsg::Chat(c)) => {
                assert_eq!(
                    (c.room.as_str(), c.msg.as_str()),
                    ("other", "live in other")
                );
                other = true;
            }
            Event::Close(frame) => panic!("dropped after {backlog} replayed messages: {frame:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_name_taken_in_one_room_refuses_that_join_only() {
    let app = spawn_app().await;
    let (_eve, _) = app.join_as("ada", "x", "eve-token-0123456789", None).await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("y", None).await;
    ada.command(&Command::Join {
        room: room("x"),
        epoch: None,
        seq: None,
    })
    .await;
    match ada.recv().await {
        ServerMsg::JoinRefused { room, code, .. } => {
            assert_eq!((room.as_str(), code), ("x", ErrorCode::NameTaken))
        }
        other => panic!("expected join_refused, got {other:?}"),
    }
    ada.chat_in("y", "still here", "y1").await;
    assert_eq!(ada.ack("y1").await, 1);
}

#[tokio::test]
async fn a_client_speaking_another_protocol_version_is_told_to_reload() {
    let app = spawn_app().await;
    let mut old = app
        .connect_with_headers(
            "/ws?name=ada",
            &[("Sec-WebSocket-Protocol", "switchboard.v9")],
        )
        .await
        .expect("the upgrade is answered, so the client can read why");
    match old.recv().await {
        ServerMsg::Reload { protocol, reason } => {
            assert_eq!(protocol, PROTOCOL_V3);
            assert!(reason.contains("switchboard.v9"), "{reason}");
        }
        other => panic!("expected reload, got {other:?}"),
    }
    assert_eq!(old.close_code().await, close_code::PROTOCOL_VERSION);
}

/// A room of more members than the server lists (`--presence-list-max`) announces counts, not
/// names, and its members are paged with `members`; a room small again is listed in full.
#[tokio::test]
async fn a_room_too_large_to_list_announces_counts_and_pages_its_members() {
    let app = spawn_app_with(|s| {
        s.presence_list_max = 5;
        s.members_page = 4;
    })
    .await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    assert_eq!(ada.join_room("big", None).await.online, 1);
    let mut others = Vec::new();
    for i in 0..11 {
        let (mut member, _) = app.connect_v3(&format!("?name=m{i:02}&feed=0")).await;
        member.join_room("big", None).await;
        others.push(member);
    }
    // Ada's view: names while the room is small, then only counts, up to 12.
    let mut listed = vec!["ada".to_owned()];
    loop {
        match ada.recv().await {
            ServerMsg::Joined { room, member } => {
                assert_eq!(room, "big");
                listed.push(member.name);
            }
            ServerMsg::PresenceBatch {
                room,
                online,
                changed,
                left,
                full,
            } => {
                assert_eq!(room, "big");
                assert!(!full && left.is_empty());
                if online > 5 {
                    assert!(
                        changed.is_empty(),
                        "names in a room of {online}: {changed:?}"
                    );
                } else {
                    listed.extend(changed.into_iter().map(|m| m.name));
                }
                if online == 12 {
                    break;
                }
            }
            other => panic!("expected presence, got {other:?}"),
        }
    }
    assert!(listed.len() <= 5, "listed past the limit: {listed:?}");
    // A joiner gets the first page and the count.
    let (mut zed, _) = app.connect_v3("?name=zed&feed=0").await;
    let subscribed = zed.join_room("big", None).await;
    assert_eq!(subscribed.online, 13);
    let first: Vec<&str> = subscribed.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(first, ["ada", "m00", "m01", "m02"]);
    // The pages, in name order, until there is no next one.
    let mut names = Vec::new();
    let mut after = None;
    loop {
        zed.command(&Command::Members {
            room: room("big"),
            after: after.clone(),
        })
        .await;
        let (members, online, next) = zed
            .recv_until(|m| match m {
                ServerMsg::Members {
                    room,
                    members,
                    online,
                    next,
                } if room == "big" => Some((members, online, next)),
                _ => None,
            })
            .await;
        assert_eq!(online, 13);
        assert!(members.len() <= 4);
        names.extend(members.into_iter().map(|m| m.name));
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut expected = vec!["ada".to_owned(), "zed".to_owned()];
    expected.extend((0..11).map(|i| format!("m{i:02}")));
    expected.sort();
    assert_eq!(names, expected);
    // Not a member: a typed error naming the room.
    zed.command(&Command::Members {
        room: room("elsewhere"),
        after: None,
    })
    .await;
    let (code, error_room) = zed
        .recv_until(|m| match m {
            ServerMsg::Error { code, room, .. } => Some((code, room)),
            _ => None,
        })
        .await;
    assert_eq!(
        (code, error_room.as_deref()),
        (ErrorCode::NotJoined, Some("elsewhere"))
    );
    // Small again: the whole list (`full`), then changes to it, down to Ada and Zed.
    drop(others);
    let mut view: Option<Vec<String>> = None;
    while view.as_ref().is_none_or(|v| v.len() != 2) {
        match zed.recv().await {
            ServerMsg::PresenceBatch {
                changed,
                left,
                full,
                online,
                ..
            } => {
                if full {
                    view = Some(changed.iter().map(|m| m.name.clone()).collect());
                    assert_eq!(online as usize, changed.len());
                } else if let Some(view) = &mut view {
                    view.retain(|n| !left.contains(n));
                    assert!(changed.is_empty(), "only departures: {changed:?}");
                    assert_eq!(online as usize, view.len());
                }
            }
            ServerMsg::Left { member, .. } => {
                if let Some(view) = &mut view {
                    view.retain(|n| *n != member.name);
                }
            }
            other => panic!("expected presence, got {other:?}"),
        }
    }
    assert_eq!(view.unwrap(), ["ada", "zed"]);
}

/// A connection does not wait for one message's commit before it reads the next (many commit
/// together), yet everything it sends keeps its order: acks come back in the order sent, each
/// room's seqs follow that order, and another member hears them in it. A client that sends
/// far more than its queue holds before it reads anything (here with refused commands after
/// each message, answered at once) is slowed down, not dropped as a slow consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_without_waiting_are_stored_acked_and_heard_in_the_order_sent() {
    let app = spawn_app_with(|s| {
        s.rate_per_sec = 100_000;
        s.rate_burst = 100_000;
        s.outbound_queue = 16;
    })
    .await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("lobby", None).await;
    ada.join_room("kitchen", None).await;
    let (mut bob, _) = app.join("bob", "lobby").await;
    ada.recv().await; // bob joined the lobby

    const SENT: usize = 200;
    const REFUSED_EACH: usize = 40; // answers: over 500 times the queue
    let rooms = ["lobby", "kitchen"];
    for n in 0..SENT {
        let command = Command::Chat {
            room: room(rooms[n % 2]),
            msg: format!("m{n}"),
            id: Some(format!("i{n}")),
        };
        let text = serde_json::to_string(&command).unwrap();
        ada.stream.feed(Message::text(text)).await.unwrap();
        for _ in 0..REFUSED_EACH {
            let refused = r#"{"type":"chat","room":"attic","msg":"x"}"#;
            ada.stream.feed(Message::text(refused)).await.unwrap();
        }
    }
    ada.stream.flush().await.unwrap();

    let (mut acks, mut heard, mut refusals) = (Vec::new(), Vec::new(), 0);
    while acks.len() < SENT || heard.len() < SENT || refusals < SENT * REFUSED_EACH {
        match ada.recv().await {
            ServerMsg::Error {
                code: ErrorCode::NotJoined,
                room: Some(room),
                ..
            } if room == "attic" => refusals += 1,
            ServerMsg::Ack { id, seq, room, .. } => acks.push((id, room.unwrap(), seq)),
            ServerMsg::Chat(c) => heard.push((c.msg, c.room.to_string(), c.seq)),
            other => panic!("expected acks and chats, got {other:?}"),
        }
    }
    let expected = |prefix: &str| -> Vec<(String, String, u64)> {
        (0..SENT)
            .map(|n| {
                let seq = (n / 2 + 1) as u64;
                (format!("{prefix}{n}"), rooms[n % 2].to_owned(), seq)
            })
            .collect()
    };
    assert_eq!(acks, expected("i"));
    assert_eq!(heard, expected("m"));
    let lobby: Vec<_> = bob
        .chats(SENT / 2)
        .await
        .into_iter()
        .map(|c| (c.msg, c.seq))
        .collect();
    let sent_to_lobby: Vec<_> = (0..SENT)
        .step_by(2)
        .map(|n| (format!("m{n}"), (n / 2 + 1) as u64))
        .collect();
    assert_eq!(lobby, sent_to_lobby);
}
