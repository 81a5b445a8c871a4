use std::time::Duration;

use futures_util::SinkExt;
use shared::{ServerMsg, close_code};
use switchboard_tests::{Event, spawn_app, spawn_app_with};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_stalled_reader_is_dropped_and_does_not_delay_the_others() {
    const MESSAGES: usize = 3000;
    const BATCH: usize = 10;
    let app = spawn_app_with(|s| {
        s.outbound_queue = 32;
        s.rate_per_sec = 1_000_000;
        s.rate_burst = 1_000_000;
    })
    .await;
    let (mut stalled, _) = app.join("stalled", "lobby").await; // never reads until the end
    let (mut reader, _) = app.join("reader", "lobby").await;
    let (mut sender, _) = app.join("sender", "lobby").await;
    let payload = "x".repeat(3000);

    // Closed loop in batches, so `reader` keeps up and only `stalled` falls behind.
    for batch in 0..MESSAGES / BATCH {
        use futures_util::SinkExt;
        for i in batch * BATCH..(batch + 1) * BATCH {
            let frame = format!(r#"{{"type":"chat","msg":"{i} {payload}"}}"#);
            sender.stream.feed(Message::text(frame)).await.unwrap();
        }
        sender.stream.flush().await.unwrap();
        for client in [&mut reader, &mut sender] {
            let mut n = batch * BATCH;
            while n < (batch + 1) * BATCH {
                if let ServerMsg::Chat(c) = client.recv().await {
                    assert!(c.msg.starts_with(&format!("{n} ")), "out of order at {n}");
                    n += 1;
                }
            }
        }
    }

    // The stalled client finds its backlog cut short and the connection closed.
    let (got, code) = stalled.drain_to_close().await;
    assert!(got < MESSAGES, "stalled client got everything ({got})");
    assert_eq!(code, close_code::SLOW_CONSUMER);
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let app = spawn_app_with(|s| {
        s.heartbeat_interval_secs = 1;
        s.heartbeat_timeout_secs = 1;
    })
    .await;
    let (mut silent, _) = app.join("silent", "lobby").await;
    let frozen_at = std::time::Instant::now();
    let (mut alive, _) = app.join("alive", "lobby").await;
    // `alive` keeps reading (tungstenite answers pings while reading); `silent` does not read.
    let watch = async {
        loop {
            if let ServerMsg::Left { member, .. } = alive.recv().await {
                break member.name;
            }
        }
    };
    // Closed within heartbeat interval + timeout + 1 s of its last frame.
    let left = tokio::time::timeout(Duration::from_secs(3), watch)
        .await
        .expect("silent peer closed in time");
    assert_eq!(left, "silent");
    println!(
        "dead peer: closed {:.2} s after it froze (interval 1 s + timeout 1 s)",
        frozen_at.elapsed().as_secs_f64()
    );
    assert_eq!(silent.close_code().await, close_code::HEARTBEAT_TIMEOUT);
}

#[tokio::test]
async fn shutdown_tells_every_session_to_reconnect_and_closes_with_1001() {
    let app = spawn_app().await;
    let (mut ada, _) = app.join("ada", "lobby").await;
    let (mut bob, _) = app.join("bob", "games").await;
    let mut echo = app.connect("/echo").await.unwrap();
    let stop = tokio::spawn(app.shutdown());
    for client in [&mut ada, &mut bob] {
        let mut hinted = false;
        let code = loop {
            match client.next_event().await.unwrap() {
                Event::Msg(ServerMsg::Shutdown { retry_after_ms }) => {
                    assert!((500..3000).contains(&retry_after_ms));
                    hinted = true;
                }
                Event::Close(frame) => break frame.map(|f| u16::from(f.code)),
                _ => {}
            }
        };
        assert!(hinted, "no reconnect hint");
        assert_eq!(code, Some(1001));
    }
    assert_eq!(echo.close_code().await, 1001);
    stop.await.unwrap();
}

/// At shutdown a session answers the messages it still had in flight before it closes: every
/// message stored has its ack, on the connection that sent it, before the close 1001. (Slow
/// commits, made so by a trigger, keep messages in flight when the shutdown comes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_every_message_stored_is_acked_before_the_close() {
    let app = spawn_app_with(|s| {
        s.rate_per_sec = 100_000;
        s.rate_burst = 100_000;
    })
    .await;
    let (mut ada, _) = app.join("ada", "last-words").await;
    switchboard_tests::slow_commits(app.db_path());
    const SENT: usize = 40;
    for n in 0..SENT {
        let chat = shared::ClientMsg::Chat {
            msg: format!("m{n}"),
            id: Some(n.to_string()),
        };
        let text = serde_json::to_string(&chat).unwrap();
        ada.stream.feed(Message::text(text)).await.unwrap();
    }
    ada.stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    app.shutdown_token().cancel();

    let mut acked = Vec::new();
    let code = loop {
        match ada.next_event().await.unwrap() {
            Event::Msg(ServerMsg::Ack { id, .. }) => acked.push(id),
            Event::Close(frame) => break frame.map(|f| u16::from(f.code)),
            _ => {}
        }
    };
    assert_eq!(code, Some(1001));
    let stored = switchboard_tests::settled_count(app.db_path(), "last-words").await;
    assert!(stored > 0, "nothing was stored before the shutdown");
    let expected: Vec<String> = (0..stored).map(|n| n.to_string()).collect();
    assert_eq!(acked, expected, "{stored} of {SENT} stored");
}
