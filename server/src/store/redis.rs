//! The clustered store: per-room history in Redis Streams, shared by every node.
//!
//! One Lua script does an append atomically: it checks the history's `epoch`, looks up the
//! client's message id (dedup), takes the room's next `seq` (`INCR`), adds the entry to the
//! room's stream under the id `<seq>-0` (trimmed to the retention count), remembers the id, and
//! publishes the message on [`keys::CHAT_CHANNEL`] for the other nodes. Redis runs scripts one at a
//! time, so the publish order is the `seq` order on every node. The script returns only after
//! Redis has applied it (and, with `appendfsync always`, written it to the AOF), so an
//! acknowledgement means "stored in Redis".
//!
//! While Redis is unreachable, an append is retried with backoff for up to
//! [`RedisConfig::retry`]; a retry after a lost reply is safe because the message id
//! deduplicates it. After that the append fails: the session tells the client and closes with
//! 1013, and the client resends from its outbox once it is welcomed again.
//!
//! The keys are listed, with what each holds, in [`crate::redis_keys`]. The published message
//! is a [`NodeMsg::Chat`](crate::cluster::NodeMsg) encoded by the script (`cjson`).
//!
//! Errors: connection trouble is [`StoreError::Unavailable`] (retried, then the client resends);
//! a reply or key this server cannot use (a wrong type, an undecodable entry) is
//! [`StoreError::Corrupt`], which no resend can fix.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamRangeReply;
use redis::{Script, Value};
use shared::{ChatMsg, RoomId};
use tokio::sync::watch;

use super::{Appended, Bounds, Latest, NewMessage, Store, StoreError};
use crate::redis_keys as keys;

/// The pub/sub channel every append is published on.
/// How long one Redis request may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

const APPEND: &str = r"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
local id = ARGV[5]
if id ~= '' then
  local prior = redis.call('GET', KEYS[4])
  if prior then
    local seq, ts = string.match(prior, '^(%d+):(%d+)$')
    return {epoch, seq, ts, 1}
  end
end
local seq = redis.call('INCR', KEYS[2])
local maxlen = tonumber(ARGV[6])
local entry = {'n', ARGV[2], 't', ARGV[3], 'ts', ARGV[4], 'id', id}
if ARGV[10] ~= '' then
  table.insert(entry, 'k')
  table.insert(entry, ARGV[10])
end
if maxlen > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', maxlen, seq .. '-0', unpack(entry))
else
  redis.call('XADD', KEYS[3], seq .. '-0', unpack(entry))
end
if id ~= '' then
  redis.call('SET', KEYS[4], seq .. ':' .. ARGV[4], 'EX', ARGV[7])
end
local published = {type = 'chat', room = ARGV[8], seq = seq, ts = tonumber(ARGV[4]), name = ARGV[2], msg = ARGV[3]}
if id ~= '' then
  published.id = id
end
if ARGV[10] ~= '' then
  published.key = ARGV[10]
end
redis.call('PUBLISH', ARGV[9], cjson.encode(published))
return {epoch, tostring(seq), ARGV[4], 0}
";

/// How the Redis store behaves.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// Messages kept per room (stream `MAXLEN`); zero keeps all.
    pub max_messages: u64,
    /// How long an append keeps retrying while Redis is unreachable.
    pub retry: Duration,
    /// How long a message id is remembered for dedup.
    pub dedup_ttl: Duration,
}

pub struct RedisStore {
    conn: ConnectionManager,
    client: redis::Client,
    /// The history's epoch as last seen in Redis; watched (see
    /// [`epoch_changes`](Self::epoch_changes)) for Redis turning out to hold another history.
    epoch: watch::Sender<String>,
    config: RedisConfig,
    append: Script,
    /// Whether the last request reached Redis.
    healthy: AtomicBool,
}

