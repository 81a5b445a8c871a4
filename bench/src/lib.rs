//! The load generator's scenarios, as a library so the test suite can run them in smoke mode.
//!
//! - [`echo`]: closed loop, N connections each sending a payload and awaiting its echo.
//! - [`fanout`]: open loop, one publisher at a fixed rate, R receivers; latency is measured
//!   from each message's *scheduled* send time, so a stalled publisher cannot hide latency
//!   (no coordinated omission).
//! - [`chat_room`]: closed loop, N clients in one room all sending: each sends its next message
//!   once it has received everyone else's previous one (a round), so the room runs as fast as
//!   the server can relay N × (N − 1) deliveries per round.
//! - [`idle`]: many connections held; the server's resident memory per connection.
//! - [`setup`]: connection setup rate: many connects, a fixed number in flight.
//! - [`members`]: many members joining one room (named or nameless): time to join, presence
//!   frames, memory per member once quiet.
//! - [`rooms`]: many rooms of a few members each, several rooms per connection, traffic in
//!   every room.
//!
//! Client sockets bind round-robin to 127.0.0.2–127.0.0.9 so ephemeral ports do not run out.
//! Three paths: `raw` (the server's `/echo` and `/relay`, which every peer implements),
//! `switchboard` (the real chat path: `/ws`, JSON, validation, sequencing, persistence; protocol
//! v3) and `switchboard-v2` (the same chat path as the server spoke it before v3, at `f4430fd`:
//! one room per connection from the query, no subprotocol; to measure a baseline server with
//! the same scenarios). The two chat paths differ only in how a client joins its room and how
//! it addresses a chat message ([`open`], [`frame`]): names, rooms and payloads are the same.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

pub type Ws = WebSocketStream<tokio::net::TcpStream>;

/// Which server path a scenario drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    /// `/echo` and `/relay`: raw frames.
    Raw,
    /// `/ws`: Switchboard's chat path (JSON, validation, seq, persistence), protocol v3: the
    /// `switchboard.v3` subprotocol, `hello`, then `join` → `subscribed`, room-scoped chats.
    Switchboard,
    /// `/ws` in protocol v2 as servers before v3 spoke it (`f4430fd`): the room and name in the
    /// query, no subprotocol, `welcome` first, chats without a room. For a baseline server: the
    /// current one treats a connection without a subprotocol as a plain tutorial client.
    SwitchboardV2,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub path: PathKind,
    pub connections: usize,
    pub payload: usize,
    /// Offered publish rate (fan-out), messages per second.
    pub rate: Option<u64>,
    pub sent: u64,
    pub delivered: u64,
    pub expected: u64,
    pub loss: f64,
    pub per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub secs: f64,
    /// Idle and members: the server's resident memory per open connection, KiB.
    pub rss_per_conn_kib: Option<f64>,
    /// Members: seconds until every connection was in the room.
    pub join_secs: Option<f64>,
    /// Members: seconds until the room fell quiet after the joins.
    pub settled_secs: Option<f64>,
    /// Members: frames the members received while joining and settling (presence).
    pub presence_frames: Option<u64>,
}

/// Small buffers: the load generator holds many connections.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
}

/// Connects to `addr` + `path`, binding the client socket to 127.0.0.{2..=9} round-robin, and
/// asking for `subprotocol` if given.
pub async fn connect(
    addr: SocketAddr,
    path: &str,
    n: usize,
    subprotocol: Option<&str>,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    let source: SocketAddr = format!("127.0.0.{}:0", 2 + n % 8).parse()?;
    socket.bind(source)?;
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting from {source}"))?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}{path}");
    let request = match subprotocol {
        Some(subprotocol) => request(&url, subprotocol)?,
        None => {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            url.into_client_request()?
        }
    };
    let (ws, _) = client_async_with_config(request, stream, Some(client_config())).await?;
    Ok(ws)
}

