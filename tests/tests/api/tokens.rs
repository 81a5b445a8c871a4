//! Signed user tokens (`--jwt-hs256-secret`, `--jwt-public-key`): a battery of forged and
//! broken tokens, each refused before the upgrade with 401 and its typed code; names from the
//! token and held by its user; the `rooms` claim and attempts around it; refresh in band; the
//! close at `exp`; the server API's disconnect; the HTTP transports.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shared::{Command, ErrorCode, RoomId, ServerMsg, close_code};
use switchboard_tests::http::{SseClient, http_request};
use switchboard_tests::{Endpoint, TestApp, WsClient, spawn_app_with};
use tokio_tungstenite::tungstenite;

const SECRET: &str = "test-secret-of-at-least-32-bytes-0123456789";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jwt");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims for `sub`, valid for `secs` from now, with `extra` merged in (a `null` removes one).
fn claims(sub: &str, secs: i64, extra: Value) -> Value {
    let mut c = json!({ "sub": sub, "exp": now().saturating_add_signed(secs), "iat": now() });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

fn secret_key(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret).unwrap()
}

fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, &secret_key(SECRET.as_bytes()), claims)
}

/// Base64url without padding, as JWTs use it.
fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

async fn hs256_app(configure: impl FnOnce(&mut server::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.jwt_hs256_secret = Some(SECRET.into());
        s.api_keys = vec!["api-key-0123456789abcdef".into()];
        configure(s);
    })
    .await
}

/// Tries a v3 connection; the refusal's status and typed code, or the client and its hello.
async fn try_v3(app: &Endpoint, query: &str) -> Result<(WsClient, shared::Hello), (u16, String)> {
    match app
        .connect_with_headers(
            &format!("/ws{query}"),
            &[("Sec-WebSocket-Protocol", shared::SUBPROTOCOL_V3)],
        )
        .await
    {
        Ok(mut client) => match client.recv().await {
            ServerMsg::Hello(hello) => Ok((client, hello)),
            other => panic!("expected hello, got {other:?}"),
        },
        Err(tungstenite::Error::Http(response)) => {
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            Err((
                response.status().as_u16(),
                body["error"].as_str().unwrap().to_owned(),
            ))
        }
        Err(e) => panic!("unexpected connect error: {e}"),
    }
}

async fn v3_as(app: &Endpoint, token: &str) -> (WsClient, shared::Hello) {
    try_v3(app, &format!("?access_token={token}"))
        .await
        .unwrap_or_else(|e| panic!("refused: {e:?}"))
}

/// Accepted, or refused with this status and code.
type Outcome = Result<(), (u16, String)>;

fn refused(code: ErrorCode) -> Outcome {
    Err((401, code.name().to_owned()))
}

#[tokio::test]
async fn a_battery_of_forged_and_broken_tokens_is_refused_with_401_and_its_code() {
    let app = hs256_app(|_| {}).await;
    let good = hs256(&claims("ada", 600, json!({})));
    let [head, _, signature] = good.split('.').collect::<Vec<_>>()[..] else {
        panic!("a JWT has three parts")
    };
    let forged_payload = b64url(claims("admin", 600, json!({})).to_string().as_bytes());
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let wrong_secret = secret_key(b"another-secret-of-at-least-32-bytes!!");
    let cases: Vec<(&str, String, Outcome)> = vec![
        ("no token", String::new(), refused(ErrorCode::TokenRequired)),
        (
            "not a JWT",
            "not-a-jwt".into(),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "two parts",
            format!("{head}.{forged_payload}"),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "signed with another secret",
            sign(
                Algorithm::HS256,
                &wrong_secret,
                &claims("ada", 600, json!({})),
            ),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "alg none, no signature",
            format!("{none_header}.{forged_payload}."),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "alg none, the real signature kept",
            format!("{none_header}.{forged_payload}.{signature}"),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "payload swapped, signature kept",
            format!("{head}.{forged_payload}.{signature}"),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "HS384 with the right secret (not the key's algorithm)",
            sign(
                Algorithm::HS384,
                &secret_key(SECRET.as_bytes()),
                &claims("ada", 600, json!({})),
            ),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "expired",
            hs256(&claims("ada", -60, json!({}))),
            refused(ErrorCode::TokenExpired),
        ),
        (
            "not valid yet (nbf)",
            hs256(&claims("ada", 600, json!({ "nbf": now() + 300 }))),
            refused(ErrorCode::TokenNotYetValid),
        ),
        (
            "issued in the future (iat)",
            hs256(&claims("ada", 600, json!({ "iat": now() + 300 }))),
            refused(ErrorCode::TokenNotYetValid),
        ),
        (
            "no exp",
            hs256(&claims("ada", 600, json!({ "exp": null }))),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "no sub",
            hs256(&claims("ada", 600, json!({ "sub": null }))),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "exp as a string",
            hs256(&claims("ada", 600, json!({ "exp": "tomorrow" }))),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "a name with a bidi override",
            hs256(&claims("ada", 600, json!({ "name": "ada\u{202e}" }))),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "a rooms claim that is a path",
            hs256(&claims("ada", 600, json!({ "rooms": ["../admin"] }))),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "a rooms claim with a wildcard inside",
            hs256(&claims("ada", 600, json!({ "rooms": ["a*b"] }))),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "expired 2 s ago, within the 5 s leeway",
            hs256(&claims("ada", -2, json!({}))),
            Ok(()),
        ),
        ("valid", good.clone(), Ok(())),
    ];
    for (what, token, expected) in cases {
        let query = if token.is_empty() {
            String::new()
        } else {
            format!("?access_token={token}")
        };
        let got = try_v3(&app, &query).await.map(|_| ());
        assert_eq!(got, expected, "{what}");
    }
    // The same refusals before a v2 or plain upgrade, and before an HTTP session opens.
    let expired = hs256(&claims("ada", -60, json!({})));
    match app
        .connect(&format!("/ws?room=lobby&access_token={expired}"))
        .await
    {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let sse = SseClient::open(&app, "", &[])
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(sse.contains("answered 401"), "{sse}");
    let (status, _, body) = http_request(&app, "POST", "/v3/poll", &[], "")
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"token_required\""), "{body}");
}

