use shared::{ErrorCode, ServerMsg, close_code};
use switchboard_tests::spawn_app;

#[tokio::test]
async fn message_is_broadcast_to_every_member_of_the_room_and_no_other_room() {
    let app = spawn_app().await;
    let (mut ada, _) = app.join("ada", "lobby").await;
    let (mut bob, _) = app.join("bob", "lobby").await;
    let (mut eve, _) = app.join("eve", "other").await;
    ada.recv_until(|m| matches!(m, ServerMsg::Joined { .. }).then_some(()))
        .await;

    ada.chat("hello room").await;
    for client in [&mut ada, &mut bob] {
        let chat = client
            .recv_until(|m| match m {
                ServerMsg::Chat(c) => Some(c),
                _ => None,
            })
            .await;
        assert_eq!(
            (chat.name.as_str(), chat.msg.as_str(), chat.room.as_str()),
            ("ada", "hello room", "lobby")
        );
    }
    // eve's room hears nothing of it: the next thing eve sees is her own message.
    eve.chat("elsewhere").await;
    match eve.recv().await {
        ServerMsg::Chat(c) => assert_eq!((c.name.as_str(), c.msg.as_str()), ("eve", "elsewhere")),
        other => panic!("eve got {other:?}"),
    }
}

#[tokio::test]
async fn welcome_tells_the_client_who_and_where_it_is() {
    let app = spawn_app().await;
    let (_ada, first) = app.join("ada", "Lobby").await;
    let (_bob, w) = app.join("%20%20bob%20", "lobby").await;
    assert_eq!(w.protocol, shared::PROTOCOL_VERSION);
    assert_eq!(w.server_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(w.name.as_deref(), Some("bob"));
    assert_eq!(w.room, "lobby");
    assert!(w.peer_addr.starts_with("127.0.0.1:"), "{}", w.peer_addr);
    let names: Vec<_> = w.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["ada", "bob"]);
    assert_ne!(w.session, first.session);
    assert_eq!(w.limits.max_name_chars, 32);
    assert_eq!(w.limits.max_message_bytes, 64 * 1024);
}

#[tokio::test]
async fn members_are_told_of_joins_and_leaves() {
    let app = spawn_app().await;
    let (mut ada, _) = app.join("ada", "lobby").await;
    let (bob, _) = app.join("bob", "lobby").await;
    let joined = ada.recv().await;
    assert!(
        matches!(&joined, ServerMsg::Joined { member, room } if member.name == "bob" && room == "lobby" && member.connections == 1),
        "{joined:?}"
    );
    drop(bob);
    let left = ada.recv().await;
    assert!(
        matches!(&left, ServerMsg::Left { member, .. } if member.name == "bob"),
        "{left:?}"
    );
}

#[tokio::test]
async fn a_name_already_in_the_room_is_refused_with_a_typed_error() {
    let app = spawn_app().await;
    let (_ada, _) = app.join("ada", "lobby").await;
    let mut second = app.connect("/ws?name=ada&room=lobby&feed=0").await.unwrap();
    match second.recv().await {
        ServerMsg::Error { code, reason, .. } => {
            assert_eq!(code, ErrorCode::NameTaken);
            assert!(reason.contains("ada"), "{reason}");
        }
        other => panic!("expected name_taken, got {other:?}"),
    }
    assert_eq!(second.close_code().await, close_code::NAME_TAKEN);
    // The same name in another room is fine.
    let (_other, w) = app.join("ada", "games").await;
    assert_eq!(w.name.as_deref(), Some("ada"));
}

#[tokio::test]
async fn invalid_names_and_rooms_are_refused() {
    let app = spawn_app().await;
    let long = "x".repeat(33);
    for (query, code) in [
        ("name=%20%20", ErrorCode::NameInvalid),
        (&format!("name={long}") as &str, ErrorCode::NameInvalid),
        ("name=ad%E2%80%AEa", ErrorCode::NameInvalid), // U+202E right-to-left override
        ("name=a%E2%80%8Bb", ErrorCode::NameInvalid),  // U+200B zero-width space
        ("name=ok&room=no%2Fslash", ErrorCode::RoomInvalid),
    ] {
        let mut c = app.connect(&format!("/ws?{query}")).await.unwrap();
        match c.recv().await {
            ServerMsg::Error { code: got, .. } => assert_eq!(got, code, "{query}"),
            other => panic!("{query}: expected an error, got {other:?}"),
        }
        assert_eq!(c.close_code().await, close_code::REJECTED, "{query}");
    }
}

#[tokio::test]
async fn bad_frames_get_typed_errors_and_the_session_continues() {
    let app = spawn_app().await;
    let (mut ada, _) = app.join("ada", "lobby").await;
    for (frame, code) in [
        ("{not json", ErrorCode::Malformed),
        (r#"{"type":"launch_missiles"}"#, ErrorCode::InvalidMessage),
        (r#"{"type":"chat","msg":42}"#, ErrorCode::InvalidMessage),
        (r#"{"type":"chat","msg":"   "}"#, ErrorCode::TextInvalid),
        (
            r#"{"type":"chat","msg":"bell\u0007"}"#,
            ErrorCode::TextInvalid,
        ),
    ] {
        ada.send_text(frame).await;
        match ada.recv().await {
            ServerMsg::Error {
                code: got, reason, ..
            } => {
                assert_eq!(got, code, "{frame}");
                assert!(!reason.is_empty());
            }
            other => panic!("{frame}: expected an error, got {other:?}"),
        }
    }
    let too_long = "x".repeat(shared::MessageText::DEFAULT_MAX_CHARS + 1);
    ada.chat(&too_long).await;
    assert!(matches!(
        ada.recv().await,
        ServerMsg::Error {
            code: ErrorCode::TextInvalid,
            ..
        }
    ));
    ada.stream
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            1, 2, 3,
        ]))
        .await
        .unwrap();
    assert!(matches!(
        ada.recv().await,
        ServerMsg::Error {
            code: ErrorCode::BinaryNotSupported,
            ..
        }
    ));
    ada.chat("still here").await;
    assert!(matches!(ada.recv().await, ServerMsg::Chat(c) if c.msg == "still here"));
}

use futures_util::SinkExt;
