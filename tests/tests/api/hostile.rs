//! Hostile networks: slowloris, silent sockets, connection floods from one address.

use std::time::{Duration, Instant};

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
