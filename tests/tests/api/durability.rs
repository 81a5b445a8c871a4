//! Crash durability: the server binary, SIGKILLed three times at random points while writers
//! send thousands of messages with client ids and resend whatever was not acknowledged.
//! Afterwards every acknowledged id is stored exactly once, at the seq its ack named, each
//! room's seq is gap-free, and SQLite's integrity check passes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use shared::{ClientMsg, ServerMsg};
use switchboard_tests::process::ServerProcess;
use tokio_tungstenite::tungstenite::Message;

const WRITERS: usize = 4;
const PER_WRITER: usize = 1500;
/// Messages a writer keeps in flight without an ack.
const WINDOW: usize = 64;

async fn start(db: &std::path::Path) -> ServerProcess {
    let mut args: Vec<String> = vec!["--db".into(), db.display().to_string()];
    for (flag, value) in [
        ("--rate-per-sec", "1000000"),
        ("--rate-burst", "1000000"),
        ("--outbound-queue", "4096"),
    ] {
        args.extend([flag.to_owned(), value.to_owned()]);
    }
    // Port 0 every time: a restart on the old port could find it taken by a parallel test.
    ServerProcess::start("127.0.0.1:0", &args).await
}

/// Where the server listens now; writers read it at every reconnect.
type Address = Arc<std::sync::RwLock<String>>;

/// Sends `PER_WRITER` messages with ids, reconnecting and resending unacknowledged ones until
/// every one is acknowledged. Returns id → acknowledged seq.
async fn writer(
    addr: Address,
    room: &'static str,
    who: usize,
    progress: Arc<AtomicUsize>,
) -> HashMap<String, u64> {
    let id = |i: usize| format!("w{who}-{i}");
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut next = 0;
    while acked.len() < PER_WRITER {
        let url = format!(
            "ws://{}/ws?name=writer{who}&room={room}&feed=0&token=writer-token-{who:08}",
            addr.read().unwrap()
        );
        let Ok(Ok((mut ws, _))) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio_tungstenite::connect_async(switchboard_tests::v2_request(&url)),
        )
        .await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let send = |i: usize| {
            let msg = ClientMsg::Chat {
                msg: format!("message {i} from writer {who}"),
                id: Some(id(i)),
            };
            Message::text(serde_json::to_string(&msg).unwrap())
        };
        // Resend everything sent before but never acknowledged, in order.
        let mut ok = true;
        for i in (0..next).filter(|i| !acked.contains_key(&id(*i))) {
            ok &= ws.feed(send(i)).await.is_ok();
        }
        ok &= ws.flush().await.is_ok();
        while ok && acked.len() < PER_WRITER {
            while next < PER_WRITER && next - acked.len().min(next) < WINDOW {
                ok &= ws.feed(send(next)).await.is_ok();
                next += 1;
            }
            ok &= ws.flush().await.is_ok();
            match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    if let Ok(ServerMsg::Ack { id, seq, .. }) = serde_json::from_str(&text) {
                        match acked.insert(id.clone(), seq) {
                            Some(earlier) => {
                                assert_eq!(earlier, seq, "{id} acknowledged at two seqs")
                            }
                            None => {
                                progress.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => ok = false, // killed, closed or silent: reconnect
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_sigkill_exactly_once_with_gap_free_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let mut server = start(&db).await;
    let addr: Address = Arc::new(std::sync::RwLock::new(server.addr.to_string()));
    let rooms = ["crash-a", "crash-b"];
    let progress = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(addr.clone(), rooms[w % 2], w, progress.clone())))
        .collect();
    // Three random points of the run, by acknowledged messages.
    let total = WRITERS * PER_WRITER;
    let mut points: Vec<usize> = (0..3)
        .map(|_| rand::rng().random_range(total / 10..total * 9 / 10))
        .collect();
    points.sort_unstable();
    for (kill, point) in points.into_iter().enumerate() {
        while progress.load(Ordering::Relaxed) < point {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.kill().await;
        eprintln!(
            "killed the server ({} of 3) at {} acknowledged messages",
            kill + 1,
            progress.load(Ordering::Relaxed)
        );
        server = start(&db).await;
        *addr.write().unwrap() = server.addr.to_string();
    }
    let mut acked = HashMap::new();
    for w in writers {
        acked.extend(
            tokio::time::timeout(Duration::from_secs(120), w)
                .await
                .expect("writers finish")
                .unwrap(),
        );
    }
    server.kill().await;
    assert_eq!(acked.len(), WRITERS * PER_WRITER);

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut stored: HashMap<String, (String, u64)> = HashMap::new();
    let mut stmt = conn
        .prepare("SELECT room, seq, client_id FROM messages ORDER BY room, seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .unwrap();
    let mut per_room: HashMap<String, Vec<u64>> = HashMap::new();
    for row in rows {
        let (room, seq, id) = row.unwrap();
        per_room.entry(room.clone()).or_default().push(seq);
        let id = id.expect("every message has an id");
        assert!(
            stored.insert(id.clone(), (room, seq)).is_none(),
            "{id} stored twice"
        );
    }
    for (room, seqs) in &per_room {
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, &expected, "room {room} has a gap");
    }
    for (id, seq) in &acked {
        let (_, stored_seq) = stored
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged {id} was lost"));
        assert_eq!(
            stored_seq, seq,
            "{id} stored at another seq than acknowledged"
        );
    }
    println!(
        "durability: {} messages acknowledged across 3 SIGKILLs, all stored once; rooms {:?}",
        acked.len(),
        per_room
            .iter()
            .map(|(r, s)| (r.clone(), s.len()))
            .collect::<Vec<_>>()
    );
}