#[tokio::test]
async fn a_public_key_accepts_only_its_own_algorithm() {
    let keys = [
        ("rsa-public.pem", "rsa-private.pem", Algorithm::RS256),
        ("ec-public.pem", "ec-private.pem", Algorithm::ES256),
        ("ec384-public.pem", "ec384-private.pem", Algorithm::ES384),
        ("ed-public.pem", "ed-private.pem", Algorithm::EdDSA),
    ];
    let signer = |private: &str, alg: Algorithm| match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&fixture(private)).unwrap(),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&fixture(private)).unwrap(),
        _ => EncodingKey::from_ed_pem(&fixture(private)).unwrap(),
    };
    let ada = claims("ada", 600, json!({}));
    for (public, private, alg) in keys {
        let app = spawn_app_with(|s| {
            s.jwt_public_key = Some(format!("{FIXTURES}/{public}").into());
        })
        .await;
        let (_, hello) = v3_as(&app, &sign(alg, &signer(private, alg), &ada)).await;
        assert_eq!(hello.name.as_deref(), Some("ada"), "{alg:?}");
        // Key confusion: HS256 "signed" with the public key's own bytes as the secret.
        let confused = sign(Algorithm::HS256, &secret_key(&fixture(public)), &ada);
        assert_eq!(
            try_v3(&app, &format!("?access_token={confused}"))
                .await
                .map(|_| ()),
            refused(ErrorCode::TokenInvalid),
            "{alg:?}: HS256 with the public key as secret"
        );
        // Each other key pair's algorithm.
        for (_, other_private, other_alg) in keys.iter().filter(|k| k.2 != alg) {
            let token = sign(*other_alg, &signer(other_private, *other_alg), &ada);
            assert_eq!(
                try_v3(&app, &format!("?access_token={token}"))
                    .await
                    .map(|_| ()),
                refused(ErrorCode::TokenInvalid),
                "{alg:?} server, {other_alg:?} token"
            );
        }
        app.shutdown().await;
    }
}

#[tokio::test]
async fn the_name_is_the_tokens_and_is_held_by_its_user() {
    let app = hs256_app(|_| {}).await;
    let ada = hs256(&claims("user-1", 600, json!({ "name": "Ada" })));
    // `?name=` does not count: the token names the user.
    let (mut tab1, hello) = try_v3(&app, &format!("?name=mallory&access_token={ada}"))
        .await
        .unwrap();
    assert_eq!(hello.name.as_deref(), Some("Ada"));
    tab1.join_room("lobby", None).await;
    // The same user in another tab shares the name.
    let (mut tab2, _) = v3_as(&app, &ada).await;
    let subscribed = tab2.join_room("lobby", None).await;
    let me = subscribed.members.iter().find(|m| m.name == "Ada").unwrap();
    assert_eq!(me.connections, 2);
    // Another user whose token claims the same name cannot take it.
    let impostor = hs256(&claims("user-2", 600, json!({ "name": "Ada" })));
    let (mut other, _) = v3_as(&app, &impostor).await;
    other
        .command(&Command::Join {
            room: RoomId::parse("lobby").unwrap(),
            epoch: None,
            seq: None,
        })
        .await;
    match other.recv().await {
        ServerMsg::JoinRefused { code, .. } => assert_eq!(code, ErrorCode::NameTaken),
        frame => panic!("expected join_refused, got {frame:?}"),
    }
    // Without a name claim the name is the `sub`.
    let (_, hello) = v3_as(&app, &hs256(&claims("grace", 600, json!({})))).await;
    assert_eq!(hello.name.as_deref(), Some("grace"));
}

