//! Behind a load balancer: the client's address comes from `X-Forwarded-For` / `Forwarded`
//! only when the connection is from a trusted proxy (`--trusted-proxies`).

use switchboard_tests::spawn_app_with;
use tokio_tungstenite::tungstenite;

const JOIN: &str = "/ws?name=ada&room=lobby&feed=0";

fn refused_status(result: Result<switchboard_tests::WsClient, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got a WebSocket"),
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_address_and_cap() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.max_connections_per_ip = 1;
    })
    .await;
    let mut ada = app
        .connect_with_headers(JOIN, &[("X-Forwarded-For", "203.0.113.7")])
        .await
        .unwrap();
    assert_eq!(ada.welcome().await.peer_addr, "203.0.113.7");
    // A second client behind the same proxy is someone else: admitted.
    let mut bob = app
        .connect_with_headers(
            "/ws?name=bob&feed=0",
            &[("Forwarded", r#"for="[2001:db8::5]:4711";proto=https"#)],
        )
        .await
        .unwrap();
    assert_eq!(bob.welcome().await.peer_addr, "2001:db8::5");
    // The first client again is over its own cap; a forged entry left of the proxy's does
    // not get it a new address.
    let again = app
        .connect_with_headers(
            "/echo",
            &[("X-Forwarded-For", "198.51.100.99, 203.0.113.7")],
        )
        .await;
    assert_eq!(refused_status(again), 429);
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_change_nothing() {
    let app = spawn_app_with(|s| s.max_connections_per_ip = 1).await;
    let mut ada = app
        .connect_with_headers(JOIN, &[("X-Forwarded-For", "203.0.113.7")])
        .await
        .unwrap();
    let seen = ada.welcome().await.peer_addr;
    assert!(seen.starts_with("127.0.0.1:"), "{seen}");
    // A forged header is not another client: the real address is at its cap.
    let forged = app
        .connect_with_headers("/echo", &[("X-Forwarded-For", "203.0.113.8")])
        .await;
    assert_eq!(refused_status(forged), 429);
}
