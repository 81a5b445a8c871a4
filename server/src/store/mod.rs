//! Durable, ordered chat history.
//!
//! A [`Store`] assigns every message of a room its `seq` (monotonic and gap-free per room),
//! deduplicates by the client's message id, and reports each commit, in `seq` order, to the
//! hub for fan-out. A message is acknowledged only after its commit returns. The interface
//! has no SQLite in it, so a clustered store (Redis Streams, with ids assigned atomically by a
//! script) can implement the same contract.

pub mod redis;
pub mod sqlite;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use shared::{ChatMsg, RoomId, SessionId};
use thiserror::Error;

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room: RoomId,
    pub name: String,
    pub text: String,
    /// Who sent it, as a stable opaque key ([`crate::hub::Identity::key`]): message ids are
    /// chosen by clients (often a counter), so they are unique only per sender.
    pub sender: String,
    /// The client's id for the message; a second append with the same sender and id in the
    /// same room returns the first one's position and stores nothing.
    pub client_id: Option<String>,
    /// Server time, milliseconds since the Unix epoch.
    pub ts: u64,
    /// A durable data publication instead of a chat message: its key (`text` is its JSON).
    pub key: Option<String>,
    /// The session that sent it, when one did (not the HTTP API). A session hands the store
    /// messages without waiting for their commits; once one of them fails for a while
    /// (`Unavailable`), none of its later ones may be stored: the client resends from the one
    /// that failed, and they would land ahead of it.
    pub origin: Option<SessionId>,
}

/// Where a message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub ts: u64,
    /// The id had been stored before: nothing new was stored or published.
    pub duplicate: bool,
}

/// The seqs a room's history holds: `first..=last` (empty when `first > last`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds {
    /// The oldest seq still stored (retention removes older ones).
    pub first: u64,
    /// The newest seq ever assigned in the room (0 if none).
    pub last: u64,
}

/// Why the store could not serve a request. The variants say whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// Transient: the store is unreachable, busy or out of space. The same request may succeed
    /// later (a client resends from its outbox; the message id makes a resend harmless).
    #[error("history store unavailable: {0}")]
    Unavailable(String),
    /// Permanent for this request: the store refused it (a constraint, a policy trigger, a
    /// value it cannot hold). Sending it again fails again.
    #[error("history store refused the message: {0}")]
    Rejected(String),
    /// The stored data is damaged or not what this server expects. Needs an operator; retrying
    /// does not help.
    #[error("history store corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// A short label for logs and the `switchboard_store_errors_total{kind}` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Rejected(_) => "rejected",
            Self::Corrupt(_) => "corrupt",
        }
    }
}

/// A submitted message's commit ([`Store::submit`]): resolves once the message is stored (or
/// refused), and needs nothing borrowed to get there. `Sync` so that a session holding some
/// can be borrowed across its awaits.
pub type Commit = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Appended, StoreError>> + Send + Sync>,
>;

/// Called after each commit with the newly stored messages, in `seq` order per room.
pub type CommitListener = Arc<dyn Fn(Vec<ChatMsg>) + Send + Sync>;

/// Retention per room. Zero means no limit.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Messages kept per room; older ones are removed as new ones are committed.
    pub max_messages: u64,
    /// Messages older than this are removed, checked after a commit at most every `prune_every`.
    pub max_age_ms: u64,
    pub prune_every: std::time::Duration,
}

pub trait Store: Send + Sync + 'static {
    /// The history's identity, made when it was created. It changes only if the history is
    /// lost and started again (e.g. a Redis server that restarted without its data).
    fn epoch(&self) -> String;

    /// Stores a message (or finds its earlier copy by client id). Resolves after the commit.
    fn append(&self, msg: NewMessage) -> BoxFuture<'_, Result<Appended, StoreError>>;

    /// Hands a message to the store and returns its [`Commit`], to be awaited apart: a session
    /// goes on reading while its earlier messages commit. Messages one caller submits are
    /// stored in the order it submits them. Resolves once the message is queued (waiting while
    /// the store's queue is full). The default appends before it returns, for a store that
    /// cannot keep a caller's order otherwise.
    #[expect(clippy::async_yields_async, reason = "queued now, committed later")]
    fn submit(&self, msg: NewMessage) -> BoxFuture<'_, Commit> {
        Box::pin(async move {
            let outcome = self.append(msg).await;
            Box::pin(std::future::ready(outcome)) as Commit
        })
    }

    /// Up to `limit` messages with `seq > after`, oldest first.
    fn read_after(
        &self,
        room: &RoomId,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ChatMsg>, StoreError>>;

    /// A page of older history for the HTTP API: up to `limit` messages with `seq < before`,
    /// oldest first (the newest such ones), and the room's bounds. Served apart from the
    /// sessions' reads, so a flood of history requests cannot hold up joins and resumes.
    fn history_page(
        &self,
        room: &RoomId,
        before: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<(Vec<ChatMsg>, Bounds), StoreError>>;

    fn bounds(&self, room: &RoomId) -> BoxFuture<'_, Result<Bounds, StoreError>>;

    /// Keeps `data` (JSON text) as the latest value of `key` in the room (a `latest` data
    /// publication), replacing the one before.
    fn put_latest(&self, latest: Latest) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The latest value of every key in the room, by key.
    fn latest(&self, room: &RoomId) -> BoxFuture<'_, Result<Vec<Latest>, StoreError>>;
}

/// The latest value of a key in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    pub room: RoomId,
    pub key: String,
    /// JSON text.
    pub data: String,
    /// When it was published, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// A room's stored messages with `after < seq <= upto`, read page by page: a session's replay
/// and a cluster node's catch-up both read history this way.
///
/// Every page moves the cursor past what it returned, and a page that finds nothing in the
/// range ends it. So a range whose rest retention deletes meanwhile (the store then returns
/// only messages newer than `upto`, or none) ends instead of reading the same page forever.
#[derive(Debug, Clone)]
pub struct Range {
    room: RoomId,
    cursor: u64,
    upto: u64,
}

impl Range {
    pub fn new(room: RoomId, after: u64, upto: u64) -> Self {
        Self {
            room,
            cursor: after,
            upto,
        }
    }

    /// The next page of at most `page` messages, or `None` when the range is exhausted.
    pub async fn next_page(
        &mut self,
        store: &dyn Store,
        page: usize,
    ) -> Result<Option<Vec<ChatMsg>>, StoreError> {
        if self.cursor >= self.upto {
            return Ok(None);
        }
        let want = (self.upto - self.cursor).min(page.max(1) as u64) as usize;
        let cursor = self.cursor;
        let found: Vec<ChatMsg> = store
            .read_after(&self.room, cursor, want)
            .await?
            .into_iter()
            .filter(|m| m.seq > cursor && m.seq <= self.upto)
            .collect();
        match found.last() {
            Some(last) => {
                self.cursor = last.seq;
                Ok(Some(found))
            }
            None => {
                self.cursor = self.upto;
                Ok(None)
            }
        }
    }
}
