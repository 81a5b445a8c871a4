//! Hostile networks: slowloris, silent sockets, connection floods from one address.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use switchboard_tests::{rss_kib, spawn_app_with};
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

/// One fan-out run: 50 readers, one sender at a steady rate; optionally one client that never
/// reads. Returns the readers' p99 delivery latency and what the stalled client saw.
async fn fan_out_run(with_stalled: bool) -> (Duration, Option<(usize, u16)>, f64) {
    use shared::ServerMsg;
    const READERS: usize = 50;
    const MESSAGES: usize = 1500;
    let app = spawn_app_with(|s| {
        s.rate_per_sec = 100_000;
        s.rate_burst = 100_000;
        s.outbound_queue = 64;
    })
    .await;
    let rss_before = rss_kib();
    let epoch = Instant::now();
    let mut stalled = None;
    if with_stalled {
        stalled = Some(app.join("stalled", "fan").await.0);
    }
    let mut readers = Vec::new();
    for i in 0..READERS {
        let (mut reader, _) = app.join(&format!("reader{i}"), "fan").await;
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(MESSAGES);
            while latencies.len() < MESSAGES {
                if let ServerMsg::Chat(c) = reader.recv().await {
                    let sent_us: u64 = c.msg.split(' ').next().unwrap().parse().unwrap();
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
    let (mut sender, _) = app.join("sender", "fan").await;
    let padding = "x".repeat(3500);
    for _ in 0..MESSAGES {
        let text = format!("{} {padding}", epoch.elapsed().as_micros());
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
    all.sort();
    let p99 = all[all.len() * 99 / 100];
    let rss_growth = rss_kib().saturating_sub(rss_before) as f64 / 1024.0;
    let stalled_outcome = match stalled {
        None => None,
        Some(mut s) => Some(s.drain_to_close().await),
    };
    (p99, stalled_outcome, rss_growth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_dropped_without_slowing_fifty_others() {
    let (baseline, none, _) = fan_out_run(false).await;
    assert!(none.is_none());
    let (with_stalled, stalled, rss_growth) = fan_out_run(true).await;
    let (got, code) = stalled.expect("stalled outcome");
    assert!(
        got < 1500,
        "the stalled client was never dropped ({got} delivered)"
    );
    assert!(
        code == shared::close_code::SLOW_CONSUMER || code == 1006,
        "close code {code}"
    );
    println!(
        "slow consumer: 50 readers' p99 {:.2} ms without a stalled reader, {:.2} ms with one \
         (dropped after {got} of 1500 messages, close {code}); RSS growth {rss_growth:.1} MiB",
        baseline.as_secs_f64() * 1e3,
        with_stalled.as_secs_f64() * 1e3
    );
}
