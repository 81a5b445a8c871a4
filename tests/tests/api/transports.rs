//! The HTTP transports (SSE down with POSTs up, and long-polling) on the same session core as
//! the WebSocket: a client on each talks with a WebSocket client in the same room; a dropped
//! stream resumes without gap or duplicate; forged, foreign and idle sessions are refused or
//! reaped; caps count every transport.

use shared::{Command, ErrorCode, PROTOCOL_V3, Resume, RoomId, ServerMsg, close_code};
use switchboard_tests::http::{PollClient, SseClient, SseItem, http_request, send_frames};
use switchboard_tests::{spawn_app, spawn_app_with};

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

fn chat(room_name: &str, msg: &str, id: &str) -> Command {
    Command::Chat {
        room: room(room_name),
        msg: msg.into(),
        id: Some(id.into()),
    }
}

/// The typed error code of a refusal's JSON body.
fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["error"].as_str().expect("error code").to_owned()
}

#[tokio::test]
async fn an_sse_client_chats_with_a_websocket_client_and_resumes_a_dropped_stream_without_gap_or_duplicate()
 {
    let app = spawn_app().await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("relay", None).await;

    let mut bob = SseClient::open(&app, "?name=bob&feed=0", &[])
        .await
        .unwrap();
    assert!(
        bob.head.contains("content-type: text/event-stream"),
        "{}",
        bob.head
    );
    assert!(bob.head.contains("cache-control: no-cache"), "{}", bob.head);
    assert!(bob.head.contains("x-accel-buffering: no"), "{}", bob.head);
    // A heartbeat first, with the interval (15 s by default), so the client can tell a silent
    // stream from a quiet one.
    assert_eq!(bob.next_item().await.unwrap(), SseItem::Ping(15_000));
    let hello = match bob.recv().await {
        ServerMsg::Hello(h) => h,
        other => panic!("expected hello, got {other:?}"),
    };
    assert_eq!(
        (hello.protocol, hello.name.as_deref()),
        (PROTOCOL_V3, Some("bob"))
    );
    let secret = bob.secret();
    assert_eq!(secret.len(), 48, "the node id and 128 random bits, in hex");
    assert_ne!(secret, hello.session.to_string());

    bob.send(&[join("relay")]).await;
    let subscribed = bob
        .recv_until(|m| match m {
            ServerMsg::Subscribed(s) => Some(s),
            _ => None,
        })
        .await;
    assert_eq!(
        (subscribed.room.as_str(), &subscribed.resume),
        ("relay", &Resume::Fresh { count: 0 })
    );

    // WebSocket to SSE.
    ada.chat_in("relay", "one", "a1").await;
    assert_eq!(
        ada.chats(1).await[0].msg,
        "one",
        "ada's own message comes back to her"
    );
    let got = bob
        .recv_until(|m| match m {
            ServerMsg::Chat(c) => Some(c),
            _ => None,
        })
        .await;
    assert_eq!(
        (
            got.room.as_str(),
            got.seq,
            got.msg.as_str(),
            got.name.as_str()
        ),
        ("relay", 1, "one", "ada")
    );
    // SSE (a POST) to WebSocket, acknowledged on the stream once stored.
    bob.send(&[chat("relay", "two", "b1")]).await;
    let from_bob = ada.chats(1).await.remove(0);
    assert_eq!(
        (from_bob.seq, from_bob.msg.as_str(), from_bob.name.as_str()),
        (2, "two", "bob")
    );
    let acked = bob
        .recv_until(|m| match m {
            ServerMsg::Ack { id, seq, room, .. } => Some((id, seq, room)),
            _ => None,
        })
        .await;
    assert_eq!(acked, ("b1".into(), 2, Some("relay".into())));

    // The stream drops; three messages arrive meanwhile; the stream comes back with
    // Last-Event-ID, as EventSource does.
    let last_id = bob.last_event_id.clone().unwrap();
    drop(bob);
    for (i, text) in ["three", "four", "five"].iter().enumerate() {
        ada.chat_in("relay", text, &format!("r{i}")).await;
    }
    assert_eq!(
        ada.chats(3).await.len(),
        3,
        "ada's own three come back to her"
    );
    let mut bob = SseClient::open(&app, "?name=bob&feed=0", &[("Last-Event-ID", &last_id)])
        .await
        .unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        match bob.next_item().await.unwrap() {
            SseItem::Frame { msg, .. } => match *msg {
                ServerMsg::Chat(c) => seqs.push((c.seq, c.msg)),
                other => panic!("only the missed chat messages, got {other:?}"),
            },
            SseItem::Comment(_) | SseItem::Ping(_) => {}
            close => panic!("{close:?}"),
        }
    }
    assert_eq!(
        seqs,
        [(3, "three".into()), (4, "four".into()), (5, "five".into())]
    );
    assert_eq!(bob.secret(), secret, "the same session resumed");
    // And it still sends.
    bob.send(&[chat("relay", "six", "b2")]).await;
    assert_eq!(ada.chats(1).await[0].msg, "six");
}