/// The answer to a join: `Ok` with the room joined, `Err` with the refusal's code.
async fn join(client: &mut WsClient, room: &str) -> Result<String, ErrorCode> {
    client
        .send_text(&json!({"type": "join", "room": room}).to_string())
        .await;
    match client.recv().await {
        ServerMsg::Subscribed(s) => Ok(s.room),
        ServerMsg::JoinRefused { code, .. } => Err(code),
        ServerMsg::Error { code, .. } => Err(code),
        other => panic!("expected an answer to the join of {room}, got {other:?}"),
    }
}

#[tokio::test]
async fn the_rooms_claim_allows_exact_rooms_and_prefixes_and_nothing_around_them() {
    let app = hs256_app(|_| {}).await;
    let token = hs256(&claims("ada", 600, json!({ "rooms": ["team-a", "ops.*"] })));
    let (mut ada, _) = v3_as(&app, &token).await;
    assert_eq!(join(&mut ada, "team-a").await, Ok("team-a".into()));
    assert_eq!(join(&mut ada, "ops.eu").await, Ok("ops.eu".into()));
    for room in ["team-ab", "team", "ops", "xops.eu", "lobby", "team-a.."] {
        assert_eq!(
            join(&mut ada, room).await,
            Err(ErrorCode::RoomForbidden),
            "{room}"
        );
    }
    // Case folds to the same room (already joined), and names that are not rooms are invalid.
    assert_eq!(
        join(&mut ada, "TEAM-A").await,
        Err(ErrorCode::AlreadyJoined)
    );
    for room in ["team-a/../admin", "ops.*", "team-a\u{0}"] {
        assert_eq!(
            join(&mut ada, room).await,
            Err(ErrorCode::InvalidMessage),
            "{room:?}"
        );
    }
    // One room from the query (v2, plain): refused before the upgrade.
    for path in [
        format!("/ws?room=lobby&access_token={token}"),
        format!("/ws?access_token={token}"),
    ] {
        match app.connect(&path).await {
            Err(tungstenite::Error::Http(r)) => {
                assert_eq!(r.status().as_u16(), 403, "{path}");
                let body = String::from_utf8(r.body().clone().unwrap()).unwrap();
                assert!(body.contains("\"room_forbidden\""), "{body}");
            }
            other => panic!("{path}: expected 403, got {:?}", other.map(|_| ())),
        }
    }
    let mut allowed = app
        .connect(&format!("/ws?room=Team-A&access_token={token}"))
        .await
        .unwrap();
    assert_eq!(allowed.welcome().await.room, "team-a");
}

#[tokio::test]
async fn a_refresh_keeps_the_session_and_its_rooms_past_the_first_tokens_exp() {
    let app = hs256_app(|s| s.jwt_leeway_secs = 0).await;
    let first = hs256(&claims("ada", 2, json!({ "rooms": ["team-a", "ops"] })));
    let (mut ada, _) = v3_as(&app, &first).await;
    // Less than the refresh window left: told at once.
    let exp = match ada.recv().await {
        ServerMsg::TokenExpiring { exp } => exp,
        other => panic!("expected token_expiring, got {other:?}"),
    };
    assert!(exp <= now() + 2);
    ada.join_room("team-a", None).await;
    ada.join_room("ops", None).await;
    // A token of another user is refused; the session goes on.
    let bob = hs256(&claims("bob", 600, json!({})));
    ada.command(&Command::Refresh { token: bob }).await;
    match ada.recv().await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::TokenInvalid),
        other => panic!("expected an error, got {other:?}"),
    }
    // The same user's new token, allowing fewer rooms: those are left, the rest stay.
    let second = hs256(&claims("ada", 600, json!({ "rooms": ["team-a"] })));
    ada.command(&Command::Refresh { token: second }).await;
    match ada.recv().await {
        ServerMsg::Error { code, room, .. } => {
            assert_eq!(
                (code, room.as_deref()),
                (ErrorCode::RoomForbidden, Some("ops"))
            );
        }
        other => panic!("expected room_forbidden for ops, got {other:?}"),
    }
    assert_eq!(
        ada.recv().await,
        ServerMsg::Unsubscribed { room: "ops".into() }
    );
    let refreshed = match ada.recv().await {
        ServerMsg::TokenRefreshed { exp } => exp,
        other => panic!("expected token_refreshed, got {other:?}"),
    };
    assert!(refreshed >= now() + 590);
    // Past the first token's exp, the session still chats.
    tokio::time::sleep(std::time::Duration::from_millis(
        (exp + 1).saturating_sub(now()) * 1000 + 200,
    ))
    .await;
    ada.chat_in("team-a", "still here", "m1").await;
    let ack = ada
        .recv_until(|m| match m {
            ServerMsg::Ack { id, .. } => Some(id),
            ServerMsg::Error { reason, .. } => panic!("error: {reason}"),
            _ => None,
        })
        .await;
    assert_eq!(ack, "m1");
}

