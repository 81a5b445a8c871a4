//! Data publications (`POST /api/v1/rooms/{room}/data`): each delivery class end to end —
//! durable (a history entry: seq shared with the chat, replayed on resume, idempotent),
//! latest (the last value per key on join, kept across a restart), volatile (never stored,
//! dropped for a slow reader that is never closed for it) — typed refusals, and tutorial
//! pages that never see a data frame.

use serde_json::{Value, json};
use shared::{DataMsg, Delivery, ServerMsg};
use switchboard_tests::http::api_call;
use switchboard_tests::{Endpoint, TestApp, WsClient, spawn_app_with};

const KEY: &str = "data-key-0123456789abcdef";

async fn app_with(configure: impl FnOnce(&mut server::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.api_keys = vec![KEY.into()];
        s.api_rate_per_sec = 10_000;
        s.api_rate_burst = 10_000;
        configure(s);
    })
    .await
}

async fn publish(app: &Endpoint, room: &str, body: Value) -> (u16, Value) {
    api_call(
        app,
        "POST",
        &format!("/api/v1/rooms/{room}/data"),
        Some(KEY),
        &body.to_string(),
    )
    .await
}

/// The next data frame; any other frame but presence fails the test.
async fn next_data(client: &mut WsClient) -> DataMsg {
    loop {
        match client.recv().await {
            ServerMsg::Data(d) => return d,
            ServerMsg::Joined { .. } | ServerMsg::Presence { .. } => {}
            other => panic!("expected a data frame, got {other:?}"),
        }
    }
}

fn json_of(d: &DataMsg) -> Value {
    serde_json::from_str(d.data.as_str()).unwrap()
}

