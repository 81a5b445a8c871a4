//! The default store: one SQLite file in WAL mode.
//!
//! One writer thread owns the write connection and commits whatever has arrived as one
//! transaction (group commit): with `synchronous=FULL` every acknowledged message has been
//! fsynced, yet a burst of messages costs one fsync. Reads use a separate connection (WAL lets
//! them run beside the writer). Sequence numbers come from the `rooms` table inside the same
//! transaction as the insert, so they survive retention and restarts without gaps or reuse.
//!
//! Each message of a batch is inserted under its own savepoint: a message the database refuses
//! (a constraint, a policy trigger) is rolled back alone and answered
//! [`StoreError::Rejected`], and the rest of the batch commits. Only a failure of the
//! transaction itself (I/O, a full disk, a busy lock, corruption) fails the whole batch.
//!
//! Rooms do not accumulate: a room whose messages retention has removed and that has no members
//! loses its `rooms` row. Its last `seq` goes into the `seq_floor` kept in `meta` (the highest
//! seq of any room removed so), and a room with no row counts its seqs on from that floor, so a
//! room that comes back never reuses a seq a client may still hold.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};
use shared::{ChatMsg, RoomId, SessionId};
use tokio::sync::{mpsc, oneshot};

use super::{
    Appended, Bounds, Commit, CommitListener, Latest, NewMessage, Retention, Store, StoreError,
};

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
    // Message ids are unique per sender, not per room: two clients counting from 1 both send
    // id "1". Rows from before this migration keep the empty sender.
    "ALTER TABLE messages ADD COLUMN sender TEXT NOT NULL DEFAULT '';
     DROP INDEX messages_client_id;
     CREATE UNIQUE INDEX messages_sender_client_id ON messages (room, sender, client_id)
         WHERE client_id IS NOT NULL;",
    // Data publications: a durable one is a history entry with its key; the latest value of
    // each key of a room is kept apart.
    "ALTER TABLE messages ADD COLUMN data_key TEXT;
     CREATE TABLE latest (
         room TEXT NOT NULL,
         key TEXT NOT NULL,
         data TEXT NOT NULL,
         ts INTEGER NOT NULL,
         PRIMARY KEY (room, key)
     ) WITHOUT ROWID;",
];

/// Rooms whose last seq the writer keeps in memory; beyond this the cache starts again (it only
/// saves a lookup).
const SEQ_CACHE_ROOMS: usize = 10_000;

/// How long a session whose message failed to commit is remembered ([`Writer::failed`]): it is
/// closed (1013) at the failure, and gone well within this.
const FAILED_KEEP: Duration = Duration::from_secs(300);

/// A room's last seq: its row, or the floor for a room without one.
const LAST_SEQ: &str = "SELECT COALESCE(
    (SELECT last_seq FROM rooms WHERE room = ?1),
    (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'seq_floor'),
    0)";

type Reply = oneshot::Sender<Result<Appended, StoreError>>;

pub struct SqliteStore {
    epoch: String,
    path: PathBuf,
    writes: mpsc::Sender<(NewMessage, Reply)>,
    /// Sessions' reads (join, resume).
    reader: Arc<Mutex<Connection>>,
    /// The HTTP API's history pages, on their own connection so they never queue sessions.
    api_reader: Arc<Mutex<Connection>>,
}

