//! Hostile networks: slowloris, silent sockets, connection floods from one address.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use switchboard_tests::spawn_app_with;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Waits until the server closes `stream` (EOF or reset); returns how long that took.
async fn closed_within(mut stream: TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {} // e.g. a 408 response before the close
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn slow_and_silent_handshakes_are_closed_at_the_deadline_while_others_connect() {
    const EACH: usize = 100;
    let app = spawn_app_with(|s| s.handshake_timeout_secs = 1).await;
    let mut silent = Vec::new();
    let mut trickling = Vec::new();
    for _ in 0..EACH {
        silent.push(TcpStream::connect(app.addr).await.unwrap());
        let mut t = TcpStream::connect(app.addr).await.unwrap();
        t.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        trickling.push(t);
    }
    // Keep trickling one header byte at a time, well inside any per-read timeout.
    let trickle = tokio::spawn(async move {
        let mut closed = vec![None; trickling.len()];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(4) && closed.iter().any(Option::is_none) {
            for (i, t) in trickling.iter_mut().enumerate() {
                if closed[i].is_none() && t.write_all(b"X").await.is_err() {
                    closed[i] = Some(start.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        closed
    });
    // A fresh client still gets through while the attack is on.
    let start = Instant::now();
    let mut fresh = app
        .connect("/ws?name=fresh&feed=0")
        .await
        .expect("fresh client upgrades");
    let upgrade = start.elapsed();
    fresh.welcome().await;
    let mut silent_closed = Vec::new();
    for s in silent {
        silent_closed.push(
            closed_within(s, Duration::from_secs(4))
                .await
                .expect("silent socket closed"),
        );
    }
    let trickle_closed = trickle.await.unwrap();
    assert!(
        trickle_closed.iter().all(Option::is_some),
        "a trickling socket outlived the deadline"
    );
    let slowest = trickle_closed
        .iter()
        .flatten()
        .chain(&silent_closed)
        .max()
        .unwrap();
    println!(
        "slowloris: {EACH} silent + {EACH} trickling sockets closed (slowest after {:.2} s, deadline 1 s); \
         fresh client upgraded in {:.1} ms",
        slowest.as_secs_f64(),
        upgrade.as_secs_f64() * 1e3
    );
}

#[tokio::test]
async fn a_connection_flood_from_one_address_is_capped_while_another_address_connects() {
    let app = spawn_app_with(|s| s.max_connections_per_ip = 5).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(app.connect("/echo").await.expect("under the cap"));
    }
    let mut refused = 0;
    for _ in 0..20 {
        match app.connect("/echo").await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 429);
                refused += 1;
            }
            other => panic!("expected 429, got {:?}", other.map(|_| ())),
        }
    }
    assert_eq!(refused, 20);
    // Another loopback address is another client.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let (_ws, response) = tokio_tungstenite::client_async(app.url("/echo"), stream)
        .await
        .expect("other address connects");
    assert_eq!(response.status(), 101);
}

/// 50 readers and one client that never reads, one sender at a steady rate, against the server
/// binary (so its memory is its own). Every reader gets all 1,500 messages in order; the
/// stalled client is closed with 4429 after part of them; the server's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_dropped_without_slowing_fifty_others() {
    use shared::ServerMsg;
    use switchboard_tests::process::ServerProcess;
    const READERS: usize = 50;
    const MESSAGES: usize = 1500;
    let args: Vec<String> = [
        "--rate-per-sec",
        "100000",
        "--rate-burst",
        "100000",
        "--outbound-queue",
        "64",
    ]
    .map(String::from)
    .to_vec();
    let server = ServerProcess::start("127.0.0.1:0", &args).await;
    let epoch = Instant::now();
    let (mut stalled, _) = server.join("stalled", "fan").await;
    let mut readers = Vec::new();
    for i in 0..READERS {
        let (mut reader, _) = server.join(&format!("reader{i}"), "fan").await;
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(MESSAGES);
            while latencies.len() < MESSAGES {
                if let ServerMsg::Chat(c) = reader.recv().await {
                    let (sent_us, n) = c.msg.split_once(' ').unwrap();
                    let n: usize = n.split(' ').next().unwrap().parse().unwrap();
                    assert_eq!(n, latencies.len(), "reader{i}: a gap or a reordering");
                    let sent_us: u64 = sent_us.parse().unwrap();
                    latencies.push(
                        epoch
                            .elapsed()
                            .saturating_sub(Duration::from_micros(sent_us)),
                    );
                }
            }
            latencies
        }));
    }
    let rss_before = server.rss_kib();
    let (mut sender, _) = server.join("sender", "fan").await;
    let padding = "x".repeat(3500);
    for n in 0..MESSAGES {
        let text = format!("{} {n} {padding}", epoch.elapsed().as_micros());
        sender.chat(&text).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        // The sender reads its own echoes, so it is not a slow consumer itself.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, sender.stream.next()).await {}
    }
    let mut all = Vec::new();
    for r in readers {
        all.extend(
            tokio::time::timeout(Duration::from_secs(60), r)
                .await
                .expect("readers finish")
                .unwrap(),
        );
    }
    assert_eq!(all.len(), READERS * MESSAGES);
    all.sort();
    let p99 = all[all.len() * 99 / 100];
    let rss_growth = server.rss_kib().saturating_sub(rss_before) as f64 / 1024.0;
    let (got, code) = stalled.drain_to_close().await;
    assert!(
        got < MESSAGES,
        "the stalled client was never dropped ({got} delivered)"
    );
    assert_eq!(code, shared::close_code::SLOW_CONSUMER);
    assert!(rss_growth < 64.0, "server RSS grew {rss_growth:.1} MiB");
    println!(
        "slow consumer: 50 readers' p99 {:.2} ms with a stalled reader (dropped after {got} of \
         {MESSAGES} messages, close {code}); server RSS growth {rss_growth:.1} MiB",
        p99.as_secs_f64() * 1e3,
    );
}