impl RedisStore {
    /// Connects and reads (or creates) the history's epoch. Fails if Redis is unreachable now.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let client = redis::Client::open(config.url.as_str()).map_err(unavailable)?;
        let manager = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(BACKOFF_MAX);
        let mut conn = ConnectionManager::new_with_config(client.clone(), manager)
            .await
            .map_err(unavailable)?;
        let (epoch,): (String,) = with_epoch(&mut redis::pipe())
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            conn,
            client,
            epoch: watch::Sender::new(epoch),
            config,
            append: Script::new(APPEND),
            healthy: AtomicBool::new(true),
        })
    }

    /// A handle for further connections (pub/sub) to the same server.
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A multiplexed connection that reconnects by itself.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Whether the last request reached Redis.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn record<T>(&self, r: redis::RedisResult<T>) -> Result<T, StoreError> {
        // A refused command still means Redis answered.
        let answered = r.as_ref().err().is_none_or(|e| !retryable(e));
        self.healthy.store(answered, Ordering::Relaxed);
        r.map_err(classify)
    }

    async fn append_once(&self, msg: &NewMessage) -> redis::RedisResult<Value> {
        let room = msg.room.as_str();
        let id = msg.client_id.as_deref().unwrap_or("");
        let candidate = new_epoch();
        self.append
            .key(keys::EPOCH)
            .key(keys::room_seq(&msg.room))
            .key(keys::room_log(&msg.room))
            .key(keys::message_id(&msg.room, &msg.sender, id))
            .arg(candidate)
            .arg(&msg.name)
            .arg(&msg.text)
            .arg(msg.ts)
            .arg(id)
            .arg(self.config.max_messages)
            .arg(self.config.dedup_ttl.as_secs().max(1))
            .arg(room)
            .arg(keys::CHAT_CHANNEL)
            .arg(msg.key.as_deref().unwrap_or(""))
            .invoke_async(&mut self.conn.clone())
            .await
    }

    fn parse_appended(&self, reply: Value) -> Result<Appended, StoreError> {
        let (epoch, seq, ts, duplicate): (String, u64, u64, u8) =
            redis::from_redis_value(reply).map_err(|e| corrupt(format!("append reply: {e}")))?;
        self.note_epoch(epoch);
        Ok(Appended {
            seq,
            ts,
            duplicate: duplicate == 1,
        })
    }

    /// Adopts the epoch Redis holds. It differs from ours only if Redis lost its data (or was
    /// replaced): seqs restarted, so clients must learn that their positions are from an older
    /// history.
    pub fn note_epoch(&self, epoch: String) {
        self.epoch.send_if_modified(|current| {
            if *current == epoch {
                return false;
            }
            tracing::warn!(old = %*current, new = %epoch, "history epoch changed in Redis");
            *current = epoch;
            true
        });
    }

    /// Tells of every change of the history's epoch (Redis lost its data).
    pub fn epoch_changes(&self) -> watch::Receiver<String> {
        self.epoch.subscribe()
    }

    async fn range(
        &self,
        cmd: &str,
        room: &RoomId,
        from: String,
        to: String,
        limit: usize,
    ) -> Result<Vec<ChatMsg>, StoreError> {
        let reply: redis::RedisResult<StreamRangeReply> = redis::cmd(cmd)
            .arg(keys::room_log(room))
            .arg(from)
            .arg(to)
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await;
        let reply = self.record(reply)?;
        reply
            .ids
            .into_iter()
            .map(|entry| decode_entry(room, entry))
            .collect()
    }
}

impl Store for RedisStore {
    fn epoch(&self) -> String {
        self.epoch.borrow().clone()
    }

