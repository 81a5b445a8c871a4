//! Plain clients: a tutorial page connects with no subprotocol. It gets only frames it can
//! display (objects with string `name` and `msg`), may name itself with `?username=` (the WebAPI
//! chat) or with its first `{"name","msg"}` frame (the Fleck chat), and may send plain text.

use std::time::Duration;

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
    bob.send(&ClientMsg::Typing).await;
    bob.chat("hi ada").await;
    // More than a feed period passes: a stats frame would have been sent by now.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    page.send_text("   ").await; // blank: refused, as a notice the page can show
    bob.chat("end").await;
    let mut seen = Vec::new();
    loop {
        let line = displayed(&mut page).await;
        let end = line == ("bob".into(), "end".into());
        seen.push(line);
        if end {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            ("ada".into(), "hello from a tutorial page".into()),
            ("bob".into(), "hi ada".into()),
            ("Switchboard".into(), "message must not be empty".into()),
            ("bob".into(), "end".into()),
        ]
    );
    // The typed client heard the page under its name.
    let heard = bob.chats(1).await.remove(0);
    assert_eq!(
        (heard.name.as_str(), heard.msg.as_str()),
        ("ada", "hello from a tutorial page")
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
