use futures_util::StreamExt;
use shared::{ClientMsg, ServerMsg};
use switchboard_tests::spawn_app;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn echo_returns_text_and_binary_frames_unchanged() {
    let app = spawn_app().await;
    let mut echo = app.connect("/echo").await.unwrap();
    use futures_util::SinkExt;
    let frames = [
        Message::text("hello"),
        Message::text("{\"not\":\"parsed\"}"),
        Message::binary(vec![0u8, 159, 146, 150, 255]),
        Message::text("é✓"),
    ];
    for frame in &frames {
        echo.stream.send(frame.clone()).await.unwrap();
    }
    for frame in frames {
        let got = tokio::time::timeout(switchboard_tests::RECV_TIMEOUT, echo.stream.next())
            .await
            .expect("an echo within the timeout")
            .expect("the connection is open")
            .expect("a frame");
        assert_eq!(got, frame);
    }
}

#[tokio::test]
async fn every_chat_client_gets_live_stats_each_second_unless_it_opted_out() {
    let app = spawn_app().await;
    let mut watcher = app.connect("/ws?name=watcher").await.unwrap();
    watcher.welcome().await;
    let (mut quiet, _) = app.join("quiet", "lobby").await; // feed=0
    let (mut talker, _) = app.join("talker", "lobby").await;
    talker.chat("one").await;

    let mut samples = Vec::new();
    while samples.len() < 3 {
        if let ServerMsg::Stats(s) = watcher.recv().await {
            samples.push(s);
        }
    }
    assert!(
        samples
            .windows(2)
            .all(|w| w[1].server_time_ms > w[0].server_time_ms)
    );
    let gap = samples[2].server_time_ms - samples[1].server_time_ms;
    assert!((500..=2500).contains(&gap), "samples {gap} ms apart");
    assert_eq!(samples[2].connections, 3);
    assert_eq!(samples[2].rooms, 1);
    assert!(samples.iter().map(|s| s.messages_per_sec).sum::<u64>() >= 1);

    // `quiet` saw only the room's traffic, never a stats frame.
    talker.chat("two").await;
    loop {
        match quiet.recv().await {
            ServerMsg::Stats(_) => panic!("opted-out client got stats"),
            ServerMsg::Chat(c) if c.msg == "two" => break,
            _ => {}
        }
    }
    // And it can opt in at run time.
    quiet.send(&ClientMsg::Feed { enabled: true }).await;
    quiet
        .recv_until(|m| matches!(m, ServerMsg::Stats(_)).then_some(()))
        .await;
}

#[tokio::test]
async fn a_new_client_receives_recent_stats_in_its_welcome() {
    let app = spawn_app().await;
    let (mut first, _) = app.join("first", "lobby").await;
    first.send(&ClientMsg::Feed { enabled: true }).await;
    first
        .recv_until(|m| matches!(m, ServerMsg::Stats(_)).then_some(()))
        .await;
    let (_second, welcome) = app.join("second", "lobby").await;
    assert!(!welcome.recent_stats.is_empty());
}
