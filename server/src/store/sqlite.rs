//! The default store: one SQLite file in WAL mode.
//!
//! One writer thread owns the write connection and commits whatever has arrived as one
//! transaction (group commit): with `synchronous=FULL` every acknowledged message has been
//! fsynced, yet a burst of messages costs one fsync. Reads use a separate connection (WAL lets
//! them run beside the writer). Sequence numbers come from the `rooms` table inside the same
//! transaction as the insert, so they survive retention and restarts without gaps or reuse.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};
use shared::{ChatMsg, RoomId};
use tokio::sync::{mpsc, oneshot};

use super::{Appended, Bounds, CommitListener, NewMessage, Retention, Store, StoreError};

/// Requests waiting for the writer; a full queue makes appends wait (backpressure).
const QUEUE: usize = 8192;
/// Most messages committed in one transaction.
const MAX_BATCH: usize = 2048;

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE rooms (room TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
     CREATE TABLE messages (
         room TEXT NOT NULL,
         seq INTEGER NOT NULL,
         ts INTEGER NOT NULL,
         name TEXT NOT NULL,
         text TEXT NOT NULL,
         client_id TEXT,
         PRIMARY KEY (room, seq)
     ) WITHOUT ROWID;
     CREATE UNIQUE INDEX messages_client_id ON messages (room, client_id) WHERE client_id IS NOT NULL;
     CREATE INDEX messages_ts ON messages (ts);",
];

type Reply = oneshot::Sender<Result<Appended, StoreError>>;

