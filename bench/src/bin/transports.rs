//! Latency and deliveries/s per transport, in one run: the same room fan-out over WebSocket,
//! SSE (with POSTs up) and long-polling, through the server's real endpoints (`/ws`,
//! `/v3/sse`, `/v3/poll`, `/v3/send`) and its real session core.
//!
//! For each transport: `RECEIVERS` clients (default 50) join a room over it; one WebSocket
//! client publishes `RATE` messages/s (default 100) for `SECS` seconds (default 10), each
//! carrying its send time; every receiver records each message's latency (send → parsed by
//! the receiver). With `RATE=0` the publisher sends `MESSAGES` (default 2000) as fast as its
//! acks come back (closed loop): deliveries/s is then what the transport sustains. Figures:
//! deliveries/s, latency p50/p99/max, and each against WebSocket's in the same run (the
//! machine is noisy; the ratios are the figures to compare).
//!
//! The server runs in this process (as in `history`): the figures compare transports on one
//! server, not servers. The long-polling client opens one TCP connection per poll (as a
//! browser without keep-alive would), which is the worst case for polling.
//!
//! `cargo run --release -p bench --bin transports`

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shared::{Command, RoomId, ServerMsg};
use switchboard_tests::http::{PollClient, SseClient, SseItem};
use switchboard_tests::spawn_app_with;
use tokio::sync::{Barrier, mpsc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Ws,
    Sse,
    Poll,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Self::Ws => "WebSocket",
            Self::Sse => "SSE + POST",
            Self::Poll => "long-polling",
        }
    }
}

