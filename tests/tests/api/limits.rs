use shared::{ErrorCode, ServerMsg};
use switchboard_tests::spawn_app_with;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn an_oversize_frame_closes_the_connection_with_1009() {
    let app = spawn_app_with(|s| s.max_message_bytes = 1024).await;
    let (mut ada, _) = app.join("ada", "lobby").await;
    let (mut bob, _) = app.join("bob", "lobby").await;
    ada.send_text(&format!(
        r#"{{"type":"chat","msg":"{}"}}"#,
        "x".repeat(2000)
    ))
    .await;
    assert_eq!(ada.close_code().await, 1009);
    // Others are unaffected.
    bob.chat("fine").await;
    bob.recv_until(|m| matches!(m, ServerMsg::Chat(c) if c.msg == "fine").then_some(()))
        .await;
}

#[tokio::test]
async fn messages_over_the_rate_get_a_typed_error_and_sustained_abuse_is_closed_with_1008() {
    let app = spawn_app_with(|s| {
        s.rate_per_sec = 1;
        s.rate_burst = 3;
        s.rate_abuse_limit = 20;
    })
    .await;
    let (mut ada, _) = app.join("ada", "lobby").await;
    for i in 0..5 {
        ada.chat(&format!("m{i}")).await;
    }
    let (mut chats, mut limited) = (0, 0);
    while chats + limited < 5 {
        match ada.recv().await {
            ServerMsg::Chat(_) => chats += 1,
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited += 1,
            _ => {}
        }
    }
    assert_eq!((chats, limited), (3, 2));
    for i in 0..30 {
        use futures_util::SinkExt;
        if ada
            .stream
            .send(Message::text(format!(
                r#"{{"type":"chat","msg":"flood {i}"}}"#
            )))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(ada.close_code().await, 1008);
}

#[tokio::test]
async fn connections_per_ip_are_capped_with_429_and_freed_on_close() {
    let app = spawn_app_with(|s| s.max_connections_per_ip = 2).await;
    let a = app.connect("/echo").await.unwrap();
    let _b = app.connect("/echo").await.unwrap();
    match app.connect("/echo").await.err().expect("third refused") {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 429),
        other => panic!("expected 429, got {other}"),
    }
    drop(a);
    let mut retry = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if let Ok(c) = app.connect("/echo").await {
            retry = Some(c);
            break;
        }
    }
    assert!(retry.is_some(), "slot was not freed");
}

#[tokio::test]
async fn total_connections_are_capped_with_503() {
    let app = spawn_app_with(|s| s.max_connections = 1).await;
    let _a = app.connect("/echo").await.unwrap();
    match app.connect("/ws?name=x").await.err().expect("refused") {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 503),
        other => panic!("expected 503, got {other}"),
    }
}

#[tokio::test]
async fn typing_has_its_own_budget_and_never_eats_into_chat() {
    let app = spawn_app_with(|s| {
        s.rate_per_sec = 1;
        s.rate_burst = 2;
        s.control_rate_per_sec = 1;
        s.control_rate_burst = 3;
    })
    .await;
    let (mut ada, _) = app.join("ada", "lobby").await;
    for _ in 0..5 {
        ada.send(&shared::ClientMsg::Typing).await;
    }
    // Two typing notices over their burst are refused...
    for _ in 0..2 {
        assert!(matches!(
            ada.recv().await,
            ServerMsg::Error { code: ErrorCode::RateLimited, reason, .. } if reason.contains("typing")
        ));
    }
    // ...and the chat budget is untouched.
    ada.chat("one").await;
    ada.chat("two").await;
    let got: Vec<_> = ada.chats(2).await.into_iter().map(|c| c.msg).collect();
    assert_eq!(got, ["one", "two"]);
}
