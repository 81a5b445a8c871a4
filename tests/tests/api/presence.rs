//! Names held by tokens, presence with connection counts, the grace period, typing.

use std::time::Duration;

use shared::{ErrorCode, Member, ServerMsg, close_code};
use switchboard_tests::spawn_app_with;

const ADA: &str = "ada-token-0123456789";
const EVE: &str = "eve-token-0123456789";
const BOB: &str = "bob-token-0123456789";

fn member(name: &str, connections: u32) -> Member {
    Member {
        name: name.into(),
        connections,
    }
}

#[tokio::test]
async fn two_tabs_of_one_person_share_the_name_and_presence_counts_connections() {
    let app = spawn_app_with(|s| s.name_grace_secs = 30).await;
    let (mut bob, _) = app.join_as("bob", "lobby", BOB, None).await;
    let (_tab1, _) = app.join_as("ada", "lobby", ADA, None).await;
    assert_eq!(
        bob.recv().await,
        ServerMsg::Joined {
            room: "lobby".into(),
            member: member("ada", 1)
        }
    );
    let (tab2, w) = app.join_as("ada", "lobby", ADA, None).await;
    assert!(w.members.contains(&member("ada", 2)), "{:?}", w.members);
    assert_eq!(
        bob.recv().await,
        ServerMsg::Presence {
            room: "lobby".into(),
            member: member("ada", 2)
        }
    );
    drop(tab2);
    assert_eq!(
        bob.recv().await,
        ServerMsg::Presence {
            room: "lobby".into(),
            member: member("ada", 1)
        }
    );
}

#[tokio::test]
async fn a_name_is_held_across_a_reconnect_within_the_grace_period_and_released_after_it() {
    let app = spawn_app_with(|s| s.name_grace_secs = 2).await;
    let (mut bob, _) = app.join_as("bob", "lobby", BOB, None).await;
    let (ada, _) = app.join_as("ada", "lobby", ADA, None).await;
    assert!(matches!(bob.recv().await, ServerMsg::Joined { .. }));
    drop(ada);
    // Ada is reconnecting: held, shown with 0 connections, no leave.
    assert_eq!(
        bob.recv().await,
        ServerMsg::Presence {
            room: "lobby".into(),
            member: member("ada", 0)
        }
    );
    // Someone else cannot take the name meanwhile.
    let mut eve = app
        .connect(&format!("/ws?name=ada&room=lobby&feed=0&token={EVE}"))
        .await
        .unwrap();
    assert!(matches!(
        eve.recv().await,
        ServerMsg::Error {
            code: ErrorCode::NameTaken,
            ..
        }
    ));
    assert_eq!(eve.close_code().await, close_code::NAME_TAKEN);
    // Ada comes back in time and keeps her name, without a leave/join.
    let (ada, w) = app.join_as("ada", "lobby", ADA, None).await;
    assert_eq!(w.name.as_deref(), Some("ada"));
    assert_eq!(
        bob.recv().await,
        ServerMsg::Presence {
            room: "lobby".into(),
            member: member("ada", 1)
        }
    );
    drop(ada);
    assert_eq!(
        bob.recv().await,
        ServerMsg::Presence {
            room: "lobby".into(),
            member: member("ada", 0)
        }
    );
    // Gone for longer than the grace period: released, and others hear she left.
    let left = tokio::time::timeout(Duration::from_secs(5), bob.recv())
        .await
        .expect("left after grace");
    assert_eq!(
        left,
        ServerMsg::Left {
            room: "lobby".into(),
            member: member("ada", 0)
        }
    );
    let (_eve, w) = app.join_as("ada", "lobby", EVE, None).await;
    assert_eq!(w.name.as_deref(), Some("ada"));
}

