//! The server API for the app's backend (`/api/v1`, `--api-key`): off without a key, 401 for a
//! wrong or missing one, rotated keys, a bot's message stored and broadcast once per id, typed
//! 400s, and the rooms and members as the server sees them.

use shared::ServerMsg;
use switchboard_tests::http::api_call as call;
use switchboard_tests::{spawn_app, spawn_app_with};

const OLD_KEY: &str = "old-key-0123456789abcdef";
const NEW_KEY: &str = "new-key-fedcba9876543210";

#[tokio::test]
async fn without_a_key_the_api_is_off() {
    let app = spawn_app().await;
    for (method, path) in [
        ("POST", "/api/v1/rooms/lobby/messages"),
        ("GET", "/api/v1/rooms"),
        ("GET", "/api/v1/rooms/lobby/members"),
    ] {
        let (status, body) = call(&app, method, path, Some(OLD_KEY), "{}").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("api_disabled")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_401_and_both_rotated_keys_work() {
    let app = spawn_app_with(|s| s.api_keys = vec![OLD_KEY.into(), NEW_KEY.into()]).await;
    for key in [
        None,
        Some("wrong-key-0123456789abcd"),
        Some(""),
        Some(&OLD_KEY[..10]),
    ] {
        let (status, body) = call(&app, "GET", "/api/v1/rooms", key, "").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{key:?}"
        );
    }
    for key in [OLD_KEY, NEW_KEY] {
        let (status, body) = call(&app, "GET", "/api/v1/rooms", Some(key), "").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["rooms"], serde_json::json!([]));
    }
}