/// The upgrade request for `url`, asking for `subprotocol` on Switchboard's chat socket (`/ws`;
/// without one, a connection there is a plain tutorial client).
pub fn request(
    url: &str,
    subprotocol: &str,
) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request()?;
    if request.uri().path() == "/ws" {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", subprotocol.parse()?);
    }
    Ok(request)
}

/// Joins `room` on Switchboard's chat path the way the product's clients do (protocol v3):
/// connect with `query` (`?name=…&feed=…`), read `hello`, send `join`, read `subscribed`.
pub async fn join(addr: SocketAddr, query: &str, room: &str, n: usize) -> anyhow::Result<Ws> {
    let mut ws = connect(
        addr,
        &format!("/ws{query}"),
        n,
        Some(shared::SUBPROTOCOL_V3),
    )
    .await?;
    expect(&mut ws, "\"type\":\"hello\"").await?;
    let join = shared::Command::Join {
        room: shared::RoomId::parse(room)?,
        epoch: None,
        seq: None,
    };
    ws.send(Message::text(serde_json::to_string(&join)?))
        .await?;
    expect(&mut ws, "\"type\":\"subscribed\"").await?;
    Ok(ws)
}

/// Opens one scenario connection. On the raw path: `endpoint` (`/echo` or `/relay`). On a chat
/// path: a member of `room` with the query parameters `params` (`name=…&feed=…`), returned once
/// the server has let it in: v3 joins after `hello` ([`join`]); v2 names the room in the query
/// and is in once `welcome` arrives.
pub async fn open(
    addr: SocketAddr,
    path: PathKind,
    endpoint: &str,
    params: &str,
    room: &str,
    n: usize,
) -> anyhow::Result<Ws> {
    match path {
        PathKind::Raw => connect(addr, endpoint, n, None).await,
        PathKind::Switchboard => join(addr, &format!("?{params}"), room, n).await,
        PathKind::SwitchboardV2 => {
            let mut ws = connect(addr, &format!("/ws?{params}&room={room}"), n, None).await?;
            expect(&mut ws, "\"type\":\"welcome\"").await?;
            Ok(ws)
        }
    }
}

/// Reads the next text frame and checks it contains `marker`.
async fn expect(ws: &mut Ws, marker: &str) -> anyhow::Result<()> {
    loop {
        match ws.next().await.context("connection ended")?? {
            Message::Text(t) if t.contains(marker) => return Ok(()),
            Message::Text(t) => anyhow::bail!("expected {marker}, got {t}"),
            _ => {}
        }
    }
}