#[tokio::test]
async fn durable_data_is_a_history_entry_replayed_on_resume_and_stored_once_per_id() {
    let app = app_with(|_| {}).await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    let subscribed = ada.join_room("ops", None).await;
    let (status, body) = publish(
        &app,
        "ops",
        json!({"key": "deploy", "data": {"version": "1.2", "ratio": 0.25, "hosts": [1, 2]}, "delivery": "durable", "id": "d-1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["seq"].as_u64(), body["duplicate"].as_bool()),
        (Some(1), Some(false))
    );
    let d = next_data(&mut ada).await;
    assert_eq!(
        (d.room.as_str(), d.key.as_str(), d.delivery, d.seq),
        ("ops", "deploy", Delivery::Durable, Some(1))
    );
    assert_eq!(
        json_of(&d),
        json!({"version": "1.2", "ratio": 0.25, "hosts": [1, 2]})
    );
    // The same id again: the same seq, nothing new sent.
    let (status, body) = publish(
        &app,
        "ops",
        json!({"key": "deploy", "data": {"version": "1.2"}, "delivery": "durable", "id": "d-1"}),
    )
    .await;
    assert_eq!(
        (status, body["seq"].as_u64(), body["duplicate"].as_bool()),
        (200, Some(1), Some(true))
    );
    // A chat takes the next seq: data and chat share the room's history.
    ada.chat_in("ops", "after the deploy", "c-1").await;
    assert_eq!(ada.ack("c-1").await, 2);
    drop(ada);

    // Missed while away: two more points and a chat, replayed in seq order on resume.
    publish(
        &app,
        "ops",
        json!({"key": "deploy", "data": 3, "delivery": "durable"}),
    )
    .await;
    let (mut bob, _) = app.connect_v3("?name=bob&feed=0").await;
    bob.join_room("ops", None).await;
    bob.chat_in("ops", "while ada was away", "b-1").await;
    bob.ack("b-1").await;
    publish(
        &app,
        "ops",
        json!({"key": "deploy", "data": null, "delivery": "durable"}),
    )
    .await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    let resumed = ada.join_room("ops", Some((&subscribed.epoch, 2))).await;
    assert_eq!(resumed.resume, shared::Resume::Recovered { count: 3 });
    let mut replay = Vec::new();
    for _ in 0..3 {
        replay.push(match ada.recv().await {
            ServerMsg::Data(d) => (d.seq.unwrap(), d.data.as_str().to_owned()),
            ServerMsg::Chat(c) => (c.seq, c.msg),
            other => panic!("expected the replay, got {other:?}"),
        });
    }
    assert_eq!(
        replay,
        [
            (3, "3".to_owned()),
            (4, "while ada was away".to_owned()),
            (5, "null".to_owned())
        ]
    );
    // The history API carries the entry with its key.
    let page = app.history("ops", "").await;
    let entry = page.messages.iter().find(|m| m.seq == 3).unwrap();
    assert_eq!(
        (entry.key.as_deref(), entry.msg.as_str()),
        (Some("deploy"), "3")
    );
}

#[tokio::test]
async fn latest_data_is_the_last_value_per_key_sent_on_join_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("latest.db");
    let app = app_with({
        let db = db.clone();
        move |s| s.db = db
    })
    .await;
    let (mut watcher, _) = app.connect_v3("?name=watcher&feed=0").await;
    watcher.join_room("ops", None).await;
    for (key, value) in [
        ("cpu", json!(0.5)),
        ("mem", json!({"used": 1})),
        ("cpu", json!(0.75)),
    ] {
        let (status, body) = publish(
            &app,
            "ops",
            json!({"key": key, "data": value, "delivery": "latest"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let d = next_data(&mut watcher).await;
        assert_eq!(
            (d.key.as_str(), d.delivery, d.seq),
            (key, Delivery::Latest, None)
        );
        assert_eq!(json_of(&d), value);
    }
    let joiner = |app: &TestApp| {
        let app = **app;
        async move {
            let (mut c, _) = app.connect_v3("?name=joiner&feed=0").await;
            let subscribed = c.join_room("ops", None).await;
            // Latest values are not history: nothing to replay.
            assert_eq!(subscribed.resume, shared::Resume::Fresh { count: 0 });
            let mut got = [next_data(&mut c).await, next_data(&mut c).await];
            got.sort_by(|a, b| a.key.cmp(&b.key));
            got.iter()
                .map(|d| (d.key.clone(), json_of(d), d.delivery))
                .collect::<Vec<_>>()
        }
    };
    let expected = vec![
        ("cpu".to_owned(), json!(0.75), Delivery::Latest),
        ("mem".to_owned(), json!({"used": 1}), Delivery::Latest),
    ];
    assert_eq!(joiner(&app).await, expected);
    drop(watcher);
    app.shutdown().await;
    let app = app_with(move |s| s.db = db).await;
    assert_eq!(joiner(&app).await, expected, "after a restart");
}

#[tokio::test]
async fn volatile_data_is_dropped_for_a_slow_reader_which_stays_connected() {
    let app = app_with(|s| s.outbound_queue = 16).await;
    let (mut fast, _) = app.connect_v3("?name=fast&feed=0").await;
    fast.join_room("ticks", None).await;
    let (mut slow, _) = app.connect_v3_small_window("?name=slow&feed=0").await;
    slow.join_room("ticks", None).await;
    // `slow` reads nothing while 1,500 points of 16 KiB (24 MiB) go out: far more than its
    // socket buffers (both ends) and queue hold.
    let pad = "x".repeat(16 * 1024);
    let points = 1500;
    for i in 0..points {
        let (status, body) = publish(
            &app,
            "ticks",
            json!({"key": "tick", "data": {"i": i, "pad": pad}, "delivery": "volatile"}),
        )
        .await;
        assert_eq!((status, body["seq"].as_u64()), (202, None), "{body}");
        // The fast reader keeps up and gets every point.
        let d = next_data(&mut fast).await;
        assert_eq!(
            (d.delivery, json_of(&d)["i"].as_u64()),
            (Delivery::Volatile, Some(i))
        );
    }
    // A durable point after them is not dropped.
    publish(
        &app,
        "ticks",
        json!({"key": "done", "data": true, "delivery": "durable"}),
    )
    .await;
    let mut ticks = 0;
    let done = loop {
        let d = next_data(&mut slow).await;
        match d.delivery {
            Delivery::Volatile => ticks += 1,
            _ => break d,
        }
    };
    assert_eq!((done.key.as_str(), done.seq), ("done", Some(1)));
    assert!(
        ticks < points,
        "some volatile points were dropped ({ticks} of {points} arrived)"
    );
    let (_, _, metrics) = app.http_get("/metrics").await.unwrap();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchboard_volatile_dropped_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(dropped, points - ticks, "{metrics}");
    assert!(
        metrics.contains("switchboard_slow_consumers_dropped_total 0"),
        "{metrics}"
    );
    // Still connected: it chats.
    slow.chat_in("ticks", "caught up", "s-1").await;
    assert_eq!(slow.ack("s-1").await, 2);
}

#[tokio::test]
async fn a_tutorial_page_never_gets_a_data_frame() {
    let app = app_with(|_| {}).await;
    let mut page = app
        .connect_plain("/ws?room=ops&username=page")
        .await
        .unwrap();
    for delivery in ["durable", "latest", "volatile"] {
        let (status, body) = publish(
            &app,
            "ops",
            json!({"key": "k", "data": 1, "delivery": delivery}),
        )
        .await;
        assert!(matches!(status, 201 | 202), "{body}");
    }
    let (status, _) = api_call(
        &app,
        "POST",
        "/api/v1/rooms/ops/messages",
        Some(KEY),
        &json!({"name": "bot", "msg": "a chat after the data"}).to_string(),
    )
    .await;
    assert_eq!(status, 201);
    let first: Value = serde_json::from_str(&page.next_text().await).unwrap();
    assert_eq!(
        (&first["type"], &first["name"], &first["msg"]),
        (
            &json!("chat"),
            &json!("bot"),
            &json!("a chat after the data")
        )
    );
}

#[tokio::test]
async fn bad_publications_get_typed_errors() {
    let app = app_with(|s| s.max_message_bytes = 1024).await;
    let cases = [
        (
            json!({"key": "", "data": 1, "delivery": "latest"}),
            400,
            "key_invalid",
        ),
        (
            json!({"key": "a b", "data": 1, "delivery": "latest"}),
            400,
            "key_invalid",
        ),
        (
            json!({"key": "k", "data": 1, "delivery": "sometimes"}),
            400,
            "bad_request",
        ),
        (
            json!({"key": "k", "delivery": "latest"}),
            400,
            "bad_request",
        ),
        (
            json!({"key": "k", "data": 1, "delivery": "latest", "extra": 1}),
            400,
            "bad_request",
        ),
        (
            json!({"key": "k", "data": 1, "delivery": "volatile", "id": "x"}),
            400,
            "id_invalid",
        ),
        (
            json!({"key": "k", "data": 1, "delivery": "durable", "id": ""}),
            400,
            "id_invalid",
        ),
        (
            json!({"key": "k", "data": "x".repeat(2000), "delivery": "durable"}),
            413,
            "too_large",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = publish(&app, "ops", body.clone()).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let (got, answer) = publish(
        &app,
        "Not%20A%20Room%21",
        json!({"key": "k", "data": 1, "delivery": "latest"}),
    )
    .await;
    assert_eq!((got, answer["error"].as_str()), (400, Some("room_invalid")));
    let (got, answer) = api_call(
        &app,
        "POST",
        "/api/v1/rooms/ops/data",
        Some("wrong-key-0123456789abcdef"),
        &json!({"key": "k", "data": 1, "delivery": "latest"}).to_string(),
    )
    .await;
    assert_eq!((got, answer["error"].as_str()), (401, Some("unauthorized")));
}

#[tokio::test]
async fn a_broadcast_carries_a_data_point_to_many_rooms() {
    let app = app_with(|_| {}).await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("eu", None).await;
    ada.join_room("us", None).await;
    let broadcast = |body: Value| {
        let app = *app;
        async move {
            api_call(
                &app,
                "POST",
                "/api/v1/broadcast",
                Some(KEY),
                &body.to_string(),
            )
            .await
        }
    };
    let (status, body) = broadcast(
        json!({"rooms": ["eu", "us", "eu"], "key": "price", "data": 101.5, "delivery": "durable", "id": "p-1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let posted: Vec<(String, u64)> = body["posted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["room"].as_str().unwrap().to_owned(),
                p["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(posted, [("eu".to_owned(), 1), ("us".to_owned(), 1)]);
    let mut rooms = vec![
        next_data(&mut ada).await.room,
        next_data(&mut ada).await.room,
    ];
    rooms.sort();
    assert_eq!(rooms, ["eu", "us"]);
    // Neither shape, or both: refused before anything is written.
    for body in [
        json!({"rooms": ["eu"], "key": "price", "data": 1}),
        json!({"rooms": ["eu"], "name": "bot", "msg": "hi", "key": "price", "data": 1, "delivery": "latest"}),
        json!({"rooms": ["eu"]}),
    ] {
        let (status, answer) = broadcast(body.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("bad_request")),
            "{body}"
        );
    }
    // `null` is a value.
    let (status, body) =
        broadcast(json!({"rooms": ["eu"], "key": "state", "data": null, "delivery": "volatile"}))
            .await;
    assert_eq!(
        (status, body["posted"][0]["key"].as_str()),
        (200, Some("state")),
        "{body}"
    );
    let d = next_data(&mut ada).await;
    assert_eq!((d.key.as_str(), d.data.as_str()), ("state", "null"));
    let (status, answer) = broadcast(
        json!({"rooms": ["eu", "Bad Room"], "key": "price", "data": 1, "delivery": "latest"}),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("room_invalid"))
    );
    assert_eq!(
        app.history("eu", "").await.messages.len(),
        1,
        "nothing more stored"
    );
}

#[tokio::test]
async fn more_latest_keys_than_the_queue_holds_all_reach_a_joiner() {
    let app = app_with(|s| s.outbound_queue = 16).await;
    for i in 0..100 {
        let (status, body) = publish(
            &app,
            "ops",
            json!({"key": format!("k{i}"), "data": i, "delivery": "latest"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (mut joiner, _) = app.connect_v3("?name=joiner&feed=0").await;
    joiner.join_room("ops", None).await;
    let mut keys = std::collections::BTreeSet::new();
    for _ in 0..100 {
        keys.insert(next_data(&mut joiner).await.key);
    }
    assert_eq!(keys.len(), 100);
    // Still connected.
    joiner.chat_in("ops", "all here", "j-1").await;
    assert_eq!(joiner.ack("j-1").await, 1);
}