#[tokio::test]
async fn typing_is_relayed_to_the_others_throttled_and_never_stored() {
    let app = spawn_app_with(|_| {}).await;
    let (mut ada, _) = app.join_as("ada", "lobby", ADA, None).await;
    let (mut bob, _) = app.join_as("bob", "lobby", BOB, None).await;
    ada.recv().await; // bob joined
    for _ in 0..5 {
        ada.send(&shared::ClientMsg::Typing).await;
    }
    ada.chat_with_id("done typing", "t1").await;
    let mut typing = 0;
    loop {
        match bob.recv().await {
            ServerMsg::Typing { name, room } => {
                assert_eq!((name.as_str(), room.as_str()), ("ada", "lobby"));
                typing += 1;
            }
            ServerMsg::Chat(c) if c.msg == "done typing" => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        typing, 1,
        "five typing notices within a second are relayed once"
    );
    // The typist does not hear its own notice.
    assert!(matches!(
        ada.recv().await,
        ServerMsg::Ack { .. } | ServerMsg::Chat(_)
    ));
    assert_eq!(app.history("lobby", "").await.messages.len(), 1);
}

/// Presence changes within one interval go out as one `presence_batch`, which a v2 client
/// (built before batches) cannot read: it gets each change as its own `joined` or `left`,
/// while a v3 member of the same room gets the batch.
#[tokio::test]
async fn a_v2_client_gets_a_batch_of_presence_changes_one_by_one() {
    let app = spawn_app_with(|s| {
        s.presence_interval_ms = 1_000;
        s.name_grace_secs = 0;
    })
    .await;
    let (mut old, _) = app.join("old", "mixed").await;
    let (leaver, _) = app.join("leaver", "mixed").await;
    // The first change after a quiet interval goes out at once, on its own.
    match old.recv().await {
        ServerMsg::Joined { member: m, .. } => assert_eq!(m, member("leaver", 1)),
        other => panic!("expected leaver joining, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (mut new, _) = app.connect_v3("?name=new&feed=0").await;
    new.join_room("mixed", None).await;
    match old.recv().await {
        ServerMsg::Joined { member: m, .. } => assert_eq!(m, member("new", 1)),
        other => panic!("expected new joining, got {other:?}"),
    }
    // Within the interval after it: two arrivals and a departure, announced together.
    let (mut g1, _) = app.join("g1", "mixed").await;
    let (mut g2, _) = app.join("g2", "mixed").await;
    let mut leaver = leaver;
    leaver.stream.close(None).await.unwrap();

    match new.recv().await {
        ServerMsg::PresenceBatch {
            online,
            mut changed,
            left,
            ..
        } => {
            changed.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(
                (online, changed, left),
                (
                    4,
                    vec![member("g1", 1), member("g2", 1)],
                    vec!["leaver".to_owned()]
                )
            );
        }
        other => panic!("a v3 client expected the batch, got {other:?}"),
    }
    // A message after the batch: what each v2 client heard before it is all it heard. Nobody
    // hears of their own arrival, which their welcome showed.
    new.chat_in("mixed", "after", "n1").await;
    assert_eq!(heard_until_chat(&mut old).await, ["+g1", "+g2", "-leaver"]);
    assert_eq!(heard_until_chat(&mut g1).await, ["+g2", "-leaver"]);
    assert_eq!(heard_until_chat(&mut g2).await, ["+g1", "-leaver"]);
}

/// The presence frames a v2 client gets before the next chat message, sorted: `+name` for
/// `joined`, `-name` for `left`.
async fn heard_until_chat(client: &mut switchboard_tests::WsClient) -> Vec<String> {
    let mut heard = Vec::new();
    loop {
        match client.recv().await {
            ServerMsg::Joined { member: m, .. } => heard.push(format!("+{}", m.name)),
            ServerMsg::Left { member: m, .. } => heard.push(format!("-{}", m.name)),
            ServerMsg::Chat(_) => break,
            other => panic!("a v2 client expected joined, left or chat, got {other:?}"),
        }
    }
    heard.sort();
    heard
}

/// A room that grows past `--presence-list-max` and shrinks back sends its v3 members the
/// whole list; a v2 member cannot replace its list, and is closed with 1013 to reconnect for a
/// new welcome, instead of being sent a `joined` per member.
#[tokio::test]
async fn a_v2_client_reconnects_for_the_list_when_a_large_room_is_listed_again() {
    let app = spawn_app_with(|s| {
        s.presence_list_max = 3;
        s.presence_interval_ms = 0;
        s.name_grace_secs = 0;
    })
    .await;
    let (mut old, _) = app.join("old", "big").await;
    let mut others = Vec::new();
    for name in ["m1", "m2", "m3"] {
        others.push(app.join(name, "big").await.0);
    }
    // Four members: past the limit, the room is counted. One leaves: listed again.
    others.pop().unwrap().stream.close(None).await.unwrap();
    assert_eq!(old.close_code().await, close_code::TRY_AGAIN_LATER);
}
