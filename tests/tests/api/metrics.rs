//! `GET /metrics`: Prometheus text with the figures an operator needs.

use std::time::Duration;

use switchboard_tests::{TestApp, spawn_app};

fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape_until(app: &TestApp, series: &str, at_least: f64) -> String {
    for _ in 0..100 {
        let (status, head, body) = app.http_get("/metrics").await.unwrap();
        assert_eq!(status, 200);
        assert!(head.contains("text"), "{head}");
        if value(&body, series).is_some_and(|v| v >= at_least) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{series} never reached {at_least}");
}

#[tokio::test]
async fn metrics_count_frames_persisted_messages_and_delivery_latency() {
    let app = spawn_app().await;
    let (mut ada, _) = app
        .join_as("ada", "lobby", "ada-token-0123456789", None)
        .await;
    let (mut bob, _) = app
        .join_as("bob", "lobby", "bob-token-0123456789", None)
        .await;
    for i in 0..3 {
        ada.chat_with_id(&format!("m{i}"), &format!("id{i}")).await;
        ada.ack(&format!("id{i}")).await;
    }
    bob.chats(3).await;
    ada.send_text("{broken").await;
    ada.send(&shared::ClientMsg::Typing).await;
    let body = scrape_until(&app, "switchboard_delivery_seconds_count", 6.0).await;
    let body = if value(&body, r#"switchboard_frames_in_total{kind="typing"}"#).is_some() {
        body
    } else {
        scrape_until(&app, r#"switchboard_frames_in_total{kind="typing"}"#, 1.0).await
    };
    assert_eq!(
        value(&body, "switchboard_messages_persisted_total"),
        Some(3.0)
    );
    assert_eq!(
        value(&body, r#"switchboard_frames_in_total{kind="chat"}"#),
        Some(3.0)
    );
    assert_eq!(
        value(&body, r#"switchboard_frames_in_total{kind="invalid"}"#),
        Some(1.0)
    );
    assert_eq!(value(&body, "switchboard_sessions"), Some(2.0));
    assert_eq!(value(&body, "switchboard_rooms"), Some(1.0));
    assert_eq!(
        value(&body, "switchboard_slow_consumers_dropped_total"),
        Some(0.0)
    );
    assert!(
        value(&body, "switchboard_frames_out_total").unwrap() >= 8.0,
        "{body}"
    );
    assert!(
        body.contains("switchboard_delivery_seconds_bucket"),
        "{body}"
    );
}