struct Figures {
    deliveries_per_sec: f64,
    expected: u64,
    delivered: u64,
    latency: Histogram<u64>,
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The send time a message carries: microseconds since `origin`.
fn stamp(origin: Instant) -> String {
    origin.elapsed().as_micros().to_string()
}

fn latency_us(origin: Instant, msg: &str) -> Option<u64> {
    let sent: u64 = msg.parse().ok()?;
    Some((origin.elapsed().as_micros() as u64).saturating_sub(sent))
}

/// One receiver over `transport`: joins `room`, says it is ready, then sends the latency of
/// every chat message to `out` until `expected` arrived or `deadline` passed.
async fn receiver(
    endpoint: switchboard_tests::Endpoint,
    transport: Transport,
    room: RoomId,
    who: String,
    origin: Instant,
    (ready, expected, deadline): (Arc<Barrier>, u64, Instant),
    out: mpsc::UnboundedSender<u64>,
) {
    let join = Command::Join {
        room: room.clone(),
        epoch: None,
        seq: None,
    };
    let query = format!("?name={who}&feed=0");
    let got = std::sync::atomic::AtomicU64::new(0);
    let take = |msg: &ServerMsg| {
        if let ServerMsg::Chat(c) = msg
            && let Some(us) = latency_us(origin, &c.msg)
        {
            let _ = out.send(us);
            got.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    };
    match transport {
        Transport::Ws => {
            let (mut ws, _) = endpoint.connect_v3(&query).await;
            ws.join_room(room.as_str(), None).await;
            ready.wait().await;
            while got.load(std::sync::atomic::Ordering::Relaxed) < expected
                && Instant::now() < deadline
            {
                let Ok(switchboard_tests::Event::Msg(msg)) = ws.next_event().await else {
                    break;
                };
                take(&msg);
            }
        }
        Transport::Sse => {
            let mut sse = SseClient::open(&endpoint, &query, &[]).await.expect("SSE");
            let _hello = sse.recv().await;
            sse.send(std::slice::from_ref(&join)).await;
            sse.recv_until(|m| matches!(m, ServerMsg::Subscribed(_)).then_some(()))
                .await;
            ready.wait().await;
            while got.load(std::sync::atomic::Ordering::Relaxed) < expected
                && Instant::now() < deadline
            {
                match sse.next_item().await {
                    Ok(SseItem::Frame { msg, .. }) => take(&msg),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        Transport::Poll => {
            let (mut poll, _) = PollClient::open(&endpoint, &query).await;
            poll.send(std::slice::from_ref(&join)).await;
            poll.recv_until(|m| matches!(m, ServerMsg::Subscribed(_)).then_some(()))
                .await;
            ready.wait().await;
            while got.load(std::sync::atomic::Ordering::Relaxed) < expected
                && Instant::now() < deadline
            {
                let answer = poll.poll().await;
                if answer.status != 200 {
                    break;
                }
                answer.frames.iter().for_each(take);
            }
        }
    }
}

async fn run(
    endpoint: switchboard_tests::Endpoint,
    transport: Transport,
    (receivers, rate, messages): (u64, u64, u64),
) -> Figures {
    let room = RoomId::parse(
        &format!("bench-{}", transport.label().replace([' ', '+'], "")).to_ascii_lowercase(),
    )
    .unwrap();
    let origin = Instant::now();
    let expected = messages * receivers;
    let deadline = Instant::now() + Duration::from_secs(120);
    let ready = Arc::new(Barrier::new(receivers as usize + 1));
    let (out, mut latencies) = mpsc::unbounded_channel();
    let tasks: Vec<_> = (0..receivers)
        .map(|i| {
            tokio::spawn(receiver(
                endpoint,
                transport,
                room.clone(),
                format!("r{i}"),
                origin,
                (ready.clone(), messages, deadline),
                out.clone(),
            ))
        })
        .collect();
    drop(out);
    let (mut publisher, _) = endpoint.connect_v3("?name=publisher&feed=0").await;
    publisher.join_room(room.as_str(), None).await;
    ready.wait().await;
    let start = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    for i in 0..messages {
        if rate > 0 {
            tokio::time::sleep_until((start + gap * i as u32).into()).await;
        }
        let id = format!("m{i}");
        publisher.chat_in(room.as_str(), &stamp(origin), &id).await;
        // Its own copies and acks are read as it goes: the publisher is never a slow consumer.
        publisher.ack(&id).await;
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut delivered = 0;
    let mut last = start;
    while let Some(us) = latencies.recv().await {
        latency.record(us.max(1)).unwrap();
        delivered += 1;
        last = Instant::now();
    }
    for task in tasks {
        let _ = task.await;
    }
    Figures {
        deliveries_per_sec: delivered as f64 / (last - start).as_secs_f64(),
        expected,
        delivered,
        latency,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let receivers = env("RECEIVERS", 50);
    let rate = env("RATE", 100);
    let secs = env("SECS", 10);
    let messages = if rate == 0 {
        env("MESSAGES", 2000)
    } else {
        rate * secs
    };
    let app = spawn_app_with(|s| {
        s.rate_per_sec = 100_000;
        s.rate_burst = 100_000;
        s.max_connections_per_ip = 100_000;
        s.max_connections = 100_000;
        s.history_on_join = 0;
    })
    .await;
    if rate == 0 {
        println!(
            "transports: {receivers} receivers, {messages} messages sent as fast as acked (closed loop), one WebSocket publisher"
        );
    } else {
        println!(
            "transports: {receivers} receivers, {rate} messages/s for {secs} s, one WebSocket publisher"
        );
    }
    println!();
    println!(
        "| transport | deliveries/s | vs WebSocket | delivered | p50 ms | p99 ms | max ms | p50 vs WebSocket |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut ws: Option<(f64, f64)> = None;
    for transport in [Transport::Ws, Transport::Sse, Transport::Poll] {
        let f = run(*app, transport, (receivers, rate, messages)).await;
        let ms = |q: f64| f.latency.value_at_quantile(q) as f64 / 1000.0;
        let (rate_ws, p50_ws) = *ws.get_or_insert((f.deliveries_per_sec, ms(0.5)));
        println!(
            "| {} | {:.0} | {:.2}× | {}/{} | {:.2} | {:.2} | {:.2} | {:.2}× |",
            transport.label(),
            f.deliveries_per_sec,
            f.deliveries_per_sec / rate_ws,
            f.delivered,
            f.expected,
            ms(0.5),
            ms(0.99),
            f.latency.max() as f64 / 1000.0,
            ms(0.5) / p50_ws,
        );
    }
    Ok(())
}
