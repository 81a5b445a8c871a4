//! History benchmarks, against the real store and server on this machine:
//!
//! 1. Persisted messages/s through the SQLite store (WAL, `synchronous=FULL`): with many
//!    concurrent senders, group commit puts whatever arrived into one transaction; with one
//!    sender, every message is its own commit. Both run here, so the ratio is meaningful on a
//!    noisy machine.
//! 2. Resume latency: a client reconnects having missed 1,000 messages; time from opening the
//!    socket to holding all 1,000 (median of several runs).
//!
//! `cargo run --release -p bench --bin history`

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use server::store::sqlite::SqliteStore;
use server::store::{NewMessage, Retention, Store};
use server::{Application, Settings};
use shared::{RoomId, ServerMsg};
use tokio_tungstenite::tungstenite::Message;

async fn persist(concurrency: usize, per_task: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let retention = Retention {
        max_messages: 0,
        max_age_ms: 0,
        prune_every: Duration::from_secs(3600),
    };
    let store = Arc::new(SqliteStore::open(
        &dir.path().join("bench.db"),
        retention,
        Arc::new(|_| {}),
        Arc::new(|_| false),
    )?);
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let room = RoomId::parse(&format!("room-{}", t % 8)).unwrap();
                for i in 0..per_task {
                    let msg = NewMessage {
                        room: room.clone(),
                        name: format!("user{t}"),
                        text: format!(
                            "message {i} with a little text in it, as chat messages have"
                        ),
                        sender: format!("t:{t}"),
                        client_id: Some(format!("{t}-{i}")),
                        ts: 0,
                        key: None,
                        origin: None,
                    };
                    store.append(msg).await.expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    Ok((concurrency * per_task) as f64 / start.elapsed().as_secs_f64())
}

async fn resume_latency(missed: u64, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::with_bind("127.0.0.1:0".parse()?);
    settings.db = dir.path().join("resume.db");
    settings.static_dir = dir.path().to_owned();
    settings.rate_per_sec = 1_000_000;
    settings.rate_burst = 1_000_000;
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    let stop = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));

    // The history: `missed * runs` messages, so each run resumes 1,000 behind the end.
    let url = |name: &str, pos: Option<(&str, u64)>| {
        let mut u =
            format!("ws://{addr}/ws?name={name}&room=bench&feed=0&token={name}-bench-token-000");
        if let Some((e, s)) = pos {
            u.push_str(&format!("&epoch={e}&seq={s}"));
        }
        u
    };
    let (mut writer, _) = tokio_tungstenite::connect_async(bench::request(
        &url("writer", None),
        shared::SUBPROTOCOL_V2,
    )?)
    .await?;
    let epoch = loop {
        if let Some(Ok(Message::Text(t))) = writer.next().await
            && let Ok(ServerMsg::Welcome(w)) = serde_json::from_str(&t)
        {
            break w.epoch;
        }
    };
    use futures_util::SinkExt;
    let total = missed * runs as u64;
    for i in 0..total {
        let msg = shared::ClientMsg::Chat {
            msg: format!("history message {i}"),
            id: Some(format!("h{i}")),
        };
        writer
            .feed(Message::text(serde_json::to_string(&msg)?))
            .await?;
    }
    writer.flush().await?;
    let mut acked = 0;
    while acked < total {
        if let Some(Ok(Message::Text(t))) = writer.next().await
            && t.contains("\"type\":\"ack\"")
        {
            acked += 1;
        }
    }
    let mut times = Vec::new();
    for run in 0..runs {
        let from = total - missed;
        let start = Instant::now();
        let (mut reader, _) = tokio_tungstenite::connect_async(bench::request(
            &url(&format!("reader{run}"), Some((&epoch, from))),
            shared::SUBPROTOCOL_V2,
        )?)
        .await?;
        let mut got = 0;
        let mut last = 0;
        while got < missed {
            match reader.next().await {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(ServerMsg::Chat(c)) = serde_json::from_str(&t) {
                        anyhow::ensure!(c.seq == from + got + 1, "replay out of order");
                        last = c.seq;
                        got += 1;
                    }
                }
                Some(Ok(_)) => {}
                other => anyhow::bail!("reader ended: {other:?}"),
            }
        }
        times.push(start.elapsed());
        anyhow::ensure!(last == total, "replay ended at {last}, not {total}");
    }
    stop.cancel();
    let _ = server.await;
    Ok(times)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("history store: SQLite WAL, synchronous=FULL (fsync per commit)");
    let single = persist(1, 300).await?;
    let grouped = persist(64, 200).await?;
    println!("  1 sender (one commit per message):  {single:>9.0} messages/s");
    println!("  64 senders (group commit):          {grouped:>9.0} messages/s");
    println!(
        "  group commit / single:              {:>9.1}x",
        grouped / single
    );
    let mut times = resume_latency(1000, 7).await?;
    times.sort();
    println!(
        "resume after 1,000 missed messages (7 runs): median {:.1} ms, min {:.1} ms, max {:.1} ms",
        times[3].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[6].as_secs_f64() * 1e3
    );
    Ok(())
}