#[tokio::test]
async fn a_bots_message_is_stored_broadcast_and_stored_once_per_id() {
    let app = spawn_app_with(|s| s.api_keys = vec![OLD_KEY.into()]).await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("deploys", None).await;

    let body = r#"{"name":"deploy-bot","msg":"v1.2 is live","id":"deploy-42"}"#;
    let (status, posted) = call(
        &app,
        "POST",
        "/api/v1/rooms/deploys/messages",
        Some(OLD_KEY),
        body,
    )
    .await;
    assert_eq!(status, 201, "{posted}");
    assert_eq!(
        (
            &posted["room"],
            &posted["seq"],
            &posted["id"],
            &posted["duplicate"]
        ),
        (
            &serde_json::json!("deploys"),
            &serde_json::json!(1),
            &serde_json::json!("deploy-42"),
            &serde_json::json!(false)
        )
    );
    let chat = ada.chats(1).await.remove(0);
    assert_eq!(
        (
            chat.room.as_str(),
            chat.seq,
            chat.name.as_str(),
            chat.msg.as_str()
        ),
        ("deploys", 1, "deploy-bot", "v1.2 is live")
    );
    // The same call again (a retry): the same answer, nothing stored or sent.
    let (status, again) = call(
        &app,
        "POST",
        "/api/v1/rooms/deploys/messages",
        Some(OLD_KEY),
        body,
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["seq"], &again["duplicate"]),
        (&serde_json::json!(1), &serde_json::json!(true))
    );
    let page = app.history("deploys", "").await;
    assert_eq!(page.messages.len(), 1);
    // A new id is a new message.
    let (status, next) = call(
        &app,
        "POST",
        "/api/v1/rooms/deploys/messages",
        Some(OLD_KEY),
        r#"{"name":"deploy-bot","msg":"v1.3 is live"}"#,
    )
    .await;
    assert_eq!((status, &next["seq"]), (201, &serde_json::json!(2)));
    match ada.recv().await {
        ServerMsg::Chat(c) => assert_eq!((c.seq, c.msg.as_str()), (2, "v1.3 is live")),
        other => panic!("expected the second message, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_messages_get_typed_400s_and_store_nothing() {
    let app = spawn_app_with(|s| s.api_keys = vec![OLD_KEY.into()]).await;
    let long_name = format!(r#"{{"name":"{}","msg":"hi"}}"#, "n".repeat(100));
    for (path, body, code) in [
        (
            "/api/v1/rooms/Bad Room!/messages",
            r#"{"name":"bot","msg":"hi"}"#,
            "room_invalid",
        ),
        (
            "/api/v1/rooms/ok/messages",
            r#"{"name":"","msg":"hi"}"#,
            "name_invalid",
        ),
        (
            "/api/v1/rooms/ok/messages",
            long_name.as_str(),
            "name_invalid",
        ),
        (
            "/api/v1/rooms/ok/messages",
            r#"{"name":"bot","msg":""}"#,
            "text_invalid",
        ),
        (
            "/api/v1/rooms/ok/messages",
            r#"{"name":"bot","msg":"hi","id":""}"#,
            "id_invalid",
        ),
        (
            "/api/v1/rooms/ok/messages",
            r#"{"name":"bot"}"#,
            "bad_request",
        ),
        (
            "/api/v1/rooms/ok/messages",
            r#"{"name":"bot","msg":"hi","admin":true}"#,
            "bad_request",
        ),
        ("/api/v1/rooms/ok/messages", "not json", "bad_request"),
    ] {
        let path = path.replace(' ', "%20");
        let (status, answer) = call(&app, "POST", &path, Some(OLD_KEY), body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(code)),
            "{body}: {answer}"
        );
    }
    assert!(app.history("ok", "").await.messages.is_empty());
}

#[tokio::test]
async fn rooms_and_members_are_listed_as_the_server_sees_them() {
    let app = spawn_app_with(|s| s.api_keys = vec![OLD_KEY.into()]).await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("kitchen", None).await;
    ada.join_room("garden", None).await;
    let (mut bob, _) = app.connect_v3("?name=bob&feed=0").await;
    bob.join_room("kitchen", None).await;

    let (status, rooms) = call(&app, "GET", "/api/v1/rooms", Some(OLD_KEY), "").await;
    assert_eq!(status, 200);
    assert_eq!(
        rooms["rooms"],
        serde_json::json!([
            {"room": "garden", "members": 1},
            {"room": "kitchen", "members": 2},
        ])
    );
    let (status, members) = call(
        &app,
        "GET",
        "/api/v1/rooms/kitchen/members",
        Some(OLD_KEY),
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        members,
        serde_json::json!({
            "room": "kitchen",
            "members": [{"name": "ada", "connections": 1}, {"name": "bob", "connections": 1}],
        })
    );
    let (status, empty) = call(
        &app,
        "GET",
        "/api/v1/rooms/nobody-here/members",
        Some(OLD_KEY),
        "",
    )
    .await;
    assert_eq!((status, &empty["members"]), (200, &serde_json::json!([])));
}

#[tokio::test]
async fn a_broadcast_reaches_every_room_named_once_and_a_bad_room_stores_nothing() {
    let app = spawn_app_with(|s| s.api_keys = vec![OLD_KEY.into()]).await;
    let (mut ada, _) = app.connect_v3("?name=ada&feed=0").await;
    ada.join_room("eu", None).await;
    ada.join_room("us", None).await;
    let (status, refused) = call(
        &app,
        "POST",
        "/api/v1/broadcast",
        Some(OLD_KEY),
        r#"{"rooms":["eu","Not a room"],"name":"ops","msg":"maintenance at 22:00"}"#,
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("room_invalid"))
    );
    let (status, posted) = call(
        &app,
        "POST",
        "/api/v1/broadcast",
        Some(OLD_KEY),
        r#"{"rooms":["eu","us","eu"],"name":"ops","msg":"maintenance at 22:00","id":"m-1"}"#,
    )
    .await;
    assert_eq!(status, 200, "{posted}");
    assert_eq!(
        posted["posted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["room"].as_str().unwrap(), p["seq"].as_u64().unwrap()))
            .collect::<Vec<_>>(),
        [("eu", 1), ("us", 1)],
        "the refused call stored nothing; eu named twice is sent once"
    );
    let mut rooms: Vec<String> = ada.chats(2).await.into_iter().map(|c| c.room).collect();
    rooms.sort();
    assert_eq!(rooms, ["eu", "us"]);
    for room in ["eu", "us"] {
        assert_eq!(app.history(room, "").await.messages.len(), 1, "{room}");
    }
}

/// The OpenAPI document is generated from the handlers; it must list exactly the routes the
/// server serves, each answering as documented.
#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let off = spawn_app().await;
    let (status, body) = call(&off, "GET", "/api/v1/openapi.json", None, "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("api_disabled"))
    );

    let app = spawn_app_with(|s| s.api_keys = vec![OLD_KEY.into()]).await;
    let (status, doc) = call(&app, "GET", "/api/v1/openapi.json", None, "").await;
    assert_eq!(status, 200, "{doc}");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    documented.sort();
    assert_eq!(
        documented,
        [
            ("GET".to_owned(), "/api/v1/rooms".to_owned()),
            ("GET".to_owned(), "/api/v1/rooms/{room}/members".to_owned()),
            ("POST".to_owned(), "/api/v1/broadcast".to_owned()),
            ("POST".to_owned(), "/api/v1/rooms/{room}/data".to_owned()),
            (
                "POST".to_owned(),
                "/api/v1/rooms/{room}/messages".to_owned()
            ),
            (
                "POST".to_owned(),
                "/api/v1/users/{sub}/disconnect".to_owned()
            ),
        ]
    );
    // Each documented route is served: with the key, a GET (and the body-less disconnect)
    // answers 200 and a POST with an empty object answers the documented 400 (not a missing
    // route).
    for (method, template) in &documented {
        let path = template
            .replace("{room}", "lobby")
            .replace("{sub}", "nobody");
        let (status, body) = call(&app, method, &path, Some(OLD_KEY), "{}").await;
        let expected = if method == "GET" || template.ends_with("/disconnect") {
            200
        } else {
            400
        };
        assert_eq!(status, expected, "{method} {path}: {body}");
        if expected == 400 {
            assert_eq!(body["error"], "bad_request", "{method} {path}: {body}");
        }
        assert!(
            doc["paths"][template][method.to_lowercase()]["responses"][expected.to_string()]
                .is_object(),
            "{method} {path} documents its {expected}"
        );
    }
}