/// What a client sends for `body`: the bytes themselves on the raw path, a chat message to
/// `room` on Switchboard's chat path (v2: to the connection's one room, so without a room).
fn frame(path: PathKind, room: &str, body: String) -> anyhow::Result<String> {
    Ok(match path {
        PathKind::Raw => body,
        PathKind::Switchboard => serde_json::to_string(&shared::Command::Chat {
            room: shared::RoomId::parse(room)?,
            msg: body,
            id: None,
        })?,
        PathKind::SwitchboardV2 => serde_json::to_string(&shared::ClientMsg::Chat {
            msg: body,
            id: None,
        })?,
    })
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// What a run was asked to do.
struct Run {
    scenario: &'static str,
    path: PathKind,
    connections: usize,
    payload: usize,
    rate: Option<u64>,
}

impl Run {
    fn report(
        self,
        sent: u64,
        expected: u64,
        delivered: u64,
        hist: &Histogram<u64>,
        secs: f64,
    ) -> Report {
        Report {
            scenario: self.scenario,
            path: self.path,
            connections: self.connections,
            payload: self.payload,
            rate: self.rate,
            sent,
            delivered,
            expected,
            loss: if expected == 0 {
                0.0
            } else {
                1.0 - delivered as f64 / expected as f64
            },
            per_sec: delivered as f64 / secs,
            p50_us: hist.value_at_quantile(0.5),
            p99_us: hist.value_at_quantile(0.99),
            p999_us: hist.value_at_quantile(0.999),
            max_us: hist.max(),
            secs,
            rss_per_conn_kib: None,
            join_secs: None,
            settled_secs: None,
            presence_frames: None,
        }
    }
}

/// Closed-loop echo: `conns` connections each send `payload` bytes and await the echo, for
/// `duration`. Switchboard's chat path is measured through `/ws` (a chat message comes back
/// as the sender's own broadcast).
pub async fn echo(
    addr: SocketAddr,
    path: PathKind,
    conns: usize,
    payload: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..conns {
        let room = format!("echo{c}");
        let mut ws = open(
            addr,
            path,
            "/echo",
            &format!("name=echo{c}&feed=0"),
            &room,
            c,
        )
        .await?;
        let body = "x".repeat(payload);
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let frame = frame(path, &room, body)?;
            while start.elapsed() < duration {
                let sent = Instant::now();
                ws.send(Message::text(frame.clone())).await?;
                loop {
                    match ws.next().await.context("echo ended")?? {
                        Message::Text(_) | Message::Binary(_) => break,
                        _ => {}
                    }
                }
                hist.record(sent.elapsed().as_micros().max(1) as u64)?;
            }
            let _ = ws.close(None).await;
            anyhow::Ok(hist)
        }));
    }
    let mut hist = histogram();
    for t in tasks {
        hist.add(t.await??)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = hist.len();
    let run = Run {
        scenario: "echo",
        path,
        connections: conns,
        payload,
        rate: None,
    };
    Ok(run.report(n, n, n, &hist, secs))
}

/// Open-loop fan-out: one publisher sends `rate` messages a second for `duration` to
/// `receivers` clients. Each message carries its scheduled send time.
pub async fn fanout(
    addr: SocketAddr,
    path: PathKind,
    receivers: usize,
    rate: u64,
    payload: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    let epoch = Instant::now();
    // A fresh room per run: on the chat path a joining receiver is sent the room's recent
    // history, which must not count as deliveries of this run.
    let room = format!("fanout-{}", epoch_nanos() % 1_000_000_000_000);
    let received = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for r in 0..receivers {
        // On the chat path receivers are listeners without a name (viewers of a live feed):
        // named members would each announce their join to all the others, and 10,000 of them
        // joining one room is a presence storm of 50 million frames, not a fan-out measurement.
        let mut ws = open(addr, path, "/relay", "feed=0", &room, r).await?;
        let received = received.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            loop {
                let frame = tokio::select! {
                    frame = ws.next() => match frame {
                        Some(Ok(frame)) => frame,
                        _ => break,
                    },
                    _ = stop.changed() => break,
                };
                let text = match &frame {
                    Message::Text(t) => t.as_str(),
                    _ => continue,
                };
                let Some(scheduled_us) = scheduled(text, path) else {
                    continue;
                };
                let now = epoch.elapsed().as_micros() as u64;
                hist.record(now.saturating_sub(scheduled_us).max(1))?;
                received.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(hist)
        }));
    }
    let publisher = open(
        addr,
        path,
        "/relay",
        "name=publisher&feed=0",
        &room,
        receivers,
    )
    .await?;
    let (mut pub_tx, mut pub_rx) = publisher.split();
    // The publisher's own echoes (Switchboard) are read and dropped.
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = pub_rx.next().await {} });
    let pad = "x".repeat(payload.saturating_sub(24));
    let total = rate * duration.as_secs().max(1);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = epoch.elapsed();
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(tokio::time::Instant::from_std(epoch + due)).await;
        let body = format!("{} {pad}", due.as_micros());
        let frame = frame(path, &room, body)?;
        // Sent at its scheduled time, not batched: batching would add latency the receivers
        // then measure.
        pub_tx.send(Message::text(frame)).await?;
    }
    let expected = total * receivers as u64;
    // Let the tail arrive (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = (epoch.elapsed() - start).as_secs_f64();
    let _ = pub_tx.close().await;
    drain.abort();
    let _ = stop_tx.send(true);
    let mut hist = histogram();
    for t in tasks {
        hist.add(t.await??)?;
    }
    let run = Run {
        scenario: "fanout",
        path,
        connections: receivers,
        payload,
        rate: Some(rate),
    };
    Ok(run.report(
        total,
        expected,
        received.load(Ordering::Relaxed),
        &hist,
        secs,
    ))
}