#[tokio::test]
async fn a_one_room_session_whose_new_token_drops_its_room_is_closed() {
    let app = hs256_app(|_| {}).await;
    let token = hs256(&claims("ada", 600, json!({ "rooms": ["team-a"] })));
    let mut v2 = app
        .connect(&format!("/ws?room=team-a&feed=0&access_token={token}"))
        .await
        .unwrap();
    v2.welcome().await;
    let narrower = hs256(&claims("ada", 600, json!({ "rooms": ["ops"] })));
    v2.send(&shared::ClientMsg::Refresh { token: narrower })
        .await;
    let code = v2
        .recv_until(|m| match m {
            ServerMsg::Error { code, .. } => Some(code),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::RoomForbidden);
    assert_eq!(v2.close_code().await, close_code::UNAUTHORIZED);
}

#[tokio::test]
async fn without_a_refresh_the_session_closes_with_4401_at_exp() {
    let app = hs256_app(|s| s.jwt_leeway_secs = 0).await;
    let (mut ada, _) = v3_as(&app, &hs256(&claims("ada", 2, json!({})))).await;
    assert!(matches!(ada.recv().await, ServerMsg::TokenExpiring { .. }));
    ada.join_room("lobby", None).await;
    let error = ada
        .recv_until(|m| match m {
            ServerMsg::Error { code, .. } => Some(code),
            _ => None,
        })
        .await;
    assert_eq!(error, ErrorCode::TokenExpired);
    assert_eq!(ada.close_code().await, close_code::UNAUTHORIZED);
    // The server counted it.
    let (_, _, metrics) = app.http_get("/metrics").await.unwrap();
    assert!(
        metrics.contains("switchboard_tokens_expired_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_server_api_disconnects_every_connection_of_a_user() {
    let app = hs256_app(|_| {}).await;
    let ada_token = hs256(&claims("ada", 600, json!({})));
    let (mut tab1, _) = v3_as(&app, &ada_token).await;
    tab1.join_room("lobby", None).await;
    tab1.join_room("ops", None).await;
    let (mut tab2, _) = v3_as(&app, &ada_token).await;
    tab2.join_room("lobby", None).await;
    // A connection in no room is hers all the same.
    let (mut idle, _) = v3_as(&app, &ada_token).await;
    let (mut bob, _) = v3_as(&app, &hs256(&claims("bob", 600, json!({})))).await;
    bob.join_room("lobby", None).await;
    let auth = "Bearer api-key-0123456789abcdef";
    let (status, _, body) = http_request(
        &app,
        "POST",
        "/api/v1/users/ada/disconnect",
        &[("Authorization", auth)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"sub":"ada","closed":3}"#)
    );
    assert_eq!(tab1.close_code().await, close_code::UNAUTHORIZED);
    assert_eq!(tab2.close_code().await, close_code::UNAUTHORIZED);
    assert_eq!(idle.close_code().await, close_code::UNAUTHORIZED);
    // Her old token no longer lets her in; one the app issues after the sign-out does.
    assert_eq!(
        try_v3(&app, &format!("?access_token={ada_token}"))
            .await
            .map(|_| ()),
        refused(ErrorCode::TokenInvalid)
    );
    let fresh = hs256(&claims("ada", 600, json!({ "iat": now() + 1 })));
    let (_, hello) = v3_as(&app, &fresh).await;
    assert_eq!(hello.name.as_deref(), Some("ada"));
    // Bob is still connected and chatting.
    bob.chat_in("lobby", "still here", "b1").await;
    assert_eq!(bob.ack("b1").await, 1);
    // A user with no connection: nothing closed.
    let (status, _, body) = http_request(
        &app,
        "POST",
        "/api/v1/users/nobody/disconnect",
        &[("Authorization", auth)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"sub":"nobody","closed":0}"#)
    );
}

#[tokio::test]
async fn history_is_for_the_users_who_may_join_the_room() {
    let app = hs256_app(|_| {}).await;
    let token = hs256(&claims("ada", 600, json!({ "rooms": ["team-a"] })));
    let get = |path: String, auth: Option<String>| {
        let app = *app;
        async move {
            let auth = auth.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            let (status, _, body) = http_request(&app, "GET", &path, &headers, "")
                .await
                .unwrap();
            (status, body)
        }
    };
    let (status, body) = get("/api/rooms/team-a/messages".into(), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"token_required\""), "{body}");
    let expired = hs256(&claims("ada", -60, json!({})));
    let (status, body) = get(
        format!("/api/rooms/team-a/messages?access_token={expired}"),
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"token_expired\""), "{body}");
    let (status, body) = get(
        format!("/api/rooms/secret/messages?access_token={token}"),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"room_forbidden\""), "{body}");
    for (path, auth) in [
        (
            format!("/api/rooms/team-a/messages?access_token={token}"),
            None,
        ),
        ("/api/rooms/team-a/messages".to_owned(), Some(token.clone())),
    ] {
        let (status, body) = get(path, auth).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"room\":\"team-a\""), "{body}");
    }
}