/// Whether a room has members now (on this node); such a room keeps its `rooms` row.
pub type RoomInUse = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path` and starts the writer.
    pub fn open(
        path: &Path,
        retention: Retention,
        on_commit: CommitListener,
        in_use: RoomInUse,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| unavailable(format!("creating {}: {e}", dir.display())))?;
        }
        let mut writer = connect(path)?;
        migrate(&mut writer)?;
        let epoch = load_epoch(&writer)?;
        let reader = connect(path)?;
        let api_reader = connect(path)?;
        let (writes, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                Writer {
                    conn: writer,
                    retention,
                    on_commit,
                    in_use,
                    last_seq: HashMap::new(),
                    failed: HashMap::new(),
                }
                .run(rx)
            })
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(Self {
            epoch,
            path: path.to_owned(),
            writes,
            reader: Arc::new(Mutex::new(reader)),
            api_reader: Arc::new(Mutex::new(api_reader)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        read_on(self.reader.clone(), f).await
    }
}

async fn read_on<T: Send + 'static>(
    conn: Arc<Mutex<Connection>>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(move || f(&conn.lock().expect("reader lock")))
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(classify)
}

fn unavailable(why: impl Into<String>) -> StoreError {
    StoreError::Unavailable(why.into())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        classify(e)
    }
}

/// Whether retrying can help: busy, locked, I/O and full-disk failures are transient; a
/// constraint or a value the database cannot hold is a refusal of this request; a damaged file
/// or data of the wrong shape is corruption.
fn classify(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let why = e.to_string();
    match &e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            C::DatabaseCorrupt | C::NotADatabase => StoreError::Corrupt(why),
            C::ConstraintViolation | C::TooBig | C::TypeMismatch => StoreError::Rejected(why),
            _ => StoreError::Unavailable(why),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(why),
        _ => StoreError::Unavailable(why),
    }
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
            key: r.get(5)?,
        })
    }
}

impl Store for SqliteStore {
    fn epoch(&self) -> String {
        self.epoch.clone()
    }

    fn append(&self, msg: NewMessage) -> BoxFuture<'_, Result<Appended, StoreError>> {
        Box::pin(async move { self.submit(msg).await.await })
    }

    /// The writer takes messages from one queue, in order, and commits them in batches: a
    /// caller's messages keep its order, and many of them share one commit.
    #[expect(clippy::async_yields_async, reason = "queued now, committed later")]
    fn submit(&self, msg: NewMessage) -> BoxFuture<'_, Commit> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            if self.writes.send((msg, tx)).await.is_err() {
                return Box::pin(std::future::ready(Err(unavailable("writer stopped")))) as Commit;
            }
            Box::pin(async move { rx.await.map_err(|_| unavailable("writer stopped"))? }) as Commit
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
                "SELECT seq, ts, name, text, client_id, data_key FROM messages WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            stmt.query_map(params![room, after, limit as i64], row_to_msg(&room))?.collect()
        }))
    }

    fn history_page(
        &self,
        room: &RoomId,
        before: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<(Vec<ChatMsg>, Bounds), StoreError>> {
        let room = room.to_string();
        Box::pin(read_on(self.api_reader.clone(), move |c| {
            // One read transaction: the page and the bounds describe the same moment.
            c.execute_batch("BEGIN")?;
            let page = (|| {
                let mut stmt = c.prepare_cached(
                    "SELECT seq, ts, name, text, client_id, data_key FROM messages WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
                )?;
                let mut page: Vec<ChatMsg> = stmt
                    .query_map(params![room, before, limit as i64], row_to_msg(&room))?
                    .collect::<Result<_, _>>()?;
                page.reverse();
                Ok((page, read_bounds(c, &room)?))
            })();
            c.execute_batch("COMMIT")?;
            page
        }))
    }

    fn bounds(&self, room: &RoomId) -> BoxFuture<'_, Result<Bounds, StoreError>> {
        let room = room.to_string();
        Box::pin(self.read(move |c| read_bounds(c, &room)))
    }

    fn put_latest(&self, latest: Latest) -> BoxFuture<'_, Result<(), StoreError>> {
        // On the API's connection: latest values come from the server API, and a write there
        // waits for the writer's transaction (busy timeout) without holding up the sessions.
        Box::pin(read_on(self.api_reader.clone(), move |c| {
            c.prepare_cached(
                "INSERT INTO latest (room, key, data, ts) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (room, key) DO UPDATE SET data = excluded.data, ts = excluded.ts
                 WHERE excluded.ts >= latest.ts",
            )?
            .execute(params![
                latest.room.as_str(),
                latest.key,
                latest.data,
                latest.ts
            ])?;
            Ok(())
        }))
    }

    fn latest(&self, room: &RoomId) -> BoxFuture<'_, Result<Vec<Latest>, StoreError>> {
        let room = room.clone();
        Box::pin(self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT key, data, ts FROM latest WHERE room = ?1 ORDER BY key")?;
            stmt.query_map([room.as_str()], |r| {
                Ok(Latest {
                    room: room.clone(),
                    key: r.get(0)?,
                    data: r.get(1)?,
                    ts: r.get(2)?,
                })
            })?
            .collect()
        }))
    }
}

fn read_bounds(c: &Connection, room: &str) -> rusqlite::Result<Bounds> {
    let last: u64 = c.query_row(LAST_SEQ, [room], |r| r.get(0))?;
    let first: Option<u64> = c.query_row(
        "SELECT MIN(seq) FROM messages WHERE room = ?1",
        [room],
        |r| r.get(0),
    )?;
    Ok(Bounds {
        first: first.unwrap_or(last + 1),
        last,
    })
}

struct Writer {
    conn: Connection,
    retention: Retention,
    on_commit: CommitListener,
    in_use: RoomInUse,
    /// Cache of each room's last seq ([`LAST_SEQ`]); cleared when a transaction fails, when
    /// rooms are pruned, and when it holds [`SEQ_CACHE_ROOMS`] rooms.
    last_seq: HashMap<String, u64>,
    /// Sessions with a message that failed to commit, and when: their later messages, already
    /// queued or still arriving, are refused as `Unavailable` without being stored, so that
    /// none lands ahead of the one the client will resend ([`NewMessage::origin`]).
    failed: HashMap<SessionId, Instant>,
}

/// What one batch's messages came to: each one's outcome, and what was newly stored.
type Committed = (Vec<Result<Appended, StoreError>>, Vec<ChatMsg>);

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
            if !self.failed.is_empty() {
                let now = Instant::now();
                self.failed
                    .retain(|_, at| now.duration_since(*at) < FAILED_KEEP);
                let refused: Vec<_>;
                (refused, batch) = batch
                    .into_iter()
                    .partition(|(msg, _)| msg.origin.is_some_and(|o| self.failed.contains_key(&o)));
                for (_, reply) in refused {
                    let _ = reply.send(Err(unavailable(
                        "an earlier message of this connection was not stored",
                    )));
                }
                if batch.is_empty() {
                    continue;
                }
            }
            let outcomes = match self.commit(&batch) {
                Ok((results, stored)) => {
                    if !stored.is_empty() {
                        (self.on_commit)(stored);
                    }
                    results
                }
                Err(e) => {
                    tracing::error!(error = %e, kind = e.kind(), "commit failed");
                    self.last_seq.clear();
                    if e.is_transient() {
                        // Forgotten after FAILED_KEEP, when the next batch is taken.
                        let now = Instant::now();
                        self.failed.extend(
                            batch
                                .iter()
                                .filter_map(|(msg, _)| msg.origin)
                                .map(|o| (o, now)),
                        );
                    }
                    vec![Err(e); batch.len()]
                }
            };
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                // A closed reply is a session that ended while its message was being stored:
                // the message is stored (or not) all the same, and nobody is left to tell.
                if reply.send(outcome).is_err() {
                    tracing::debug!("append answered after its session ended");
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

    /// One transaction for the whole batch, a savepoint per message.
    fn commit(&mut self, batch: &[(NewMessage, Reply)]) -> Result<Committed, StoreError> {
        if self.last_seq.len() >= SEQ_CACHE_ROOMS {
            self.last_seq.clear();
        }
        let tx = self.conn.transaction()?;
        let mut results = Vec::with_capacity(batch.len());
        let mut stored = Vec::with_capacity(batch.len());
        let mut touched: HashMap<String, u64> = HashMap::new();
        {
            let mut find = tx.prepare_cached(
                "SELECT seq, ts FROM messages WHERE room = ?1 AND sender = ?2 AND client_id = ?3",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (room, seq, ts, name, text, client_id, sender, data_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut last_seq = tx.prepare_cached(LAST_SEQ)?;
            // Prepared once per connection, like the rest: parsing them again for every
            // message was a measurable part of a commit.
            let mut savepoint = tx.prepare_cached("SAVEPOINT message")?;
            let mut release = tx.prepare_cached("RELEASE message")?;
            for (msg, _) in batch {
                let room = msg.room.as_str();
                if let Some(id) = &msg.client_id {
                    let earlier: Option<(u64, u64)> = find
                        .query_row(params![room, msg.sender, id], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                        .optional()?;
                    if let Some((seq, ts)) = earlier {
                        results.push(Ok(Appended {
                            seq,
                            ts,
                            duplicate: true,
                        }));
                        continue;
                    }
                }
                let last = match touched.get(room).or_else(|| self.last_seq.get(room)) {
                    Some(last) => *last,
                    None => last_seq.query_row([room], |r| r.get(0))?,
                };
                let seq = last + 1;
                savepoint.execute([])?;
                let inserted = insert.execute(params![
                    room,
                    seq,
                    msg.ts,
                    msg.name,
                    msg.text,
                    msg.client_id,
                    msg.sender,
                    msg.key
                ]);
                match inserted.map_err(classify) {
                    Ok(_) => {
                        release.execute([])?;
                    }
                    Err(refused @ StoreError::Rejected(_)) => {
                        tx.execute_batch("ROLLBACK TO message; RELEASE message")?;
                        tracing::warn!(room, error = %refused, "message refused by the database");
                        results.push(Err(refused));
                        continue;
                    }
                    // Anything else fails the transaction, and with it the batch.
                    Err(failed) => return Err(failed),
                }
                touched.insert(room.to_owned(), seq);
                results.push(Ok(Appended {
                    seq,
                    ts: msg.ts,
                    duplicate: false,
                }));
                stored.push(ChatMsg {
                    room: room.to_owned(),
                    seq,
                    name: msg.name.clone(),
                    msg: msg.text.clone(),
                    id: msg.client_id.clone(),
                    ts: msg.ts,
                    key: msg.key.clone(),
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

    /// Removes messages older than `max_age_ms` (the count limit is applied at each commit),
    /// then the rows of rooms left with no messages and no members, raising the seq floor to
    /// their last seqs.
    fn prune(&mut self) -> rusqlite::Result<()> {
        if self.retention.max_age_ms > 0 {
            let cutoff = crate::hub::unix_millis().saturating_sub(self.retention.max_age_ms);
            let removed = self
                .conn
                .execute("DELETE FROM messages WHERE ts < ?1", [cutoff])?;
            if removed > 0 {
                tracing::info!(removed, "retention removed old messages");
            }
        }
        let empty: Vec<(String, u64)> = self
            .conn
            .prepare_cached(
                "SELECT room, last_seq FROM rooms r
                 WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.room = r.room)",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let idle: Vec<(String, u64)> = empty
            .into_iter()
            .filter(|(room, _)| !(self.in_use)(room))
            .collect();
        if idle.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut remove = tx.prepare_cached("DELETE FROM rooms WHERE room = ?1")?;
            for (room, _) in &idle {
                remove.execute([room])?;
            }
            let floor = idle.iter().map(|(_, seq)| *seq).max().unwrap_or(0);
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('seq_floor', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                [floor],
            )?;
        }
        tx.commit()?;
        self.last_seq.clear();
        tracing::info!(
            rooms = idle.len(),
            "pruned rooms with no messages and no members"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Range;

    fn msg(room: &str, text: &str, id: Option<&str>, ts: u64) -> NewMessage {
        NewMessage {
            room: RoomId::parse(room).unwrap(),
            name: "ada".into(),
            text: text.into(),
            sender: "t:ada".into(),
            client_id: id.map(Into::into),
            ts,
            key: None,
            origin: None,
        }
    }

    fn open(dir: &tempfile::TempDir, retention: Retention) -> SqliteStore {
        SqliteStore::open(
            &dir.path().join("t.db"),
            retention,
            Arc::new(|_| {}),
            Arc::new(|_| false),
        )
        .unwrap()
    }

    const KEEP_ALL: Retention = Retention {
        max_messages: 0,
        max_age_ms: 0,
        prune_every: Duration::ZERO,
    };

    /// A session hands the store its messages without waiting for their commits. Once one of
    /// them fails for a while (here: another writer holds the database), the client resends
    /// from that one after its 1013, so none of the session's later messages may be stored
    /// before it; other sessions and the HTTP API go on as soon as the database is free.
    #[tokio::test]
    async fn after_a_message_fails_to_commit_its_sessions_later_ones_are_refused_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, KEEP_ALL);
        let from = |origin: Option<SessionId>, text: &str, id: &str| NewMessage {
            origin,
            ..msg("order", text, Some(id), 1)
        };
        let lock = Connection::open(dir.path().join("t.db")).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let failed = store.submit(from(Some(7), "m0", "0")).await.await;
        assert!(
            matches!(&failed, Err(e) if e.is_transient()),
            "the locked database fails the commit for now: {failed:?}"
        );
        lock.execute_batch("ROLLBACK").unwrap();

        // The database is free again. Session 7's next message, sent before it learnt of the
        // failure, would land ahead of m0's resend: refused, not stored.
        let later = store.submit(from(Some(7), "m1", "1")).await.await;
        assert!(
            matches!(&later, Err(StoreError::Unavailable(why)) if why.contains("earlier message")),
            "{later:?}"
        );
        let other = store.submit(from(Some(8), "other", "x")).await.await;
        let api = store.submit(from(None, "api", "y")).await.await;
        assert_eq!(other.map(|a| a.seq), Ok(1));
        assert_eq!(api.map(|a| a.seq), Ok(2));
        let texts: Vec<String> = store
            .read_after(&RoomId::parse("order").unwrap(), 0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.msg)
            .collect();
        assert_eq!(texts, ["other", "api"]);
    }

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

    fn open_with(
        dir: &tempfile::TempDir,
        retention: Retention,
        in_use: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> SqliteStore {
        SqliteStore::open(
            &dir.path().join("t.db"),
            retention,
            Arc::new(|_| {}),
            Arc::new(in_use),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_range_whose_rest_retention_deletes_mid_read_ends_instead_of_spinning() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(
            &dir,
            Retention {
                max_messages: 1000,
                ..KEEP_ALL
            },
        );
        let room = RoomId::parse("r").unwrap();
        for i in 0..1000 {
            store
                .append(msg("r", &format!("m{i}"), None, 1))
                .await
                .unwrap();
        }
        let mut range = Range::new(room.clone(), 0, 1000);
        let first = range.next_page(&store, 500).await.unwrap().unwrap();
        assert_eq!((first[0].seq, first[499].seq), (1, 500));
        // Meanwhile 1,000 newer messages push everything the range still wanted out of the
        // history: only messages past its end are left to read.
        for i in 0..1000 {
            store
                .append(msg("r", &format!("n{i}"), None, 1))
                .await
                .unwrap();
        }
        let rest = tokio::time::timeout(Duration::from_secs(5), range.next_page(&store, 500))
            .await
            .expect("the range ends instead of spinning")
            .unwrap();
        assert_eq!(rest, None);
    }

    #[tokio::test]
    async fn a_refused_message_fails_alone_and_the_rest_of_its_batch_commits_gap_free() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(&dir, KEEP_ALL));
        store
            .read(|c| {
                c.execute_batch(
                    "CREATE TRIGGER no_poison BEFORE INSERT ON messages WHEN NEW.text = 'poison'
                     BEGIN SELECT RAISE(ABORT, 'refused by policy'); END;",
                )
            })
            .await
            .unwrap();
        // Sent at once, so most land in the same batch.
        let appends: Vec<_> = (0..40)
            .map(|i| {
                let store = store.clone();
                let text = if i % 2 == 0 {
                    "poison".to_owned()
                } else {
                    format!("ok{i}")
                };
                tokio::spawn(async move { store.append(msg("r", &text, None, 1)).await })
            })
            .collect();
        let mut refused = 0;
        let mut seqs = Vec::new();
        for a in appends {
            match a.await.unwrap() {
                Ok(appended) => seqs.push(appended.seq),
                Err(StoreError::Rejected(why)) => {
                    assert!(why.contains("refused by policy"), "{why}");
                    refused += 1;
                }
                Err(other) => panic!("expected a refusal, got {other:?}"),
            }
        }
        seqs.sort_unstable();
        assert_eq!(refused, 20);
        assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
        let room = RoomId::parse("r").unwrap();
        let stored = store.read_after(&room, 0, 100).await.unwrap();
        assert!(stored.iter().all(|m| m.msg.starts_with("ok")));
        assert_eq!(stored.len(), 20);
    }

    /// Holds `conn` (as a long query would) for a while.
    fn hold(conn: &Arc<Mutex<Connection>>) -> tokio::task::JoinHandle<()> {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            let _busy = conn.lock().unwrap();
            std::thread::sleep(Duration::from_secs(2));
        })
    }

    #[tokio::test]
    async fn api_reads_and_session_reads_never_wait_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir, KEEP_ALL);
        store.append(msg("r", "hello", None, 1)).await.unwrap();
        let room = RoomId::parse("r").unwrap();
        let soon = Duration::from_millis(1500);
        // A history request stuck on the API's connection does not hold up a session's join...
        let busy = hold(&store.api_reader);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let bounds = tokio::time::timeout(soon, store.bounds(&room))
            .await
            .expect("a session's read is not queued behind the API's")
            .unwrap();
        assert_eq!(bounds, Bounds { first: 1, last: 1 });
        busy.await.unwrap();
        // ...and a busy sessions' connection does not hold up the API.
        let busy = hold(&store.reader);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (page, bounds) = tokio::time::timeout(soon, store.history_page(&room, 100, 10))
            .await
            .expect("an API read is not queued behind the sessions'")
            .unwrap();
        assert_eq!((page.len(), bounds.last), (1, 1));
        busy.await.unwrap();
    }

    #[tokio::test]
    async fn rooms_left_empty_by_retention_and_without_members_are_pruned_and_never_reuse_a_seq() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(
            &dir,
            Retention {
                max_age_ms: 60_000,
                ..KEEP_ALL
            },
            |room| room == "occupied",
        );
        let old = crate::hub::unix_millis() - 120_000;
        for room in ["gone", "occupied"] {
            for i in 0..3 {
                store
                    .append(msg(room, &format!("m{i}"), None, old))
                    .await
                    .unwrap();
            }
        }
        // The next commit runs retention: the old messages go, then the empty, unused room.
        store
            .append(msg("other", "now", None, crate::hub::unix_millis()))
            .await
            .unwrap();
        let rooms: Vec<String> = store
            .read(|c| {
                c.prepare("SELECT room FROM rooms ORDER BY room")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .await
            .unwrap();
        assert_eq!(rooms, ["occupied", "other"]);
        // A pruned room that comes back counts on past every seq it ever had.
        let gone = RoomId::parse("gone").unwrap();
        assert_eq!(
            store.bounds(&gone).await.unwrap(),
            Bounds { first: 4, last: 3 }
        );
        let next = store.append(msg("gone", "back", None, 1)).await.unwrap();
        assert_eq!(next.seq, 4);
    }
}