/// Idle: opens `conns` connections (64 at a time), holds them, reads the server's resident
/// memory per connection, then checks every one is alive with one broadcast that all must
/// receive. On the raw path that is one frame through `/relay`. On the chat path each
/// connection is in a room of its own (10,000 people joining one room is a presence storm, not
/// idle) with the live feed on, and the broadcast is the next once-a-second `stats` frame.
pub async fn idle(
    addr: SocketAddr,
    path: PathKind,
    conns: usize,
    server_pid: Option<u32>,
) -> anyhow::Result<Report> {
    let rss_before = server_pid.and_then(rss_kib);
    let room = format!("idle-{}", epoch_nanos() % 1_000_000_000_000);
    let start = Instant::now();
    let mut clients = Vec::with_capacity(conns);
    for chunk in (0..conns).collect::<Vec<_>>().chunks(64) {
        let batch = chunk.iter().map(|&c| {
            let room = format!("{room}-{c}");
            async move { open(addr, path, "/relay", "name=i", &room, c).await }
        });
        for ws in futures_util::future::join_all(batch).await {
            clients.push(ws?);
        }
    }
    // Let the server settle, then read its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = server_pid.and_then(rss_kib);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let got = Arc::new(AtomicU64::new(0));
    let marker = match path {
        PathKind::Raw => format!("alive-{}", epoch_nanos()),
        PathKind::Switchboard | PathKind::SwitchboardV2 => "\"type\":\"stats\"".to_owned(),
    };
    let mut tasks = Vec::with_capacity(conns);
    for mut ws in clients {
        let (got, marker, mut stop) = (got.clone(), marker.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(t))) if t.contains(&marker) => {
                            got.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    _ = stop.changed() => break,
                }
            }
            ws
        }));
    }
    let sent_at = Instant::now();
    if path == PathKind::Raw {
        let mut publisher = connect(addr, "/relay", conns, None).await?;
        publisher.send(Message::text(marker.clone())).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while (got.load(Ordering::Relaxed) as usize) < conns && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut hist = histogram();
    hist.record(sent_at.elapsed().as_micros().max(1) as u64)?;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let delivered = got.load(Ordering::Relaxed);
    let run = Run {
        scenario: "idle",
        path,
        connections: conns,
        payload: 0,
        rate: None,
    };
    let mut report = run.report(
        1,
        conns as u64,
        delivered,
        &hist,
        start.elapsed().as_secs_f64(),
    );
    report.rss_per_conn_kib = match (rss_before, rss_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64 / conns as f64),
        _ => None,
    };
    Ok(report)
}