#[tokio::test]
async fn a_long_polling_client_chats_with_a_websocket_client_and_a_lost_answer_is_sent_again() {
    let app = spawn_app().await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("relay", None).await;

    let (mut bob, first) = PollClient::open(&app, "?name=bob&feed=0").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        matches!(&first.frames[..], [ServerMsg::Hello(h)] if h.name.as_deref() == Some("bob")),
        "{:?}",
        first.frames
    );
    assert_eq!(bob.session.len(), 48);
    bob.send(&[join("relay")]).await;
    bob.recv_until(|m| matches!(m, ServerMsg::Subscribed(s) if s.room == "relay").then_some(()))
        .await;

    ada.chat_in("relay", "one", "a1").await;
    assert_eq!(
        ada.chats(1).await[0].msg,
        "one",
        "ada's own message comes back to her"
    );
    let got = bob
        .recv_until(|m| match m {
            ServerMsg::Chat(c) => Some(c.clone()),
            _ => None,
        })
        .await;
    assert_eq!((got.seq, got.msg.as_str()), (1, "one"));

    bob.send(&[chat("relay", "two", "b1")]).await;
    assert_eq!(ada.chats(1).await[0].msg, "two");
    let before_ack = bob.last;
    let ack = bob
        .recv_until(|m| match m {
            ServerMsg::Ack { id, seq, .. } => Some((id.clone(), *seq)),
            _ => None,
        })
        .await;
    assert_eq!(ack, ("b1".into(), 2));

    // The answer that carried the ack was lost: polling again from the position before it
    // gets the same frames again, and nothing else.
    bob.last = before_ack;
    let again = bob.poll().await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(
        again
            .frames
            .iter()
            .any(|m| matches!(m, ServerMsg::Ack { id, seq: 2, .. } if id == "b1")),
        "{:?}",
        again.frames
    );
    assert!(
        !again
            .frames
            .iter()
            .any(|m| matches!(m, ServerMsg::Chat(c) if c.seq == 1)),
        "frames acknowledged by the poll before are not sent again: {:?}",
        again.frames
    );
}

#[tokio::test]
async fn a_post_with_a_forged_or_unknown_session_is_refused_and_delivers_nothing() {
    let app = spawn_app().await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("relay", None).await;
    let mut bob = SseClient::open(&app, "?name=bob&feed=0", &[])
        .await
        .unwrap();
    let hello = match bob.recv().await {
        ServerMsg::Hello(h) => h,
        other => panic!("{other:?}"),
    };
    bob.send(&[join("relay")]).await;
    bob.recv_until(|m| matches!(m, ServerMsg::Subscribed(_)).then_some(()))
        .await;

    let forged = chat("relay", "forged", "f1").encode();
    // The session number is public (members see it); it is not the secret.
    for session in [hello.session.to_string(), "0".repeat(32), String::new()] {
        let (status, body) = send_frames(&app, &session, std::slice::from_ref(&forged), &[]).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(error_code(&body), "session_unknown");
    }
    // A poll for bob's session number is refused the same way.
    let (status, _, body) = http_request(
        &app,
        "POST",
        "/v3/poll",
        &[],
        &format!("{{\"session\":\"{}\",\"last\":0}}", hello.session),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, error_code(&body).as_str()),
        (404, "session_unknown")
    );

    // Nothing was stored: the next message is seq 1, and it is the real one.
    bob.send(&[chat("relay", "real", "b1")]).await;
    let first = ada.chats(1).await.remove(0);
    assert_eq!((first.seq, first.msg.as_str()), (1, "real"));
}

#[tokio::test]
async fn a_foreign_origin_is_refused_on_the_stream_the_poll_and_the_post() {
    let app = spawn_app_with(|s| s.allowed_origins = vec!["https://chat.example.com".into()]).await;
    let evil = [("Origin", "https://evil.example")];
    let good = [("Origin", "https://chat.example.com")];

    let refused = SseClient::open(&app, "?name=eve", &evil)
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("answered 403"), "{refused}");
    let (status, _, body) = http_request(&app, "POST", "/v3/poll?name=eve", &evil, "")
        .await
        .unwrap();
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "origin_refused")
    );

    // A session opened from the right origin: a POST to it from another origin is refused.
    let mut bob = SseClient::open(&app, "?name=bob&feed=0", &good)
        .await
        .unwrap();
    assert!(matches!(bob.recv().await, ServerMsg::Hello(_)));
    let (status, body) = send_frames(&app, &bob.secret(), &[join("relay").encode()], &evil).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "origin_refused")
    );
    let (status, body) = send_frames(&app, &bob.secret(), &[join("relay").encode()], &good).await;
    assert_eq!(status, 204, "{body}");
    // The refused join never reached the session: the one answer is the allowed join's.
    match bob.recv().await {
        ServerMsg::Subscribed(s) => assert_eq!(s.room, "relay"),
        other => panic!("expected the one join's answer, got {other:?}"),
    }
}

