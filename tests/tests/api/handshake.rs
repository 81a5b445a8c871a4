use switchboard_tests::spawn_app;

#[tokio::test]
async fn plain_http_to_the_socket_urls_gets_400_saying_an_upgrade_is_needed() {
    let app = spawn_app().await;
    for path in ["/ws", "/ws?name=ada", "/echo"] {
        let (status, _, body) = app.http_get(path).await.unwrap();
        assert_eq!(status, 400, "{path}");
        assert!(body.contains("WebSocket upgrade"), "{path}: {body}");
    }
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403_before_the_upgrade() {
    let app = spawn_app().await;
    let err = app
        .connect_with_origin("/ws?name=ada", Some("https://evil.example"))
        .await
        .err()
        .expect("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 403),
        other => panic!("expected HTTP 403, got {other}"),
    }
    // The server's own origin is allowed.
    let own = format!("http://{}", app.addr);
    let mut ok = app
        .connect_with_origin("/ws?name=ada&feed=0", Some(&own))
        .await
        .unwrap();
    ok.welcome().await;
}

#[tokio::test]
async fn configured_origins_replace_the_defaults() {
    let app = switchboard_tests::spawn_app_with(|s| {
        s.allowed_origins = vec!["https://chat.example.com".into()];
    })
    .await;
    assert!(
        app.connect_with_origin("/echo", Some("https://chat.example.com"))
            .await
            .is_ok()
    );
    let own = format!("http://{}", app.addr);
    match app.connect_with_origin("/echo", Some(&own)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected HTTP 403, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn healthz_reports_ok() {
    let app = spawn_app().await;
    let (_c, _) = app.join("ada", "lobby").await;
    let (status, head, body) = app.http_get("/healthz").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("application/json"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["sessions"], 1);
}

#[tokio::test]
async fn readyz_is_ready_on_a_single_node() {
    let app = spawn_app().await;
    let (status, _, body) = app.http_get("/readyz").await.unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"ready":true}"#));
}