/// Closed-loop chat room: `clients` connections in one room (raw: `/relay`; chat path: one
/// `/ws` room), each sending `payload` bytes per round and starting its next round once it has
/// received every other client's message of the current one. Latency is from the sender's
/// timestamp to each receipt; `delivered` counts receipts from others.
pub async fn chat_room(
    addr: SocketAddr,
    path: PathKind,
    clients: usize,
    payload: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    let epoch = Instant::now();
    let room = format!("room-{}", epoch_nanos() % 1_000_000_000_000);
    let mut sockets = Vec::with_capacity(clients);
    for c in 0..clients {
        sockets.push(open(addr, path, "/relay", &format!("name=c{c}&feed=0"), &room, c).await?);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let delivered = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let others = clients as u64 - 1;
    let pad = "x".repeat(payload.saturating_sub(24));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for (me, mut ws) in sockets.into_iter().enumerate() {
        let (delivered, sent, pad, room, mut stop) = (
            delivered.clone(),
            sent.clone(),
            pad.clone(),
            room.clone(),
            stop_rx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            // Receipts per round; a client is never more than one round ahead of another.
            let mut counts = [0u64; 2];
            let mut round = 0u64;
            'rounds: loop {
                let now = epoch.elapsed().as_micros();
                let body = format!("{now} {me} {round} {pad}");
                ws.send(Message::text(frame(path, &room, body)?)).await?;
                sent.fetch_add(1, Ordering::Relaxed);
                while counts[(round % 2) as usize] < others {
                    let frame = tokio::select! {
                        frame = ws.next() => match frame {
                            Some(Ok(frame)) => frame,
                            _ => break 'rounds,
                        },
                        _ = stop.changed() => break 'rounds,
                    };
                    let Message::Text(text) = &frame else {
                        continue;
                    };
                    let Some((at, from, r)) = round_of(text, path) else {
                        continue;
                    };
                    if from == me {
                        continue;
                    }
                    hist.record(
                        (epoch.elapsed().as_micros() as u64)
                            .saturating_sub(at)
                            .max(1),
                    )?;
                    delivered.fetch_add(1, Ordering::Relaxed);
                    counts[(r % 2) as usize] += 1;
                }
                counts[(round % 2) as usize] = 0;
                round += 1;
                if *stop.borrow() {
                    break;
                }
            }
            let _ = ws.close(None).await;
            anyhow::Ok(hist)
        }));
    }
    tokio::time::sleep(duration).await;
    let secs = start.elapsed().as_secs_f64();
    let got = delivered.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let mut hist = histogram();
    for t in tasks {
        hist.add(t.await??)?;
    }
    let run = Run {
        scenario: "chat",
        path,
        connections: clients,
        payload,
        rate: None,
    };
    let sent = sent.load(Ordering::Relaxed);
    // Each message sent is owed to every other client; the last round may be cut short.
    Ok(run.report(sent, sent * others, got, &hist, secs))
}

