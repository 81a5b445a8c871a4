//! Plain clients: a tutorial page connects with no subprotocol. It gets only frames it can
//! display (objects with string `name` and `msg`), may name itself with `?username=` (the WebAPI
//! chat) or with its first `{"name","msg"}` frame (the Fleck chat), and may send plain text.

use shared::ClientMsg;
use switchboard_tests::{WsClient, spawn_app};

/// The next frame as a page sees it: `(name, msg)`; any other shape fails the test.
async fn displayed(page: &mut WsClient) -> (String, String) {
    let text = page.next_text().await;
    let value: serde_json::Value = serde_json::from_str(&text).expect("a JSON object");
    match (value["name"].as_str(), value["msg"].as_str()) {
        (Some(name), Some(msg)) => (name.to_owned(), msg.to_owned()),
        _ => panic!("a frame a tutorial page cannot display: {text}"),
    }
}

#[tokio::test]
async fn a_plain_client_gets_only_frames_it_can_display_and_may_send_plain_text() {
    let app = spawn_app().await;
    // A typed client with the live feed on: stats, presence and typing flow in the room.
    let mut bob = app.connect("/ws?name=bob&room=lobby").await.unwrap();
    bob.welcome().await;
    bob.chat("before you came").await;
    bob.chats(1).await;

    let mut page = app
        .connect_plain("/ws?username=ada&room=lobby")
        .await
        .unwrap();
    // History first, as chat messages.
    assert_eq!(
        displayed(&mut page).await,
        ("bob".into(), "before you came".into())
    );
    page.send_text("hello from a tutorial page").await;
    // The typed client hears the page under its name (so it is stored before bob answers).
    let heard = bob.chats(1).await.remove(0);
    assert_eq!(
        (heard.name.as_str(), heard.msg.as_str()),
        ("ada", "hello from a tutorial page")
    );
    // Typing, presence (carl joins and leaves) and acks flow in the room; the page gets none.
    bob.send(&ClientMsg::Typing).await;
    let (carl, _) = app.join("carl", "lobby").await;
    drop(carl);
    bob.chat_with_id("hi ada", "b1").await;
    bob.ack("b1").await;
    page.send_text("   ").await; // blank: refused, as a notice the page can show
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(displayed(&mut page).await);
    }
    // Whatever the room sent the page meanwhile would have come before this.
    bob.chat("end").await;
    seen.push(displayed(&mut page).await);
    assert_eq!(
        seen,
        [
            ("ada".into(), "hello from a tutorial page".into()),
            ("bob".into(), "hi ada".into()),
            ("Switchboard".into(), "message must not be empty".into()),
            ("bob".into(), "end".into()),
        ]
    );
}

#[tokio::test]
async fn a_plain_page_without_a_name_takes_the_name_of_its_first_name_msg_frame() {
    let app = spawn_app().await;
    let mut page = app.connect_plain("/ws?room=fleck").await.unwrap();
    page.send_text("typed before naming itself").await;
    assert_eq!(
        displayed(&mut page).await,
        (
            "Switchboard".into(),
            "connect with ?name= (or send {\"name\",\"msg\"}) before chatting".into()
        )
    );
    page.send_text(r#"{"name":"Ada","msg":"hi all"}"#).await;
    assert_eq!(displayed(&mut page).await, ("Ada".into(), "hi all".into()));
    // Later frames keep the session's name, whatever they claim.
    page.send_text(r#"{"name":"Mallory","msg":"it is me"}"#)
        .await;
    assert_eq!(
        displayed(&mut page).await,
        ("Ada".into(), "it is me".into())
    );
}

#[tokio::test]
async fn nobody_may_take_the_name_the_server_notices_carry() {
    let app = spawn_app().await;
    let mut page = app
        .connect_plain("/ws?username=switchboard&room=lobby")
        .await
        .unwrap();
    assert_eq!(
        displayed(&mut page).await,
        (
            "Switchboard".into(),
            "name is reserved for the server's own notices".into()
        )
    );
    assert_eq!(page.close_code().await, shared::close_code::REJECTED);
}

#[tokio::test]
async fn a_stock_client_from_before_subprotocols_keeps_protocol_v2() {
    // It sends a token, which tutorial pages never do: a tab open across an upgrade.
    let app = spawn_app().await;
    let mut old = app
        .connect_plain("/ws?name=ada&room=lobby&feed=0&token=ada-token-0123456789")
        .await
        .unwrap();
    assert_eq!(old.welcome().await.name.as_deref(), Some("ada"));
}