/// A client that joins a room with a long history and then stops reading is dropped as a slow
/// consumer once it has taken nothing for the heartbeat deadline, in the middle of its replay.
/// The read loop that notices dead peers does not run while a join replays, so without its own
/// deadline such a client would keep its connection (and the replay its place) for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_during_its_replay_is_dropped_at_the_heartbeat_deadline() {
    use shared::{Command, RoomId};
    use switchboard_tests::process::ServerProcess;
    // 3,000 messages of ~4 KB (12 MB): far more than the server's send buffer (at most 4 MiB)
    // and the stalled client's fixed 64 KiB receive buffer hold.
    const MESSAGES: usize = 3000;
    let args: Vec<String> = [
        "--rate-per-sec",
        "100000",
        "--rate-burst",
        "100000",
        "--outbound-queue",
        "64",
        "--history-on-join",
        "3000",
        "--heartbeat-interval-secs",
        "1",
        "--heartbeat-timeout-secs",
        "1",
    ]
    .map(String::from)
    .to_vec();
    let server = ServerProcess::start("127.0.0.1:0", &args).await;
    let (mut sender, _) = server.join("sender", "long").await;
    // Every message stored (acknowledged) before the stalled client joins.
    sender.fill_history(MESSAGES, &"x".repeat(3900)).await;

    let (mut stalled, _) = server.connect_v3_small_window("?name=stalled&feed=0").await;
    stalled
        .command(&Command::Join {
            room: RoomId::parse("long").unwrap(),
            epoch: None,
            seq: None,
        })
        .await;
    // Joined (so it counts as a session) and its replay under way.
    match stalled.recv().await {
        shared::ServerMsg::Subscribed(s) => assert_eq!(s.room, "long"),
        other => panic!("expected subscribed, got {other:?}"),
    }
    // It reads nothing now. The server must let it go: one session (the sender) remains.
    let mut sessions = 2;
    for _ in 0..300 {
        let (_, _, health) = server.http_get("/healthz").await.unwrap();
        let health: serde_json::Value = serde_json::from_str(&health).unwrap();
        sessions = health["sessions"].as_u64().unwrap();
        if sessions == 1 {
            break;
        }
        // Keep the sender alive (it answers pings when it reads).
        while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, sender.stream.next()).await {}
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sessions, 1, "the stalled client still holds its session");
    // What reached it before it stalled, then the reason.
    let (got, code) = stalled.drain_to_close().await;
    assert!(
        got < MESSAGES,
        "the whole replay fit in the buffers ({got})"
    );
    assert_eq!(code, shared::close_code::SLOW_CONSUMER);
}