/// Sender timestamp, sender and round at the head of a chat-room message.
fn round_of(text: &str, path: PathKind) -> Option<(u64, usize, u64)> {
    let mut parts = body_of(text, path)?.splitn(4, ' ');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

/// Connection setup: `total` WebSocket connects, `inflight` at a time, each closed once open
/// (on a chat path, once it is in a room of its own: v3 `subscribed`, v2 `welcome`). `delivered` counts
/// successes, `per_sec` is their rate, and latency is per connect.
pub async fn setup(
    addr: SocketAddr,
    path: PathKind,
    total: usize,
    inflight: usize,
) -> anyhow::Result<Report> {
    let run_id = epoch_nanos() % 1_000_000_000_000;
    let start = Instant::now();
    let results: Vec<Result<u64, ()>> = futures_util::stream::iter(0..total)
        .map(|c| async move {
            let began = Instant::now();
            // On the chat path a connection is set up once it has joined its room.
            let room = format!("setup-{run_id}-{c}");
            let mut ws = open(addr, path, "/echo", "name=s&feed=0", &room, c)
                .await
                .map_err(|_| ())?;
            let took = began.elapsed().as_micros().max(1) as u64;
            // Closed in the background so the close handshake is not counted as setup.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            });
            Ok(took)
        })
        .buffer_unordered(inflight.max(1))
        .collect()
        .await;
    let secs = start.elapsed().as_secs_f64();
    let mut hist = histogram();
    let mut ok = 0;
    for took in results.iter().flatten() {
        hist.record(*took)?;
        ok += 1;
    }
    let run = Run {
        scenario: "setup",
        path,
        connections: total,
        payload: 0,
        rate: Some(inflight as u64),
    };
    Ok(run.report(total as u64, total as u64, ok, &hist, secs))
}

/// A process's resident memory, KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn epoch_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The scheduled send time (µs since the run's start) at the head of a message.
fn scheduled(text: &str, path: PathKind) -> Option<u64> {
    body_of(text, path)?.split(' ').next()?.parse().ok()
}

/// The load generator's own text in a received frame: the frame itself on the raw path; on the
/// chat path, from the start of the `msg` field of `{"type":"chat",...,"msg":"..."}` (found
/// without a full parse).
fn body_of(text: &str, path: PathKind) -> Option<&str> {
    match path {
        PathKind::Raw => Some(text),
        PathKind::Switchboard | PathKind::SwitchboardV2 => {
            let i = text.find("\"msg\":\"")? + 7;
            Some(&text[i..])
        }
    }
}

/// CPU seconds a process has used (user + system), from `/proc/PID/stat`.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Members of one room: `conns` connections join one fresh room on the chat path, 64 at a
/// time, each with a unique name (`named`) or as a nameless listener, every one reading from
/// the moment it is in. Measures how long until all are in (`join_secs`), every frame the
/// clients received until the room fell quiet (no frame for a second: the presence traffic of
/// the joins, `presence_frames`), the server's resident memory per connection once quiet, and
/// that all are alive: one chat from one more member reaches every one (`delivered`).
pub async fn members(
    addr: SocketAddr,
    path: PathKind,
    conns: usize,
    named: bool,
    server_pid: Option<u32>,
) -> anyhow::Result<Report> {
    let run_id = epoch_nanos() % 1_000_000_000_000;
    let room = format!("members-{run_id}");
    let rss_before = server_pid.and_then(rss_kib);
    let frames = Arc::new(AtomicU64::new(0));
    let got = Arc::new(AtomicU64::new(0));
    let marker = format!("alive-{run_id}");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(conns);
    for chunk in (0..conns).collect::<Vec<_>>().chunks(64) {
        let batch = chunk.iter().map(|&c| {
            // Unique names, as real users have.
            let params = if named {
                format!("name=m{c}-{run_id}&feed=0")
            } else {
                "feed=0".to_owned()
            };
            let room = &room;
            async move { open(addr, path, "/relay", &params, room, c).await }
        });
        for ws in futures_util::future::join_all(batch).await {
            let mut ws = ws?;
            let (frames, got, marker, mut stop) =
                (frames.clone(), got.clone(), marker.clone(), stop_rx.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        frame = ws.next() => match frame {
                            Some(Ok(Message::Text(t))) => {
                                if t.contains(&marker) {
                                    got.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    frames.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        },
                        _ = stop.changed() => break,
                    }
                }
                ws
            }));
        }
    }
    let join_secs = start.elapsed().as_secs_f64();
    // Quiet: no frame for a second (bounded at two minutes).
    let mut seen = frames.load(Ordering::Relaxed);
    let quiet_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = frames.load(Ordering::Relaxed);
        if now == seen || Instant::now() > quiet_deadline {
            break;
        }
        seen = now;
    }
    let settled_secs = start.elapsed().as_secs_f64() - 1.0;
    let presence_frames = frames.load(Ordering::Relaxed);
    let rss_after = server_pid.and_then(rss_kib);
    let publisher = open(
        addr,
        path,
        "/relay",
        &format!("name=publisher-{run_id}&feed=0"),
        &room,
        conns,
    )
    .await?;
    let (mut pub_tx, mut pub_rx) = publisher.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = pub_rx.next().await {} });
    let sent_at = Instant::now();
    pub_tx
        .send(Message::text(frame(path, &room, marker.clone())?))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (got.load(Ordering::Relaxed) as usize) < conns && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut hist = histogram();
    hist.record(sent_at.elapsed().as_micros().max(1) as u64)?;
    let _ = stop_tx.send(true);
    drain.abort();
    for t in tasks {
        let _ = t.await;
    }
    let run = Run {
        scenario: if named { "members" } else { "members-nameless" },
        path,
        connections: conns,
        payload: 0,
        rate: None,
    };
    let mut report = run.report(
        1,
        conns as u64,
        got.load(Ordering::Relaxed),
        &hist,
        start.elapsed().as_secs_f64(),
    );
    report.rss_per_conn_kib = match (rss_before, rss_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64 / conns as f64),
        _ => None,
    };
    report.join_secs = Some(join_secs);
    report.settled_secs = Some(settled_secs);
    report.presence_frames = Some(presence_frames);
    Ok(report)
}