    fn append(&self, msg: NewMessage) -> BoxFuture<'_, Result<Appended, StoreError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + self.config.retry;
            let mut backoff = BACKOFF_MIN;
            loop {
                match self.append_once(&msg).await {
                    Ok(reply) => {
                        self.healthy.store(true, Ordering::Relaxed);
                        return self.parse_appended(reply);
                    }
                    Err(e) if retryable(&e) && tokio::time::Instant::now() < deadline => {
                        self.healthy.store(false, Ordering::Relaxed);
                        tracing::debug!(error = %e, "append failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    Err(e) => {
                        self.healthy.store(!retryable(&e), Ordering::Relaxed);
                        return Err(classify(e));
                    }
                }
            }
        })
    }

    fn read_after(
        &self,
        room: &RoomId,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ChatMsg>, StoreError>> {
        let room = room.clone();
        Box::pin(async move {
            let from = format!("{}-0", after.saturating_add(1));
            self.range("XRANGE", &room, from, "+".into(), limit).await
        })
    }

    fn history_page(
        &self,
        room: &RoomId,
        before: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<(Vec<ChatMsg>, Bounds), StoreError>> {
        let room = room.clone();
        Box::pin(async move {
            let mut page = if before <= 1 || limit == 0 {
                Vec::new()
            } else {
                let to = format!("{}-0", before - 1);
                self.range("XREVRANGE", &room, to, "-".into(), limit)
                    .await?
            };
            page.reverse();
            Ok((page, self.bounds(&room).await?))
        })
    }

    fn bounds(&self, room: &RoomId) -> BoxFuture<'_, Result<Bounds, StoreError>> {
        let room = room.clone();
        Box::pin(async move {
            // The epoch is (re)made here too, so a Redis that lost its data is noticed by the
            // next resume, not only by the next append.
            let reply: redis::RedisResult<(String, Option<u64>, StreamRangeReply)> =
                with_epoch(redis::pipe().atomic())
                    .get(keys::room_seq(&room))
                    .cmd("XRANGE")
                    .arg(keys::room_log(&room))
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut self.conn.clone())
                    .await;
            let (epoch, last, oldest) = self.record(reply)?;
            self.note_epoch(epoch);
            let last = last.unwrap_or(0);
            let first = match oldest.ids.first() {
                Some(entry) => seq_of(&entry.id)?,
                None => last + 1,
            };
            Ok(Bounds { first, last })
        })
    }

    fn put_latest(&self, latest: Latest) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let value = format!("{}:{}", latest.ts, latest.data);
            let reply: redis::RedisResult<()> = redis::cmd("HSET")
                .arg(keys::room_latest(&latest.room))
                .arg(&latest.key)
                .arg(value)
                .query_async(&mut self.conn.clone())
                .await;
            self.record(reply)
        })
    }

    fn latest(&self, room: &RoomId) -> BoxFuture<'_, Result<Vec<Latest>, StoreError>> {
        let room = room.clone();
        Box::pin(async move {
            let reply: redis::RedisResult<std::collections::BTreeMap<String, String>> =
                redis::cmd("HGETALL")
                    .arg(keys::room_latest(&room))
                    .query_async(&mut self.conn.clone())
                    .await;
            self.record(reply)?
                .into_iter()
                .map(|(key, value)| {
                    let (ts, data) = value
                        .split_once(':')
                        .and_then(|(ts, data)| Some((ts.parse().ok()?, data.to_owned())))
                        .ok_or_else(|| {
                            corrupt(format!("latest value of {key:?} is not ts:json"))
                        })?;
                    Ok(Latest {
                        room: room.clone(),
                        key,
                        data,
                        ts,
                    })
                })
                .collect()
        })
    }
}

/// Connection trouble is worth retrying; a script or type error is not.
fn retryable(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
                | redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain)
        )
}

fn seq_of(id: &str) -> Result<u64, StoreError> {
    id.split_once('-')
        .and_then(|(seq, _)| seq.parse().ok())
        .ok_or_else(|| corrupt(format!("unexpected stream id {id:?}")))
}

fn decode_entry(room: &RoomId, entry: redis::streams::StreamId) -> Result<ChatMsg, StoreError> {
    let field = |name: &str| -> Result<String, StoreError> {
        entry
            .get::<String>(name)
            .ok_or_else(|| corrupt(format!("stream entry lacks {name:?}")))
    };
    let id = field("id")?;
    Ok(ChatMsg {
        room: room.to_string(),
        seq: seq_of(&entry.id)?,
        name: field("n")?,
        msg: field("t")?,
        id: (!id.is_empty()).then_some(id),
        ts: field("ts")?
            .parse()
            .map_err(|_| corrupt("stream entry has a bad ts"))?,
        key: entry.get::<String>("k"),
    })
}

/// Adds to a pipeline: create the history's epoch if Redis has none (a fresh or wiped Redis),
/// then read it. The epoch is the first value of the pipeline's reply.
pub fn with_epoch(pipe: &mut redis::Pipeline) -> &mut redis::Pipeline {
    pipe.cmd("SET")
        .arg(keys::EPOCH)
        .arg(new_epoch())
        .arg("NX")
        .ignore()
        .get(keys::EPOCH)
}

fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("redis: {e}"))
}

/// Connection trouble (and a Redis out of memory) may pass; an error Redis gives for the
/// command itself (a key of the wrong type, a value that is not a number) comes back on every
/// retry: the data is not what this server wrote.
pub(crate) fn classify(e: redis::RedisError) -> StoreError {
    if retryable(&e) || e.to_string().contains("OOM") {
        unavailable(e)
    } else {
        corrupt(e)
    }
}