#[tokio::test]
async fn an_http_session_nobody_polls_or_streams_is_closed_at_the_heartbeat_deadline_and_forgotten()
{
    let app = spawn_app_with(|s| {
        s.heartbeat_interval_secs = 1;
        s.heartbeat_timeout_secs = 1;
        s.max_connections_per_ip = 1;
    })
    .await;
    let (mut idle, first) = PollClient::open(&app, "?name=idle&feed=0").await;
    assert_eq!(first.status, 200);
    // The one connection slot of this address is taken.
    let (status, _, body) = http_request(&app, "POST", "/v3/poll?name=other", &[], "")
        .await
        .unwrap();
    assert_eq!(
        (status, error_code(&body).as_str()),
        (429, "too_many_connections")
    );

    // Silent for longer than the deadline (interval 1 s + timeout 1 s).
    tokio::time::sleep(std::time::Duration::from_millis(2_600)).await;
    let answer = idle.poll().await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.close.map(|c| c.0),
        Some(close_code::HEARTBEAT_TIMEOUT),
        "{}",
        answer.body
    );
    // Its close delivered, the session is forgotten and its slot free.
    let mut gone = false;
    for _ in 0..50 {
        if idle.poll().await.status == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the reaped session is forgotten");
    let (again, first) = PollClient::open(&app, "?name=idle&feed=0").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_ne!(again.session, idle.session);
}

#[tokio::test]
async fn the_connection_cap_per_address_counts_websockets_streams_and_polls_together() {
    let app = spawn_app_with(|s| s.max_connections_per_ip = 2).await;
    let (_ws, _) = app.connect_v3("?name=ws&feed=0").await;
    let mut sse = SseClient::open(&app, "?name=sse&feed=0", &[])
        .await
        .unwrap();
    assert!(matches!(sse.recv().await, ServerMsg::Hello(_)));
    let (status, _, body) = http_request(&app, "POST", "/v3/poll?name=poll", &[], "")
        .await
        .unwrap();
    assert_eq!(
        (status, error_code(&body).as_str()),
        (429, "too_many_connections")
    );
    let refused = SseClient::open(&app, "?name=sse2", &[])
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("answered 429"), "{refused}");
    let err = app.connect("/ws?name=third").await.err().unwrap();
    assert!(err.to_string().contains("429"), "{err}");
}

#[tokio::test]
async fn bad_posts_get_typed_errors_and_the_session_goes_on() {
    let app = spawn_app_with(|s| s.max_message_bytes = 1024).await;
    let mut bob = SseClient::open(&app, "?name=bob&feed=0", &[])
        .await
        .unwrap();
    assert!(matches!(bob.recv().await, ServerMsg::Hello(_)));
    let secret = bob.secret();

    let (status, _, body) = http_request(&app, "POST", "/v3/send", &[], "{not json")
        .await
        .unwrap();
    assert_eq!((status, error_code(&body).as_str()), (400, "bad_request"));
    let big = format!("\"{}\"", "x".repeat(2000));
    let (status, body) = send_frames(&app, &secret, &[big], &[]).await;
    assert_eq!((status, error_code(&body).as_str()), (413, "too_big"));
    // A frame that is JSON but not a command: answered on the stream with a typed error.
    let (status, body) = send_frames(&app, &secret, &["{\"type\":\"fly\"}".into()], &[]).await;
    assert_eq!(status, 204, "{body}");
    match bob.recv().await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::InvalidMessage),
        other => panic!("expected a typed error, got {other:?}"),
    }
    // The session goes on.
    bob.send(&[join("relay")]).await;
    bob.recv_until(|m| matches!(m, ServerMsg::Subscribed(_)).then_some(()))
        .await;
}

#[tokio::test]
async fn at_shutdown_an_sse_client_gets_the_shutdown_notice_and_close_1001() {
    let app = spawn_app().await;
    let mut bob = SseClient::open(&app, "?name=bob&feed=0", &[])
        .await
        .unwrap();
    assert!(matches!(bob.recv().await, ServerMsg::Hello(_)));
    app.shutdown_token().cancel();
    match bob.next_item().await.unwrap() {
        SseItem::Frame { msg, .. } => match *msg {
            ServerMsg::Shutdown { retry_after_ms } => {
                assert!((500..3000).contains(&retry_after_ms))
            }
            other => panic!("expected the shutdown notice, got {other:?}"),
        },
        other => panic!("expected the shutdown notice, got {other:?}"),
    }
    assert_eq!(bob.close_code().await, 1001);
}