/// Many rooms: `conns` named connections, each in `per_conn` rooms, so `conns` rooms of
/// `per_conn` members each (connection `c` joins rooms `c + k × (conns / per_conn)` modulo
/// `conns`, for `k` below `per_conn`: every room gets exactly `per_conn` members, each room's
/// members spread over the connections). Open loop: `rate` chat messages a second in all, the rooms taking
/// turns, each sent by the room's first member; every member (the sender included) must get
/// each. Latency from the scheduled send time, as in [`fanout`].
pub async fn rooms(
    addr: SocketAddr,
    conns: usize,
    per_conn: usize,
    rate: u64,
    payload: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        (1..=conns).contains(&per_conn),
        "each connection joins 1 to --conns rooms"
    );
    let stride = conns / per_conn;
    let epoch = Instant::now();
    let run_id = epoch_nanos() % 1_000_000_000_000;
    let room_of = |r: usize| format!("r{run_id}-{r}");
    let received = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut sinks = Vec::with_capacity(conns);
    let mut tasks = Vec::with_capacity(conns);
    for chunk in (0..conns).collect::<Vec<_>>().chunks(64) {
        let batch = chunk.iter().map(|&c| {
            let room_of = &room_of;
            async move {
                let mut ws =
                    join(addr, &format!("?name=u{c}-{run_id}&feed=0"), &room_of(c), c).await?;
                for k in 1..per_conn {
                    let join = shared::Command::Join {
                        room: shared::RoomId::parse(&room_of((c + k * stride) % conns))?,
                        epoch: None,
                        seq: None,
                    };
                    ws.send(Message::text(serde_json::to_string(&join)?))
                        .await?;
                }
                anyhow::Ok(ws)
            }
        });
        for ws in futures_util::future::join_all(batch).await {
            let (sink, mut stream) = ws?.split();
            sinks.push(sink);
            let (received, mut stop) = (received.clone(), stop_rx.clone());
            tasks.push(tokio::spawn(async move {
                let mut hist = histogram();
                loop {
                    let frame = tokio::select! {
                        frame = stream.next() => match frame {
                            Some(Ok(frame)) => frame,
                            _ => break,
                        },
                        _ = stop.changed() => break,
                    };
                    let Message::Text(text) = &frame else {
                        continue;
                    };
                    if !text.starts_with("{\"type\":\"chat\"") {
                        continue;
                    }
                    let Some(scheduled_us) = scheduled(text, PathKind::Switchboard) else {
                        continue;
                    };
                    let now = epoch.elapsed().as_micros() as u64;
                    hist.record(now.saturating_sub(scheduled_us).max(1))?;
                    received.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(hist)
            }));
        }
    }
    // Let the last joins' `subscribed` and presence settle before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pad = "x".repeat(payload.saturating_sub(24));
    let total = rate * duration.as_secs().max(1);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = epoch.elapsed();
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(tokio::time::Instant::from_std(epoch + due)).await;
        let r = i as usize % conns;
        let body = format!("{} {pad}", due.as_micros());
        let frame = frame(PathKind::Switchboard, &room_of(r), body)?;
        sinks[r].send(Message::text(frame)).await?;
    }
    let expected = total * per_conn as u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = (epoch.elapsed() - start).as_secs_f64();
    let _ = stop_tx.send(true);
    let mut hist = histogram();
    for t in tasks {
        hist.add(t.await??)?;
    }
    let run = Run {
        scenario: "rooms",
        path: PathKind::Switchboard,
        connections: conns,
        payload,
        rate: Some(rate),
    };
    Ok(run.report(
        total,
        expected,
        received.load(Ordering::Relaxed),
        &hist,
        secs,
    ))
}
