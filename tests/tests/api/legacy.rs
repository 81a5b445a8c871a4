//! The classic tutorial page: connects with no name, sends `{"name","msg"}`, reads `data.name`
//! and `data.msg`.

use shared::{ErrorCode, ServerMsg};
use switchboard_tests::spawn_app;

#[tokio::test]
async fn legacy_frame_is_chat_and_the_broadcast_carries_name_and_msg() {
    let app = spawn_app().await;
    let (mut ada, _) = app.join("ada", "lobby").await;
    let mut old_page = app.connect("/ws?feed=0").await.unwrap();
    let welcome = old_page.welcome().await;
    assert_eq!(welcome.name, None);

    old_page
        .send_text(r#"{"name":"bob","msg":"hello from jQuery"}"#)
        .await;
    let joined = ada.recv().await;
    assert!(
        matches!(&joined, ServerMsg::Joined { member, .. } if member.name == "bob"),
        "{joined:?}"
    );

    // What the old page's `JSON.parse(evt.data)` sees: top-level `name` and `msg`.
    let data = loop {
        let v: serde_json::Value = serde_json::from_str(&old_page.next_text().await).unwrap();
        if v["type"] == "chat" {
            break v;
        }
    };
    assert_eq!(data["name"], "bob");
    assert_eq!(data["msg"], "hello from jQuery");
    let chat = ada
        .recv_until(|m| match m {
            ServerMsg::Chat(c) => Some(c),
            _ => None,
        })
        .await;
    assert_eq!(
        (chat.name.as_str(), chat.msg.as_str()),
        ("bob", "hello from jQuery")
    );
}

#[tokio::test]
async fn later_legacy_frames_keep_the_session_name_whatever_they_say() {
    let app = spawn_app().await;
    let (mut ada, _) = app.join("ada", "lobby").await;
    let mut old_page = app.connect("/ws?feed=0").await.unwrap();
    old_page.welcome().await;
    old_page.send_text(r#"{"name":"bob","msg":"one"}"#).await;
    old_page
        .send_text(r#"{"name":"ada","msg":"two, pretending to be ada"}"#)
        .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let ServerMsg::Chat(c) = ada.recv().await {
            seen.push((c.name, c.msg));
        }
    }
    assert_eq!(seen[0], ("bob".into(), "one".into()));
    assert_eq!(seen[1], ("bob".into(), "two, pretending to be ada".into()));
}

#[tokio::test]
async fn a_nameless_session_must_name_itself_before_typed_chat() {
    let app = spawn_app().await;
    let (_ada, _) = app.join("ada", "lobby").await;
    let mut old_page = app.connect("/ws?feed=0").await.unwrap();
    old_page.welcome().await;
    old_page.chat("who am I?").await;
    assert!(matches!(
        old_page.recv().await,
        ServerMsg::Error {
            code: ErrorCode::NameRequired,
            ..
        }
    ));
    old_page.send_text(r#"{"name":"ada","msg":"taken"}"#).await;
    assert!(matches!(
        old_page.recv().await,
        ServerMsg::Error {
            code: ErrorCode::NameTaken,
            ..
        }
    ));
    old_page
        .send_text(r#"{"name":"a\u202Eb","msg":"bidi"}"#)
        .await;
    assert!(matches!(
        old_page.recv().await,
        ServerMsg::Error {
            code: ErrorCode::NameInvalid,
            ..
        }
    ));
    old_page
        .send_text(r#"{"name":"carol","msg":"finally"}"#)
        .await;
    let chat = old_page
        .recv_until(|m| match m {
            ServerMsg::Chat(c) => Some(c),
            _ => None,
        })
        .await;
    assert_eq!(
        (chat.name.as_str(), chat.msg.as_str()),
        ("carol", "finally")
    );
}
