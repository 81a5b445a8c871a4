//! Durable ordered history: acks, dedup, resume, gaps, retention, the history API.

use shared::{GapReason, Resume, ServerMsg};
use switchboard_tests::{spawn_app, spawn_app_with};

const ADA: &str = "ada-token-0123456789";
const BOB: &str = "bob-token-0123456789";

#[tokio::test]
async fn messages_are_acknowledged_with_gap_free_seqs_after_they_are_stored() {
    let app = spawn_app().await;
    let (mut ada, welcome) = app.join_as("ada", "lobby", ADA, None).await;
    assert_eq!(welcome.resume, Resume::Fresh { count: 0 });
    assert!(!welcome.epoch.is_empty());
    let mut seqs = Vec::new();
    for i in 0..5 {
        ada.chat_with_id(&format!("m{i}"), &format!("id-{i}")).await;
        seqs.push(ada.ack(&format!("id-{i}")).await);
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let page = app.history("lobby", "limit=10").await;
    let stored: Vec<_> = page
        .messages
        .iter()
        .map(|m| (m.seq, m.msg.as_str(), m.id.as_deref()))
        .collect();
    assert_eq!(stored[0], (1, "m0", Some("id-0")));
    assert_eq!(stored.len(), 5);
    assert_eq!(page.epoch, welcome.epoch);
}

#[tokio::test]
async fn a_resent_client_id_is_acknowledged_again_but_stored_and_broadcast_once() {
    let app = spawn_app().await;
    let (mut ada, _) = app.join_as("ada", "lobby", ADA, None).await;
    let (mut bob, _) = app.join_as("bob", "lobby", BOB, None).await;
    ada.chat_with_id("only once", "dup-1").await;
    let first = ada.ack("dup-1").await;
    // A reconnecting client resends what it has no ack for.
    drop(ada);
    let (mut ada, _) = app.join_as("ada", "lobby", ADA, None).await;
    ada.chat_with_id("only once", "dup-1").await;
    assert_eq!(ada.ack("dup-1").await, first);
    ada.chat_with_id("next", "dup-2").await;
    assert_eq!(ada.ack("dup-2").await, first + 1);
    let seen: Vec<_> = bob.chats(2).await.into_iter().map(|c| c.msg).collect();
    assert_eq!(seen, ["only once", "next"]);
    assert_eq!(app.history("lobby", "").await.messages.len(), 2);
}

#[tokio::test]
async fn resume_returns_exactly_the_missed_messages_in_order_while_another_client_keeps_sending() {
    let app = spawn_app_with(|s| {
        s.rate_per_sec = 10_000;
        s.rate_burst = 10_000;
    })
    .await;
    let (mut ada, welcome) = app.join_as("ada", "lobby", ADA, None).await;
    let (mut bob, _) = app.join_as("bob", "lobby", BOB, None).await;
    for i in 0..10 {
        bob.chat_with_id(&format!("before {i}"), &format!("b{i}"))
            .await;
    }
    let last_seen = ada.chats(10).await.last().unwrap().seq;
    drop(ada);
    // Bob goes on sending while Ada is away and while she resumes.
    let sender = tokio::spawn(async move {
        for i in 10..400 {
            bob.chat_with_id(&format!("m {i}"), &format!("b{i}")).await;
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        bob.ack("b399").await;
        bob
    });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let (mut ada, w) = app
        .join_as("ada", "lobby", ADA, Some((&welcome.epoch, last_seen)))
        .await;
    let Resume::Recovered { count } = w.resume else {
        panic!("{:?}", w.resume)
    };
    assert!(count >= 1, "missed nothing?");
    // Everything from last_seen + 1 to the last message, each exactly once, in order.
    let got = ada.chats(390).await;
    let seqs: Vec<u64> = got.iter().map(|c| c.seq).collect();
    let expected: Vec<u64> = (last_seen + 1..=last_seen + 390).collect();
    assert_eq!(seqs, expected);
    assert_eq!(got.last().unwrap().msg, "m 399");
    sender.await.unwrap();
}

#[tokio::test]
async fn a_client_that_missed_nothing_is_told_it_is_live() {
    let app = spawn_app().await;
    let (mut ada, w) = app.join_as("ada", "lobby", ADA, None).await;
    ada.chat_with_id("hi", "x1").await;
    let seq = ada.ack("x1").await;
    drop(ada);
    let (_ada, again) = app
        .join_as("ada", "lobby", ADA, Some((&w.epoch, seq)))
        .await;
    assert_eq!(again.resume, Resume::Live);
}

#[tokio::test]
async fn a_different_epoch_is_reported_as_a_gap() {
    let app = spawn_app_with(|s| s.history_on_join = 2).await;
    let (mut ada, _) = app.join_as("ada", "lobby", ADA, None).await;
    for i in 0..3 {
        ada.chat_with_id(&format!("m{i}"), &format!("e{i}")).await;
        ada.ack(&format!("e{i}")).await;
    }
    let (mut bob, w) = app
        .join_as("bob", "lobby", BOB, Some(("an-old-epoch", 2)))
        .await;
    assert_eq!(
        w.resume,
        Resume::Gap {
            reason: GapReason::EpochChanged,
            count: 2
        }
    );
    let latest: Vec<_> = bob.chats(2).await.into_iter().map(|c| c.seq).collect();
    assert_eq!(latest, [2, 3]);
}

#[tokio::test]
async fn first_join_gets_the_last_n_messages() {
    let app = spawn_app_with(|s| s.history_on_join = 3).await;
    let (mut ada, _) = app.join_as("ada", "lobby", ADA, None).await;
    for i in 0..5 {
        ada.chat_with_id(&format!("m{i}"), &format!("f{i}")).await;
        ada.ack(&format!("f{i}")).await;
    }
    let (mut bob, w) = app.join_as("bob", "lobby", BOB, None).await;
    assert_eq!(w.resume, Resume::Fresh { count: 3 });
    let got: Vec<_> = bob.chats(3).await.into_iter().map(|c| c.msg).collect();
    assert_eq!(got, ["m2", "m3", "m4"]);
}

#[tokio::test]
async fn retention_keeps_the_newest_messages_and_a_resume_past_them_is_a_gap() {
    let app = spawn_app_with(|s| s.retention_max_messages = 5).await;
    let (mut ada, w) = app.join_as("ada", "lobby", ADA, None).await;
    for i in 0..12 {
        ada.chat_with_id(&format!("m{i}"), &format!("r{i}")).await;
        ada.ack(&format!("r{i}")).await;
    }
    let page = app.history("lobby", "limit=50").await;
    let seqs: Vec<_> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [8, 9, 10, 11, 12]);
    assert!(!page.has_more);
    let (mut bob, again) = app.join_as("bob", "lobby", BOB, Some((&w.epoch, 2))).await;
    assert_eq!(
        again.resume,
        Resume::Gap {
            reason: GapReason::Trimmed,
            count: 5
        }
    );
    assert_eq!(bob.chats(5).await[0].seq, 8);
}

#[tokio::test]
async fn older_history_comes_in_pages_through_the_api() {
    let app = spawn_app().await;
    let (mut ada, _) = app.join_as("ada", "lobby", ADA, None).await;
    for i in 0..7 {
        ada.chat_with_id(&format!("m{i}"), &format!("p{i}")).await;
        ada.ack(&format!("p{i}")).await;
    }
    let newest = app.history("lobby", "limit=3").await;
    assert_eq!(
        newest.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [5, 6, 7]
    );
    assert!(newest.has_more);
    let older = app.history("lobby", "before=5&limit=3").await;
    assert_eq!(
        older.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    let oldest = app.history("lobby", "before=2&limit=3").await;
    assert_eq!(
        oldest.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1]
    );
    assert!(!oldest.has_more);
    let (status, _, _) = app
        .http_get("/api/rooms/bad%2Froom/messages")
        .await
        .unwrap();
    assert_eq!(status, 400);
}

#[tokio::test]
async fn history_and_epoch_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keep.db");
    let app = spawn_app_with(|s| s.db = db.clone()).await;
    let (mut ada, w) = app.join_as("ada", "lobby", ADA, None).await;
    ada.chat_with_id("kept", "k1").await;
    ada.ack("k1").await;
    drop(ada);
    app.shutdown().await;
    let app = spawn_app_with(|s| s.db = db.clone()).await;
    let (mut ada, again) = app.join_as("ada", "lobby", ADA, Some((&w.epoch, 0))).await;
    assert_eq!(again.epoch, w.epoch);
    assert_eq!(again.resume, Resume::Recovered { count: 1 });
    assert_eq!(ada.chats(1).await[0].msg, "kept");
    ada.chat_with_id("after restart", "k2").await;
    assert_eq!(ada.ack("k2").await, 2);
}

#[tokio::test]
async fn invalid_message_ids_are_refused() {
    let app = spawn_app().await;
    let (mut ada, _) = app.join_as("ada", "lobby", ADA, None).await;
    ada.chat_with_id("x", "has space").await;
    assert!(matches!(
        ada.recv().await,
        ServerMsg::Error {
            code: shared::ErrorCode::IdInvalid,
            ..
        }
    ));
}