#[tokio::test]
async fn a_session_that_leaves_with_its_mailbox_full_is_forgotten_and_frees_its_slot() {
    let app = spawn_app_with(|s| {
        s.outbound_queue = 2;
        s.max_connections_per_ip = 2;
    })
    .await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("full", None).await;
    let (bob, first) = PollClient::open(&app, "?name=bob&feed=0").await;
    assert_eq!(first.status, 200, "{}", first.body);
    bob.send(&[join("full")]).await;
    // Bob does not poll: `subscribed` and one message fill his mailbox (2 unread), a second
    // message waits in his queue.
    ada.chat_in("full", "one", "a1").await;
    ada.chat_in("full", "two", "a2").await;
    assert_eq!(ada.chats(2).await.len(), 2);
    let leave = format!("{{\"session\":\"{}\",\"leave\":true}}", bob.session);
    let (status, _, body) = http_request(&app, "POST", "/v3/send", &[], &leave)
        .await
        .unwrap();
    assert_eq!(status, 204, "{body}");
    // His slot is free again: with ada's socket, a cap of 2 leaves room for one more session.
    let mut reopened = None;
    for _ in 0..40 {
        let (status, _, body) = http_request(&app, "POST", "/v3/poll?name=cy&feed=0", &[], "")
            .await
            .unwrap();
        if status == 200 {
            reopened = Some(body);
            break;
        }
        assert_eq!(error_code(&body), "too_many_connections");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        reopened.is_some(),
        "the session that left still holds its slot"
    );
}

#[tokio::test]
async fn metrics_count_sessions_by_transport() {
    let app = spawn_app().await;
    let (_ws, _) = app.connect_v3("?name=ws&feed=0").await;
    let mut sse = SseClient::open(&app, "?name=sse&feed=0", &[])
        .await
        .unwrap();
    assert!(matches!(sse.recv().await, ServerMsg::Hello(_)));
    let (_poll, first) = PollClient::open(&app, "?name=poll&feed=0").await;
    assert_eq!(first.status, 200);
    let (status, _, body) = app.http_get("/metrics").await.unwrap();
    assert_eq!(status, 200);
    let value = |series: &str| {
        body.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
    };
    for kind in ["ws", "sse", "poll"] {
        assert_eq!(
            value(&format!(
                "switchboard_sessions_opened_total{{kind=\"{kind}\"}}"
            )),
            Some(1.0),
            "{kind}: {body}"
        );
    }
    assert_eq!(
        value("switchboard_http_sessions{kind=\"sse\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value("switchboard_http_sessions{kind=\"poll\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(value("switchboard_connections"), Some(3.0), "{body}");
}

/// At shutdown an SSE session answers the messages it still had in flight before its close:
/// every message stored has its ack on the stream before the close 1001. (Slow commits, made
/// so by a trigger, keep messages in flight when the shutdown comes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_an_sse_client_gets_the_ack_of_every_message_stored_before_the_close() {
    let app = spawn_app_with(|s| {
        s.rate_per_sec = 100_000;
        s.rate_burst = 100_000;
    })
    .await;
    let mut ada = SseClient::open(&app, "?name=ada&feed=0", &[])
        .await
        .unwrap();
    assert!(matches!(ada.recv().await, ServerMsg::Hello(_)));
    ada.send(&[join("last-words")]).await;
    ada.recv_until(|m| matches!(m, ServerMsg::Subscribed(_)).then_some(()))
        .await;
    switchboard_tests::slow_commits(app.db_path());
    const SENT: usize = 40;
    let chats: Vec<Command> = (0..SENT)
        .map(|n| chat("last-words", &format!("m{n}"), &n.to_string()))
        .collect();
    ada.send(&chats).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    app.shutdown_token().cancel();

    let mut acked = Vec::new();
    let code = loop {
        match ada.next_item().await.unwrap() {
            SseItem::Frame { msg, .. } => {
                if let ServerMsg::Ack { id, .. } = *msg {
                    acked.push(id);
                }
            }
            SseItem::Close { code, .. } => break code,
            SseItem::Comment(_) | SseItem::Ping(_) => {}
        }
    };
    assert_eq!(code, 1001);
    let stored = switchboard_tests::settled_count(app.db_path(), "last-words").await;
    assert!(stored > 0, "nothing was stored before the shutdown");
    let expected: Vec<String> = (0..stored).map(|n| n.to_string()).collect();
    assert_eq!(acked, expected, "{stored} of {SENT} stored");
}