pub struct SqliteStore {
    epoch: String,
    path: PathBuf,
    writes: mpsc::Sender<(NewMessage, Reply)>,
    reader: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path` and starts the writer.
    pub fn open(
        path: &Path,
        retention: Retention,
        on_commit: CommitListener,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| unavailable(format!("creating {}: {e}", dir.display())))?;
        }
        let mut writer = connect(path)?;
        migrate(&mut writer)?;
        let epoch = load_epoch(&writer)?;
        let reader = connect(path)?;
        let (writes, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                Writer {
                    conn: writer,
                    retention,
                    on_commit,
                    last_seq: HashMap::new(),
                }
                .run(rx)
            })
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(Self {
            epoch,
            path: path.to_owned(),
            writes,
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || f(&reader.lock().expect("reader lock")))
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .map_err(|e| unavailable(e.to_string()))
    }
}

fn unavailable(why: impl Into<String>) -> StoreError {
    StoreError::Unavailable(why.into())
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| unavailable(format!("opening {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| unavailable(e.to_string()))?;
    // WAL: readers never block the writer. FULL: a commit is on disk when it returns, so an
    // acknowledged message survives a power cut, not only a crash.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| unavailable(e.to_string()))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let err = |e: rusqlite::Error| unavailable(format!("migrating: {e}"));
    let applied: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", i + 1).map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(version = i + 1, "applied migration");
    }
    Ok(())
}

fn load_epoch(conn: &Connection) -> Result<String, StoreError> {
    let err = |e: rusqlite::Error| unavailable(e.to_string());
    let existing: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(err)?;
    if let Some(epoch) = existing {
        return Ok(epoch);
    }
    let epoch = format!("{:032x}", rand::random::<u128>());
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('epoch', ?1)",
        [&epoch],
    )
    .map_err(err)?;
    Ok(epoch)
}

fn row_to_msg(room: &str) -> impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<ChatMsg> + '_ {
    move |r| {
        Ok(ChatMsg {
            room: room.to_owned(),
            seq: r.get(0)?,
            ts: r.get(1)?,
            name: r.get(2)?,
            msg: r.get(3)?,
            id: r.get(4)?,
        })
    }
}

impl Store for SqliteStore {
    fn epoch(&self) -> String {
        self.epoch.clone()
    }

    fn append(&self, msg: NewMessage) -> BoxFuture<'_, Result<Appended, StoreError>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.writes
                .send((msg, tx))
                .await
                .map_err(|_| unavailable("writer stopped"))?;
            rx.await.map_err(|_| unavailable("writer stopped"))?
        })
    }

    fn read_after(
        &self,
        room: &RoomId,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ChatMsg>, StoreError>> {
        let room = room.to_string();
        Box::pin(self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, ts, name, text, client_id FROM messages WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            stmt.query_map(params![room, after, limit as i64], row_to_msg(&room))?.collect()
        }))
    }

    fn read_before(
        &self,
        room: &RoomId,
        before: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ChatMsg>, StoreError>> {
        let room = room.to_string();
        Box::pin(self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, ts, name, text, client_id FROM messages WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
            )?;
            let mut page: Vec<ChatMsg> = stmt.query_map(params![room, before, limit as i64], row_to_msg(&room))?.collect::<Result<_, _>>()?;
            page.reverse();
            Ok(page)
        }))
    }

    fn bounds(&self, room: &RoomId) -> BoxFuture<'_, Result<Bounds, StoreError>> {
        let room = room.to_string();
        Box::pin(self.read(move |c| {
            let last: u64 = c
                .query_row("SELECT last_seq FROM rooms WHERE room = ?1", [&room], |r| {
                    r.get(0)
                })
                .optional()?
                .unwrap_or(0);
            let first: Option<u64> = c.query_row(
                "SELECT MIN(seq) FROM messages WHERE room = ?1",
                [&room],
                |r| r.get(0),
            )?;
            Ok(Bounds {
                first: first.unwrap_or(last + 1),
                last,
            })
        }))
    }
}

struct Writer {
    conn: Connection,
    retention: Retention,
    on_commit: CommitListener,
    /// Cache of `rooms.last_seq`; cleared when a transaction fails.
    last_seq: HashMap<String, u64>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<(NewMessage, Reply)>) {
        let mut last_prune: Option<Instant> = None;
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(req) => batch.push(req),
                    Err(_) => break,
                }
            }
            match self.commit(&batch) {
                Ok((results, stored)) => {
                    for ((_, reply), result) in batch.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                    if !stored.is_empty() {
                        (self.on_commit)(stored);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "commit failed");
                    self.last_seq.clear();
                    for (_, reply) in batch {
                        let _ = reply.send(Err(unavailable(e.to_string())));
                    }
                }
            }
            if last_prune.is_none_or(|t| t.elapsed() >= self.retention.prune_every) {
                last_prune = Some(Instant::now());
                if let Err(e) = self.prune() {
                    tracing::warn!(error = %e, "retention failed");
                }
            }
        }
    }

    /// One transaction for the whole batch.
    fn commit(
        &mut self,
        batch: &[(NewMessage, Reply)],
    ) -> rusqlite::Result<(Vec<Appended>, Vec<ChatMsg>)> {
        let tx = self.conn.transaction()?;
        let mut results = Vec::with_capacity(batch.len());
        let mut stored = Vec::with_capacity(batch.len());
        let mut touched: HashMap<String, u64> = HashMap::new();
        {
            let mut find = tx.prepare_cached(
                "SELECT seq, ts FROM messages WHERE room = ?1 AND client_id = ?2",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (room, seq, ts, name, text, client_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (msg, _) in batch {
                let room = msg.room.as_str();
                if let Some(id) = &msg.client_id {
                    let earlier: Option<(u64, u64)> = find
                        .query_row(params![room, id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    if let Some((seq, ts)) = earlier {
                        results.push(Appended {
                            seq,
                            ts,
                            duplicate: true,
                        });
                        continue;
                    }
                }
                let last = match touched.get(room).or_else(|| self.last_seq.get(room)) {
                    Some(last) => *last,
                    None => tx
                        .query_row("SELECT last_seq FROM rooms WHERE room = ?1", [room], |r| {
                            r.get(0)
                        })
                        .optional()?
                        .unwrap_or(0),
                };
                let seq = last + 1;
                insert.execute(params![
                    room,
                    seq,
                    msg.ts,
                    msg.name,
                    msg.text,
                    msg.client_id
                ])?;
                touched.insert(room.to_owned(), seq);
                results.push(Appended {
                    seq,
                    ts: msg.ts,
                    duplicate: false,
                });
                stored.push(ChatMsg {
                    room: room.to_owned(),
                    seq,
                    name: msg.name.clone(),
                    msg: msg.text.clone(),
                    id: msg.client_id.clone(),
                    ts: msg.ts,
                });
            }
            let mut upsert = tx.prepare_cached(
                "INSERT INTO rooms (room, last_seq) VALUES (?1, ?2) ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq",
            )?;
            let max = self.retention.max_messages;
            let mut trim =
                tx.prepare_cached("DELETE FROM messages WHERE room = ?1 AND seq <= ?2")?;
            for (room, seq) in &touched {
                upsert.execute(params![room, seq])?;
                if max > 0 && *seq > max {
                    trim.execute(params![room, seq - max])?;
                }
            }
        }
        tx.commit()?;
        self.last_seq.extend(touched);
        Ok((results, stored))
    }

    /// Removes messages older than `max_age_ms` (the count limit is applied at each commit).
    fn prune(&mut self) -> rusqlite::Result<()> {
        if self.retention.max_age_ms == 0 {
            return Ok(());
        }
        let cutoff = crate::hub::unix_millis().saturating_sub(self.retention.max_age_ms);
        let removed = self
            .conn
            .execute("DELETE FROM messages WHERE ts < ?1", [cutoff])?;
        if removed > 0 {
            tracing::info!(removed, "retention removed old messages");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(room: &str, text: &str, id: Option<&str>, ts: u64) -> NewMessage {
        NewMessage {
            room: RoomId::parse(room).unwrap(),
            name: "ada".into(),
            text: text.into(),
            client_id: id.map(Into::into),
            ts,
        }
    }

    fn open(dir: &tempfile::TempDir, retention: Retention) -> SqliteStore {
        SqliteStore::open(&dir.path().join("t.db"), retention, Arc::new(|_| {})).unwrap()
    }

    const KEEP_ALL: Retention = Retention {
        max_messages: 0,
        max_age_ms: 0,
        prune_every: Duration::ZERO,
    };

    #[tokio::test]
    async fn messages_older_than_the_age_limit_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(
            &dir,
            Retention {
                max_age_ms: 60_000,
                ..KEEP_ALL
            },
        );
        let room = RoomId::parse("r").unwrap();
        let now = crate::hub::unix_millis();
        store
            .append(msg("r", "old", None, now - 120_000))
            .await
            .unwrap();
        store.append(msg("r", "new", None, now)).await.unwrap();
        // Retention runs after a commit; the next one sees the old message gone.
        store.append(msg("r", "newer", None, now)).await.unwrap();
        let left: Vec<_> = store
            .read_after(&room, 0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.msg)
            .collect();
        assert_eq!(left, ["new", "newer"]);
        assert_eq!(
            store.bounds(&room).await.unwrap(),
            Bounds { first: 2, last: 3 }
        );
    }

    #[tokio::test]
    async fn seqs_and_dedup_survive_reopening_and_trimming() {
        let dir = tempfile::tempdir().unwrap();
        let room = RoomId::parse("r").unwrap();
        let epoch = {
            let store = open(
                &dir,
                Retention {
                    max_messages: 2,
                    ..KEEP_ALL
                },
            );
            for i in 0..5 {
                store
                    .append(msg("r", &format!("m{i}"), Some(&format!("id{i}")), 1))
                    .await
                    .unwrap();
            }
            store.epoch()
        };
        let store = open(&dir, KEEP_ALL);
        assert_eq!(store.epoch(), epoch);
        assert_eq!(
            store.bounds(&room).await.unwrap(),
            Bounds { first: 4, last: 5 }
        );
        // A trimmed room never reuses a seq; a kept id is still deduplicated.
        let next = store.append(msg("r", "m5", Some("id5"), 1)).await.unwrap();
        assert_eq!((next.seq, next.duplicate), (6, false));
        let again = store.append(msg("r", "m4", Some("id4"), 1)).await.unwrap();
        assert_eq!((again.seq, again.duplicate), (5, true));
        let integrity: String = store
            .read(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(integrity, "ok");
    }
}
