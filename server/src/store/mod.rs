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
use shared::{ChatMsg, RoomId};
use thiserror::Error;

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room: RoomId,
    pub name: String,
    pub text: String,
    /// The client's id for the message; a second append with the same id in the same room
    /// returns the first one's position and stores nothing.
    pub client_id: Option<String>,
    /// Server time, milliseconds since the Unix epoch.
    pub ts: u64,
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

#[derive(Debug, Clone, Error)]
pub enum StoreError {
    #[error("history store unavailable: {0}")]
    Unavailable(String),
}

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

    /// Up to `limit` messages with `seq > after`, oldest first.
    fn read_after(
        &self,
        room: &RoomId,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ChatMsg>, StoreError>>;

    /// Up to `limit` messages with `seq < before`, oldest first (the newest such ones).
    fn read_before(
        &self,
        room: &RoomId,
        before: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ChatMsg>, StoreError>>;

    fn bounds(&self, room: &RoomId) -> BoxFuture<'_, Result<Bounds, StoreError>>;
}