#[tokio::test]
async fn the_http_transports_take_the_token_and_refresh_too() {
    let app = hs256_app(|_| {}).await;
    let token = hs256(&claims("ada", 600, json!({ "name": "Ada" })));
    let mut sse = SseClient::open(&app, &format!("?access_token={token}"), &[])
        .await
        .unwrap();
    match sse.recv().await {
        ServerMsg::Hello(hello) => assert_eq!(hello.name.as_deref(), Some("Ada")),
        other => panic!("expected hello, got {other:?}"),
    }
    let next = hs256(&claims("ada", 1200, json!({ "name": "Ada" })));
    sse.send(&[Command::Refresh { token: next }]).await;
    let exp = sse
        .recv_until(|m| match m {
            ServerMsg::TokenRefreshed { exp } => Some(exp),
            _ => None,
        })
        .await;
    assert!(exp >= now() + 1190);
}

#[tokio::test]
async fn the_page_names_the_token_url_when_one_is_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<html><head><title>t</title></head><body></body></html>",
    )
    .unwrap();
    let static_dir = dir.path().to_owned();
    let app = hs256_app(move |s| {
        s.static_dir = static_dir;
        s.jwt_token_url = Some("/auth/token?for=\"switchboard\"".into());
    })
    .await;
    let meta = r#"<meta name="switchboard-token-url" content="/auth/token?for=&quot;switchboard&quot;" />"#;
    for path in ["/", "/index.html", "/some/client/route"] {
        let (status, _, body) = app.http_get(path).await.unwrap();
        assert_eq!(status, 200, "{path}");
        assert!(body.contains(meta), "{path}: {body}");
    }
}

#[tokio::test]
async fn an_audience_and_an_issuer_when_set_are_required() {
    let app = hs256_app(|s| {
        s.jwt_audience = Some("chat-app".into());
        s.jwt_issuer = Some("https://id.example.com".into());
    })
    .await;
    let iss = "https://id.example.com";
    for (what, extra, expected) in [
        ("neither", json!({}), refused(ErrorCode::TokenInvalid)),
        (
            "another audience",
            json!({"aud": "billing", "iss": iss}),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "another issuer",
            json!({"aud": "chat-app", "iss": "https://evil.example.com"}),
            refused(ErrorCode::TokenInvalid),
        ),
        (
            "no issuer",
            json!({"aud": "chat-app"}),
            refused(ErrorCode::TokenInvalid),
        ),
        ("both right", json!({"aud": "chat-app", "iss": iss}), Ok(())),
        (
            "the audience in a list",
            json!({"aud": ["billing", "chat-app"], "iss": iss}),
            Ok(()),
        ),
    ] {
        let token = hs256(&claims("ada", 600, extra));
        let got = try_v3(&app, &format!("?access_token={token}"))
            .await
            .map(|_| ());
        assert_eq!(got, expected, "{what}");
    }
    // A rooms claim of null is refused, not read as every room (`claims` drops null members:
    // this one is set by hand).
    let mut c = claims("ada", 600, json!({"aud": "chat-app", "iss": iss}));
    c["rooms"] = Value::Null;
    let got = try_v3(&app, &format!("?access_token={}", hs256(&c)))
        .await
        .map(|_| ());
    assert_eq!(got, refused(ErrorCode::TokenInvalid), "rooms: null");
}
