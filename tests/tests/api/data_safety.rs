//! No silent loss: message ids are per sender, a refusal for good is said so (and is not
//! resent), an ack that does not fit closes the session instead of vanishing, and history reads
//! are rate limited.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use shared::{ClientMsg, ErrorCode, ServerMsg, close_code};
use switchboard_tests::{send_each_with_id, spawn_app, spawn_app_with};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn senders_that_use_the_same_message_id_are_each_stored_broadcast_and_acked_at_their_own_seq()
{
    let app = spawn_app().await;
    let (mut eve, _) = app.join("eve", "ids").await;
    // Two people with tokens and one tokenless tab, all counting their messages from 1.
    let (mut ada, _) = app
        .join_as("ada", "ids", "ada-token-0123456789", None)
        .await;
    let (mut bob, _) = app
        .join_as("bob", "ids", "bob-token-0123456789", None)
        .await;
    let (mut cy, _) = app.join("cy", "ids").await;
    let acked = send_each_with_id(
        [
            (&mut ada, "from ada"),
            (&mut bob, "from bob"),
            (&mut cy, "from cy"),
        ],
        "1",
    )
    .await;
    assert_eq!(acked, [1, 2, 3]);
    let seen: Vec<(u64, String, String)> = eve
        .chats(3)
        .await
        .into_iter()
        .map(|c| (c.seq, c.name, c.msg))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "ada".into(), "from ada".into()),
            (2, "bob".into(), "from bob".into()),
            (3, "cy".into(), "from cy".into()),
        ]
    );
    // Each sender's own resend is still a duplicate: acknowledged at its seq, stored once.
    bob.chat_with_id("from bob", "1").await;
    assert_eq!(bob.ack("1").await, 2);
    let page = app.history("ids", "").await;
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[tokio::test]
async fn a_message_the_store_refuses_for_good_is_nacked_once_takes_no_seq_and_the_session_goes_on()
{
    let app = spawn_app().await;
    let (mut ada, _) = app.join("ada", "policy").await;
    // An operator's policy in the database refuses some messages: a refusal no resend can fix.
    rusqlite::Connection::open(app.db_path())
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER no_poison BEFORE INSERT ON messages WHEN NEW.text LIKE '%poison%'
             BEGIN SELECT RAISE(ABORT, 'poison is not allowed here'); END;",
        )
        .unwrap();
    ada.chat_with_id("poison", "p1").await;
    match ada.recv().await {
        ServerMsg::Nack {
            id, code, reason, ..
        } => {
            assert_eq!((id.as_str(), code), ("p1", ErrorCode::StoreRejected));
            assert!(reason.contains("poison is not allowed here"), "{reason}");
        }
        other => panic!("expected a nack, got {other:?}"),
    }
    // Without an id it is a typed error; either way the session stays open.
    ada.chat("poison without an id").await;
    match ada.recv().await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::StoreRejected),
        other => panic!("expected store_rejected, got {other:?}"),
    }
    ada.chat_with_id("fine", "f1").await;
    let chat = ada.chats(1).await.remove(0);
    assert_eq!(
        (chat.seq, chat.msg.as_str()),
        (1, "fine"),
        "no seq was used"
    );
    assert_eq!(ada.ack("f1").await, 1);
}

/// A client that sends and never reads is held back first: the server stops reading it (its
/// sends block) rather than drop it for answers it was owed. Once it has taken nothing from its
/// queue for the heartbeat deadline, it is closed as a slow consumer (4429), and it learns why
/// when it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_own_acks_is_held_back_then_closed_as_a_slow_consumer() {
    let app = spawn_app_with(|s| {
        s.outbound_queue = 64;
        s.rate_per_sec = 1_000_000;
        s.rate_burst = 1_000_000;
        // A deadline of 10 s: long enough to see the client held back before it is dropped,
        // on a busy machine too.
        s.heartbeat_interval_secs = 4;
        s.heartbeat_timeout_secs = 6;
    })
    .await;
    let (mut ada, _) = app.join("ada", "acks").await;
    let id = "a-long-message-id-so-that-every-ack-takes-room-0123456789abcdef";
    ada.chat_with_id("once", id).await;
    assert_eq!(ada.ack(id).await, 1);
    // Resends of a stored id are answered with an ack alone (no broadcast): the only frames
    // this client is owed. It sends them and reads nothing until its sends block.
    let resend = Message::text(
        serde_json::to_string(&ClientMsg::Chat {
            msg: "once".into(),
            id: Some(id.into()),
        })
        .unwrap(),
    );
    let mut sent = 0u64;
    loop {
        let batch = async {
            for _ in 0..1000 {
                ada.stream.feed(resend.clone()).await?;
            }
            ada.stream.flush().await
        };
        match tokio::time::timeout(Duration::from_secs(1), batch).await {
            Ok(sending) => sending.unwrap(),
            Err(_) => break, // the server stopped reading
        }
        sent += 1000;
        assert!(
            sent < 5_000_000,
            "the server read {sent} frames and never held back"
        );
    }
    assert_eq!(
        slow_consumers_dropped(&app).await,
        0,
        "held back, not dropped"
    );
    let dropped_within = Instant::now();
    while slow_consumers_dropped(&app).await == 0 {
        assert!(
            dropped_within.elapsed() < Duration::from_secs(30),
            "a client that takes nothing was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, code) = ada.drain_to_close().await;
    assert_eq!(code, close_code::SLOW_CONSUMER);
}

async fn slow_consumers_dropped(app: &switchboard_tests::TestApp) -> u64 {
    let (_, _, body) = app.http_get("/metrics").await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("switchboard_slow_consumers_dropped_total "))
        .expect("the slow-consumer counter")
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn history_reads_over_the_rate_get_429_per_client_address() {
    let app = spawn_app_with(|s| {
        s.api_rate_per_sec = 1;
        s.api_rate_burst = 3;
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let path = "/api/rooms/lobby/messages";
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    for _ in 0..3 {
        let (status, _, body) = app.http_get_with(path, &from("203.0.113.7")).await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (status, head, body) = app.http_get_with(path, &from("203.0.113.7")).await.unwrap();
    assert_eq!(status, 429, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert!(body.contains("--api-rate-per-sec"), "{body}");
    // Another client behind the same proxy has its own budget.
    let (status, _, _) = app.http_get_with(path, &from("203.0.113.8")).await.unwrap();
    assert_eq!(status, 200);
}
