use switchboard_tests::spawn_app_with;

#[tokio::test]
async fn the_client_bundle_is_served_with_spa_fallback_and_wasm_type() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>Switchboard</title>",
    )
    .unwrap();
    std::fs::write(dir.path().join("client_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let path = dir.path().to_owned();
    let app = spawn_app_with(|s| s.static_dir = path).await;

    let (status, _, body) = app.http_get("/").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("Switchboard"));
    let (status, _, body) = app.http_get("/rooms/some/deep/link").await.unwrap();
    assert_eq!(status, 200, "SPA fallback");
    assert!(body.contains("Switchboard"));
    let (status, head, _) = app.http_get("/client_bg.wasm").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/wasm"),
        "{head}"
    );
}
