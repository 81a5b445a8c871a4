//! The hub: rooms, who holds which name, presence, and fan-out.
//!
//! Every session owns a bounded outbound queue drained by its writer task; the hub only ever
//! `try_send`s into it, so a client that stops reading never delays a room. When a queue is full
//! the policy is to drop that client: it is kicked with close code
//! [`SLOW_CONSUMER`](shared::close_code::SLOW_CONSUMER), its backlog is discarded, and it
//! reconnects and resumes from its last `seq`. Each broadcast is serialized once and shared by
//! reference count.
//!
//! Chat messages reach the hub from the store, after their commit, in `seq` order
//! ([`Hub::publish_committed`]). A session that is replaying history holds live frames back
//! until its replay is queued ([`Hub::go_live`]), so it sees no gap and no duplicate.
//!
//! A name is held by a token (one person, any number of tabs). When its last connection goes,
//! the name stays held, and the member shown with 0 connections, for the grace period; a
//! reconnect within it takes the name back without a leave/join flicker.
//!
//! Clustered (`--redis-url`), a [`Backplane`], handed to the hub when it is made, carries names
//! and typing notices to the other nodes, and [`Hub::set_remote`] merges the other nodes'
//! members into each room's presence. Every session remembers the last chat `seq` it was given
//! and skips anything not newer, so a message that reaches the node twice (a live copy and a
//! catch-up read) is delivered once.
//!
//! # Layout
//! - this file — the registry: sessions and rooms, registering and unregistering a session.
//! - [`names`] — who holds a name, the grace period, releasing it.
//! - [`presence`] — a room's members, merged with other nodes', and the changes announced.
//! - [`typing`] — typing notices, throttled, never stored.
//! - [`delivery`] — fan-out through bounded queues, the slow-consumer policy, replay hold-back.
//! - [`stats`] — the live feed and its recent history.
//!
//! Each room is behind its own lock ([`Hub`] lists the locks and their order): a message's
//! fan-out locks its room only, so rooms deliver on several cores at once.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use shared::{ChatMsg, Member, RoomId, ServerMsg, SessionId, Stats, Username, close_code};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::kick::Kick;
use crate::metrics::Metrics;
use crate::outbox;

mod delivery;
mod names;
mod presence;
pub use presence::PresenceOptions;
mod stats;
mod typing;
pub mod users;

use delivery::deliver;
pub use delivery::{drop_slow_consumer, encode, entry_frame};

/// A chat message's `seq` and commit time, carried with its frame.
type Committed = (u64, Instant);

/// What a live frame is, for its delivery.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Live {
    /// Any other frame (presence, typing, a `latest` data point, …).
    Frame,
    /// A stored entry with its `seq` and commit time: a chat message, or a durable data point
    /// (`data`). Skipped when the session has it already; held back during a replay.
    Entry(Committed, bool),
    /// A volatile data point: never held back, and dropped rather than queued when the
    /// session's queue is half full (the first thing a slow reader loses).
    Volatile,
}

/// What a writer task sends.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A serialized [`ServerMsg`], shared between every recipient.
    Frame(Utf8Bytes),
    /// A serialized chat message and when it was committed (for the delivery-latency metric).
    Chat(Utf8Bytes, Instant),
    /// A serialized chat message from history (a replay).
    History(Utf8Bytes),
    /// A serialized data publication (live or replayed): for typed clients only (a plain
    /// client could not display it).
    Data(Utf8Bytes),
    /// A notice for a plain client: an object with string `name` and `msg`, like a chat
    /// message, so a tutorial page can show it.
    Notice(Utf8Bytes),
    /// A heartbeat ping.
    Ping,
}

/// Who holds a name in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A client's secret token: its reconnects and other tabs share the name.
    Token(String),
    /// A user of a signed token (its `sub`): the user's connections share the name, and
    /// nobody else can take it.
    User(String),
    /// A client without a token: the name belongs to this session alone.
    Session(SessionId),
}

impl Identity {
    /// A stable key for this identity that does not reveal a token: what holds a name in
    /// Redis, and whose message ids are deduplicated together. `instance` tells sessions of
    /// different server processes apart (session numbers restart with the process).
    ///
    /// SHA-256, not `DefaultHasher`: the key crosses processes and releases (nodes built by
    /// different compilers must agree during a rolling upgrade, and keys are stored).
    pub fn key(&self, instance: &str) -> String {
        match self {
            Self::Token(token) => format!("t:{}", digest_hex(token)),
            Self::User(sub) => format!("u:{}", digest_hex(sub)),
            Self::Session(session) => format!("s:{instance}:{session}"),
        }
    }
}

/// The first 16 bytes of a SHA-256, in hex.
fn digest_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hub's handle on one subscription (a v2 or plain session, or one room of a v3
/// connection). It lives in its room.
#[derive(Debug)]
struct Subscriber {
    /// The connection this subscription belongs to (a v3 connection has one per room).
    connection: SessionId,
    identity: Identity,
    name: Option<Username>,
    tx: outbox::Sender<Outbound>,
    kick: Kick,
    /// Receives the once-a-second live feed.
    feed: bool,
    /// While the session replays history, live frames wait here (with the `seq` of chat frames).
    held: Option<Vec<(Live, Utf8Bytes)>>,
    /// The newest chat `seq` queued for this session; older or equal ones are skipped.
    last_seq: u64,
    last_typing: Option<Instant>,
    /// The room's presence announcements when it registered, and its own name's connections
    /// in the snapshot it was given then: a single change that only says what that snapshot
    /// said is not sent to it (see `presence::Pending`).
    presence_since: (u64, Option<u32>),
    /// See [`Registration::batches`].
    batches: bool,
}

#[derive(Debug)]
struct Holder {
    identity: Identity,
    connections: u32,
    /// Bumped on every claim, so a pending release of an earlier disconnect does nothing.
    generation: u64,
}

/// One room: its subscribers and the names held in it, behind the room's own lock.
#[derive(Debug, Default)]
struct Room {
    subscribers: HashMap<SessionId, Subscriber>,
    names: BTreeMap<Username, Holder>,
    /// It emptied: marked under its own lock, then taken out of the registry; whoever locks
    /// it meanwhile looks it up again (and finds a fresh room).
    closed: bool,
    /// Presence changes waiting for the room's next announcement.
    presence: presence::Pending,
}

/// Members held on other nodes, by room: name → connections there.
pub type RemoteMembers = HashMap<RoomId, BTreeMap<Username, u32>>;

/// A room behind its lock, shared by the registry and whoever is working in it.
type RoomCell = Arc<Mutex<Room>>;

/// What the hub tells the other nodes of a cluster. Handed to the hub when it is made; the
/// cluster reads what it is told from its own end, so nothing calls back into the hub.
pub trait Backplane: Send + Sync + std::fmt::Debug {
    /// The last local holder of a name let it go; `holder` is its cluster-wide key
    /// ([`Identity::key`] on this node).
    fn released(&self, room: &RoomId, name: &Username, holder: String);
    /// A local member is typing.
    fn typing(&self, room: &RoomId, name: &Username);
}

/// Locks, in the only orders they are taken (so none can deadlock):
/// - `rooms` (the registry) is held only to look a room up, add one or remove a closed one,
///   never while a room is locked or waited for. A room found empty under its own lock is
///   marked closed there, and taken out of the registry after.
/// - a room's lock is taken with no other room's lock held; inside it, `remote` and
///   `recent_stats` may be read briefly.
/// - `index` is never held while a room is locked or waited for.
///
/// A message's fan-out takes only its room's lock: rooms deliver in parallel.
#[derive(Debug)]
pub struct Hub {
    /// The rooms with anyone in them on this node (a subscriber or a held name).
    rooms: RwLock<HashMap<RoomId, RoomCell>>,
    /// Which room each subscription is in.
    index: RwLock<HashMap<SessionId, RoomId>>,
    /// Members other nodes hold (clustered), replaced on every presence refresh.
    remote: RwLock<RemoteMembers>,
    recent_stats: Mutex<VecDeque<Stats>>,
    /// This process's random id: tells its sessions apart from other processes' (a cluster's
    /// other nodes, or this server before a restart).
    instance: String,
    next_session: AtomicU64,
    metrics: Arc<Metrics>,
    started: Instant,
    stats_history: usize,
    /// How long a name stays held after its last connection goes.
    grace: Duration,
    /// Most frames held back for one replaying session before it counts as a slow consumer.
    held_limit: usize,
    /// The cluster's ear, when clustered.
    backplane: Option<Arc<dyn Backplane>>,
    /// Users of signed tokens: their connections here, and who was signed out.
    pub users: users::Users,
    presence: PresenceOptions,
    /// The hub itself, for the tasks it starts (a batch of presence changes due later).
    me: std::sync::Weak<Hub>,
}

/// Another person holds the name in this room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTaken;

/// What a new session needs to register.
#[derive(Debug)]
pub struct Registration {
    /// The connection registering: the session itself in v2, the v3 connection that joins.
    pub connection: SessionId,
    pub room: RoomId,
    pub name: Option<Username>,
    pub identity: Identity,
    pub tx: outbox::Sender<Outbound>,
    pub kick: Kick,
    pub feed: bool,
    /// Takes `presence_batch` (v3, and plain sessions, which see no presence at all). A v2
    /// session, from before batches, gets each change of a batch as its own `joined`,
    /// `presence` or `left`.
    pub batches: bool,
}

/// What the session learns from registering, to build its welcome.
#[derive(Debug)]
pub struct Snapshot {
    /// The room's members, or the first page of a room too large to list.
    pub members: Vec<Member>,
    /// How many members the room has.
    pub online: u32,
    pub recent_stats: Vec<Stats>,
}

fn lock_room(cell: &Mutex<Room>) -> MutexGuard<'_, Room> {
    cell.lock().expect("room lock poisoned")
}

impl Hub {
    pub fn new(
        stats_history: usize,
        grace: Duration,
        held_limit: usize,
        metrics: Arc<Metrics>,
        backplane: Option<Arc<dyn Backplane>>,
        presence: PresenceOptions,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            rooms: RwLock::default(),
            index: RwLock::default(),
            remote: RwLock::default(),
            recent_stats: Mutex::default(),
            instance: format!("{:016x}", rand::random::<u64>()),
            next_session: AtomicU64::new(1),
            metrics,
            started: Instant::now(),
            stats_history,
            grace,
            held_limit,
            backplane,
            users: users::Users::default(),
            presence,
            me: me.clone(),
        })
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// This process's random id (a cluster node's id).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn next_session_id(&self) -> SessionId {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// The room's cell, if anyone is in it.
    fn room(&self, id: &RoomId) -> Option<RoomCell> {
        self.rooms
            .read()
            .expect("room registry poisoned")
            .get(id)
            .cloned()
    }

    /// The room's cell, made if needed. Whoever locks it must check `closed`.
    fn room_or_create(&self, id: &RoomId) -> RoomCell {
        if let Some(cell) = self.room(id) {
            return cell;
        }
        self.rooms
            .write()
            .expect("room registry poisoned")
            .entry(id.clone())
            .or_default()
            .clone()
    }

    /// Every room's cell (looked at one by one, never two locked at once).
    fn all_rooms(&self) -> Vec<(RoomId, RoomCell)> {
        self.rooms
            .read()
            .expect("room registry poisoned")
            .iter()
            .map(|(id, cell)| (id.clone(), cell.clone()))
            .collect()
    }

    /// Runs `f` in the room of subscription `session`, under that room's lock.
    fn with_subscription<R>(
        &self,
        session: SessionId,
        f: impl FnOnce(&RoomId, &mut Room) -> R,
    ) -> Option<R> {
        let room_id = self
            .index
            .read()
            .expect("subscription index poisoned")
            .get(&session)?
            .clone();
        let cell = self.room(&room_id)?;
        let mut room = lock_room(&cell);
        if !room.subscribers.contains_key(&session) {
            return None; // it unregistered meanwhile
        }
        Some(f(&room_id, &mut room))
    }

    /// Lets go of a room's lock. A room left empty (no subscriber, no held name) is marked
    /// closed under the lock, so whoever locks it next looks it up again, and taken out of the
    /// registry once the lock is released.
    fn unlock_room(&self, id: &RoomId, cell: &RoomCell, mut room: MutexGuard<'_, Room>) {
        if room.subscribers.is_empty() && room.names.is_empty() {
            room.closed = true;
        }
        let closed = room.closed;
        drop(room);
        if closed {
            self.forget_room(id, cell);
        }
    }

    /// Takes a closed room out of the registry (if it is still this cell). Never waits for a
    /// room's lock while holding the registry: a busy room cannot hold up the others.
    fn forget_room(&self, id: &RoomId, cell: &RoomCell) {
        let mut rooms = self.rooms.write().expect("room registry poisoned");
        if rooms.get(id).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            rooms.remove(id);
        }
    }

    /// Adds a session to its room, holding live frames back until [`go_live`](Self::go_live),
    /// and announces it to the others.
    pub fn register(&self, session: SessionId, reg: Registration) -> Result<Snapshot, NameTaken> {
        let (members, online) = loop {
            let cell = self.room_or_create(&reg.room);
            let mut room = lock_room(&cell);
            if room.closed {
                // Emptied between the lookup and the lock: make sure it is gone, then retry.
                drop(room);
                self.forget_room(&reg.room, &cell);
                continue;
            }
            if let Some(name) = &reg.name
                && room.claim(&reg.room, name, &reg.identity, self).is_err()
            {
                self.unlock_room(&reg.room, &cell, room);
                return Err(NameTaken);
            }
            let own = reg
                .name
                .as_ref()
                .and_then(|name| room.connections_of(&reg.room, name, self));
            let presence_since = (room.presence.flushes, own);
            room.subscribers.insert(
                session,
                Subscriber {
                    connection: reg.connection,
                    identity: reg.identity.clone(),
                    name: reg.name.clone(),
                    tx: reg.tx.clone(),
                    kick: reg.kick.clone(),
                    feed: reg.feed,
                    held: Some(Vec::new()),
                    last_seq: 0,
                    last_typing: None,
                    presence_since,
                    batches: reg.batches,
                },
            );
            break self.snapshot_members(&reg.room, &mut room);
        };
        self.index
            .write()
            .expect("subscription index poisoned")
            .insert(session, reg.room);
        let recent_stats = self.recent_stats().iter().cloned().collect();
        Ok(Snapshot {
            members,
            online,
            recent_stats,
        })
    }

    /// Removes a session. Its name is released after the grace period unless claimed again, or
    /// at once if the client `left` on purpose.
    pub fn unregister(self: &Arc<Self>, session: SessionId, left: bool) {
        let Some(room_id) = self
            .index
            .write()
            .expect("subscription index poisoned")
            .remove(&session)
        else {
            return;
        };
        let Some(cell) = self.room(&room_id) else {
            return;
        };
        let mut room = lock_room(&cell);
        let Some(sub) = room.subscribers.remove(&session) else {
            return;
        };
        if let Some(name) = &sub.name
            && room.names.contains_key(name)
        {
            room.before_change(&room_id, name, self);
            let holder = room.names.get_mut(name).expect("held, checked above");
            holder.connections = holder.connections.saturating_sub(1);
            let (connections, generation) = (holder.connections, holder.generation);
            // A tokenless session's name cannot be reclaimed, so it goes at once.
            let keep = connections == 0
                && !left
                && matches!(holder.identity, Identity::Token(_))
                && !self.grace.is_zero();
            if connections > 0 || keep {
                self.presence_changed(&room_id, &mut room);
            }
            if keep {
                let hub = Arc::clone(self);
                let (room_id, name) = (room_id.clone(), name.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(hub.grace).await;
                    hub.release(&room_id, &name, generation);
                });
            } else if connections == 0 {
                drop(room);
                self.release(&room_id, name, generation);
                return;
            }
        }
        self.unlock_room(&room_id, &cell, room);
    }

    /// Closes every session with `code`; their clients reconnect and resume.
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for (_, cell) in self.all_rooms() {
            for sub in lock_room(&cell).subscribers.values() {
                sub.kick.kick(code, reason, false);
            }
        }
    }

    /// The session's room and who it is.
    pub fn identity(&self, session: SessionId) -> Option<(RoomId, Identity)> {
        self.with_subscription(session, |room_id, room| {
            (room_id.clone(), room.subscribers[&session].identity.clone())
        })
    }

    /// Whether the room has members or sessions on this node now.
    pub fn room_in_use(&self, room: &str) -> bool {
        RoomId::parse(room).is_ok_and(|room| self.room(&room).is_some())
    }

    pub fn room_count(&self) -> usize {
        self.rooms.read().expect("room registry poisoned").len()
    }

    /// Chat connections (a v3 connection in several rooms counts once).
    pub fn session_count(&self) -> usize {
        self.connection_count()
    }

    /// Distinct connections among the subscriptions of every room.
    fn connection_count(&self) -> usize {
        let mut connections = std::collections::HashSet::new();
        for (_, cell) in self.all_rooms() {
            connections.extend(lock_room(&cell).subscribers.values().map(|s| s.connection));
        }
        connections.len()
    }

    fn recent_stats(&self) -> MutexGuard<'_, VecDeque<Stats>> {
        self.recent_stats.lock().expect("stats lock poisoned")
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::typing::TYPING_THROTTLE;
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);

    struct Peer {
        rx: outbox::Receiver<Outbound>,
    }

    impl Peer {
        fn next(&mut self) -> Option<ServerMsg> {
            match self.rx.try_recv().ok()? {
                Outbound::Frame(f)
                | Outbound::Chat(f, _)
                | Outbound::History(f)
                | Outbound::Data(f)
                | Outbound::Notice(f) => Some(serde_json::from_str(f.as_str()).unwrap()),
                Outbound::Ping => self.next(),
            }
        }

        /// Everything queued, in a stable order (for announcements whose order does not
        /// matter).
        fn drain_sorted(&mut self) -> Vec<ServerMsg> {
            let mut got: Vec<ServerMsg> = std::iter::from_fn(|| self.next()).collect();
            got.sort_by_key(|m| format!("{m:?}"));
            got
        }
    }

    /// A registration in room "r" (feed off), and the receiving end of its queue.
    fn registration(name: Option<&str>, identity: Identity) -> (Registration, Peer) {
        let (tx, rx) = outbox::channel(64);
        let reg = Registration {
            connection: 0,
            room: RoomId::parse("r").unwrap(),
            name: name.map(|n| Username::parse(n, 32).unwrap()),
            identity,
            tx,
            kick: Kick::default(),
            feed: false,
            batches: true,
        };
        (reg, Peer { rx })
    }

    /// Joins room "r" as `name` held by `token`, already live.
    fn join(hub: &Hub, name: &str, token: &str) -> (SessionId, Peer) {
        let session = hub.next_session_id();
        let (reg, peer) = registration(Some(name), Identity::Token(token.into()));
        hub.register(session, reg).expect("registered");
        hub.go_live(session, 0);
        (session, peer)
    }

    /// A chat message in room "r".
    fn chat(seq: u64) -> ChatMsg {
        ChatMsg {
            room: "r".into(),
            seq,
            name: "x".into(),
            msg: format!("m{seq}"),
            id: None,
            ts: 0,
            key: None,
        }
    }

    fn member(name: &str, connections: u32) -> Member {
        Member {
            name: name.into(),
            connections,
        }
    }

    /// Each room has its own lock: while one room is locked (a long fan-out, say), another
    /// room's messages are delivered and its members come and go.
    #[test]
    fn a_locked_room_does_not_hold_up_another_rooms_delivery() {
        let hub = Hub::new(
            60,
            GRACE,
            256,
            Metrics::new(),
            None,
            PresenceOptions::IMMEDIATE,
        );
        let (_ada, _) = join(&hub, "ada", "ada-token");
        let busy = hub.room(&RoomId::parse("r").unwrap()).expect("room r");
        let (tx, rx) = outbox::channel(64);
        let other = hub.next_session_id();
        let reg = Registration {
            connection: other,
            room: RoomId::parse("other").unwrap(),
            name: Some(Username::parse("bob", 32).unwrap()),
            identity: Identity::Token("bob-token".into()),
            tx,
            kick: Kick::default(),
            feed: false,
            batches: true,
        };
        let mut bob = Peer { rx };
        let guard = lock_room(&busy);
        // On another thread: with one lock for every room it would wait for `guard`, and the
        // bounded wait below fails the test instead of hanging it.
        let (done, finished) = std::sync::mpsc::channel();
        let elsewhere = Arc::clone(&hub);
        std::thread::spawn(move || {
            elsewhere.register(other, reg).expect("registered");
            elsewhere.go_live(other, 0);
            elsewhere.publish_committed(vec![ChatMsg {
                room: "other".into(),
                ..chat(1)
            }]);
            let _ = done.send(bob.next());
        });
        let delivered = finished
            .recv_timeout(Duration::from_secs(30))
            .expect("room \"other\" waited for room \"r\"'s lock");
        assert!(
            matches!(&delivered, Some(ServerMsg::Chat(c)) if c.room == "other" && c.seq == 1),
            "{delivered:?}"
        );
        drop(guard);
    }

    #[test]
    fn identity_keys_are_stable_across_builds_and_never_show_the_token() {
        // SHA-256 of the token, fixed by the algorithm, not by this build's hasher.
        let key = Identity::Token("ada-token-0123456789".into()).key("node1");
        assert_eq!(key, "t:89523b5c13b62be2f8c37c181300f9f2");
        assert!(!key.contains("ada"));
        assert_eq!(Identity::Session(7).key("node1"), "s:node1:7");
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_is_released_exactly_when_the_grace_period_ends() {
        let hub = Hub::new(
            60,
            GRACE,
            256,
            Metrics::new(),
            None,
            PresenceOptions::IMMEDIATE,
        );
        let (_bob, mut bob_rx) = join(&hub, "bob", "bob-token");
        let (ada, _) = join(&hub, "ada", "ada-token");
        assert_eq!(
            bob_rx.next(),
            Some(ServerMsg::Joined {
                room: "r".into(),
                member: member("ada", 1)
            })
        );
        hub.unregister(ada, false);
        assert_eq!(
            bob_rx.next(),
            Some(ServerMsg::Presence {
                room: "r".into(),
                member: member("ada", 0)
            })
        );
        tokio::time::sleep(GRACE - Duration::from_millis(10)).await;
        assert_eq!(bob_rx.next(), None, "released early");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            bob_rx.next(),
            Some(ServerMsg::Left {
                room: "r".into(),
                member: member("ada", 0)
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconnect_within_the_grace_period_cancels_the_release() {
        let hub = Hub::new(
            60,
            GRACE,
            256,
            Metrics::new(),
            None,
            PresenceOptions::IMMEDIATE,
        );
        let (_bob, mut bob_rx) = join(&hub, "bob", "bob-token");
        let (ada, _) = join(&hub, "ada", "ada-token");
        bob_rx.next();
        hub.unregister(ada, false);
        tokio::time::sleep(GRACE / 2).await;
        let (_ada_again, _) = join(&hub, "ada", "ada-token");
        tokio::time::sleep(GRACE).await;
        let events: Vec<_> = std::iter::from_fn(|| bob_rx.next()).collect();
        assert_eq!(
            events,
            [
                ServerMsg::Presence {
                    room: "r".into(),
                    member: member("ada", 0)
                },
                ServerMsg::Presence {
                    room: "r".into(),
                    member: member("ada", 1)
                },
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_on_purpose_releases_at_once_and_other_tokens_are_refused_meanwhile() {
        let hub = Hub::new(
            60,
            GRACE,
            256,
            Metrics::new(),
            None,
            PresenceOptions::IMMEDIATE,
        );
        let (_bob, mut bob_rx) = join(&hub, "bob", "bob-token");
        let (ada, _) = join(&hub, "ada", "ada-token");
        bob_rx.next();
        let (thief, _) = registration(Some("ada"), Identity::Token("eve-token".into()));
        assert!(hub.register(hub.next_session_id(), thief).is_err());
        hub.unregister(ada, true);
        assert_eq!(
            bob_rx.next(),
            Some(ServerMsg::Left {
                room: "r".into(),
                member: member("ada", 0)
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn typing_is_throttled_to_once_a_second_per_session() {
        let hub = Hub::new(
            60,
            GRACE,
            256,
            Metrics::new(),
            None,
            PresenceOptions::IMMEDIATE,
        );
        let (_bob, mut bob_rx) = join(&hub, "bob", "bob-token");
        let (ada, _) = join(&hub, "ada", "ada-token");
        bob_rx.next();
        let typing = || ServerMsg::Typing {
            room: "r".into(),
            name: "ada".into(),
        };
        hub.typing(ada);
        hub.typing(ada);
        assert_eq!(bob_rx.next(), Some(typing()));
        assert_eq!(bob_rx.next(), None);
        tokio::time::sleep(TYPING_THROTTLE).await;
        hub.typing(ada);
        assert_eq!(bob_rx.next(), Some(typing()));
    }

    #[tokio::test]
    async fn a_replaying_session_gets_held_frames_after_its_replay_without_duplicates() {
        let hub = Hub::new(
            60,
            GRACE,
            256,
            Metrics::new(),
            None,
            PresenceOptions::IMMEDIATE,
        );
        let session = hub.next_session_id();
        let (reg, mut peer) = registration(None, Identity::Session(session));
        hub.register(session, reg).unwrap();
        hub.publish_committed(vec![chat(4), chat(5), chat(6)]);
        assert_eq!(peer.next(), None, "held back during the replay");
        // The replay covered up to 5.
        hub.go_live(session, 5);
        assert_eq!(peer.next(), Some(ServerMsg::Chat(chat(6))));
        assert_eq!(peer.next(), None);
        hub.publish_committed(vec![chat(7)]);
        assert_eq!(peer.next(), Some(ServerMsg::Chat(chat(7))));
    }

    #[tokio::test]
    async fn a_message_delivered_twice_reaches_each_session_once_and_floors_track_the_room() {
        let hub = Hub::new(
            60,
            GRACE,
            256,
            Metrics::new(),
            None,
            PresenceOptions::IMMEDIATE,
        );
        let (_, mut ada) = join(&hub, "ada", "token-ada-0123456789");
        hub.publish_committed(vec![chat(1), chat(2)]);
        // A catch-up read overlapping what was already delivered.
        hub.publish_recovered(vec![chat(1), chat(2), chat(3)]);
        let got: Vec<_> = std::iter::from_fn(|| ada.next()).collect();
        let chats: Vec<_> = got
            .into_iter()
            .filter(|m| matches!(m, ServerMsg::Chat(_)))
            .collect();
        assert_eq!(
            chats,
            vec![chat(1), chat(2), chat(3)]
                .into_iter()
                .map(ServerMsg::Chat)
                .collect::<Vec<_>>()
        );
        let room = RoomId::parse("r").unwrap();
        assert_eq!(hub.room_floors(), vec![(room.clone(), 3)]);
        assert_eq!(hub.room_floor(&room), Some(3));
    }

    #[tokio::test]
    async fn members_on_other_nodes_merge_into_presence_and_their_changes_are_announced() {
        let hub = Hub::new(
            60,
            GRACE,
            256,
            Metrics::new(),
            None,
            PresenceOptions::IMMEDIATE,
        );
        let (_, mut ada) = join(&hub, "ada", "token-ada-0123456789");
        while ada.next().is_some() {}
        let room = RoomId::parse("r").unwrap();
        let name = |n: &str| Username::parse(n, 32).unwrap();
        let remote = |entries: &[(&str, u32)]| {
            let mut map = RemoteMembers::new();
            map.insert(
                room.clone(),
                entries.iter().map(|(n, c)| (name(n), *c)).collect(),
            );
            map
        };
        // Bob appears on another node; Ada is also open in a tab there: one announcement.
        hub.set_remote(remote(&[("bob", 1), ("ada", 1)]));
        assert_eq!(
            ada.drain_sorted(),
            vec![ServerMsg::PresenceBatch {
                room: "r".into(),
                online: 2,
                changed: vec![member("ada", 2), member("bob", 1)],
                left: vec![],
                full: false,
            }]
        );
        // A newcomer's snapshot has the merged list.
        let session = hub.next_session_id();
        let (reg, _peer) =
            registration(Some("cy"), Identity::Token("token-cy-0123456789ab".into()));
        let snapshot = hub.register(session, reg).unwrap();
        assert_eq!(
            snapshot.members,
            vec![member("ada", 2), member("bob", 1), member("cy", 1)]
        );
        while ada.next().is_some() {}
        // The other node is gone: Bob leaves, Ada is back to one connection.
        hub.set_remote(RemoteMembers::new());
        assert_eq!(
            ada.drain_sorted(),
            vec![ServerMsg::PresenceBatch {
                room: "r".into(),
                online: 2,
                changed: vec![member("ada", 1)],
                left: vec!["bob".into()],
                full: false,
            }]
        );
    }

    /// A hub with presence announced every 100 ms and rooms of more than `list_max` members
    /// counted, pages of 2.
    fn batching_hub(list_max: usize) -> Arc<Hub> {
        let presence = PresenceOptions {
            interval: Duration::from_millis(100),
            list_max,
            page: 2,
        };
        Hub::new(60, GRACE, 256, Metrics::new(), None, presence)
    }

    #[tokio::test(start_paused = true)]
    async fn changes_after_the_first_wait_for_the_interval_and_go_out_as_one_batch() {
        let hub = batching_hub(100);
        let (_bob, mut bob_rx) = join(&hub, "bob", "bob-token");
        // Bob's own arrival was announced (to nobody) just now: what follows waits.
        let (ada, _) = join(&hub, "ada", "ada-token");
        let (_cy, _) = join(&hub, "cy", "cy-token");
        hub.unregister(ada, true);
        let (_dee, _) = join(&hub, "dee", "dee-token");
        assert_eq!(bob_rx.next(), None, "announced before the interval ended");
        tokio::time::sleep(Duration::from_millis(110)).await;
        // Ada came and went within the interval: no news. One frame for the rest.
        assert_eq!(
            std::iter::from_fn(|| bob_rx.next()).collect::<Vec<_>>(),
            vec![ServerMsg::PresenceBatch {
                room: "r".into(),
                online: 3,
                changed: vec![member("cy", 1), member("dee", 1)],
                left: vec![],
                full: false,
            }]
        );
        // A quiet interval later, a single change goes out at once, as a single frame.
        tokio::time::sleep(Duration::from_millis(110)).await;
        let (_eve, _) = join(&hub, "eve", "eve-token");
        assert_eq!(
            bob_rx.next(),
            Some(ServerMsg::Joined {
                room: "r".into(),
                member: member("eve", 1)
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_too_large_to_list_announces_counts_and_pages_its_members() {
        let hub = batching_hub(3);
        let (_ada, mut ada_rx) = join(&hub, "ada", "ada-token");
        let (_bob, _) = join(&hub, "bob", "bob-token");
        let (_cy, _) = join(&hub, "cy", "cy-token");
        tokio::time::sleep(Duration::from_millis(110)).await;
        while ada_rx.next().is_some() {}
        // The fourth member makes the room too large: a count, no names.
        let (dee, _) = join(&hub, "dee", "dee-token");
        let (eve, _) = join(&hub, "eve", "eve-token");
        // Twice the limit or less: announced every second interval.
        tokio::time::sleep(Duration::from_millis(110)).await;
        assert_eq!(
            ada_rx.next(),
            None,
            "a large room announced at the base interval"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let count = |online| ServerMsg::PresenceBatch {
            room: "r".into(),
            online,
            changed: vec![],
            left: vec![],
            full: false,
        };
        assert_eq!(
            std::iter::from_fn(|| ada_rx.next()).collect::<Vec<_>>(),
            vec![count(5)]
        );
        // A joiner gets the first page and the count.
        let session = hub.next_session_id();
        let (reg, _peer) = registration(Some("fay"), Identity::Token("fay-token".into()));
        let snapshot = hub.register(session, reg).unwrap();
        assert_eq!(snapshot.members, vec![member("ada", 1), member("bob", 1)]);
        assert_eq!(snapshot.online, 6);
        // The pages, in name order, each naming the next.
        let room = RoomId::parse("r").unwrap();
        let (page, online, next) = hub.members_page(&room, None);
        assert_eq!(
            (page, online),
            (vec![member("ada", 1), member("bob", 1)], 6)
        );
        let (page, _, next) = hub.members_page(&room, next.as_deref());
        assert_eq!(page, vec![member("cy", 1), member("dee", 1)]);
        let (page, _, next) = hub.members_page(&room, next.as_deref());
        assert_eq!(
            (page, next.clone()),
            (vec![member("eve", 1), member("fay", 1)], None)
        );
        // Small enough to list again: the whole list, to replace the pages.
        hub.unregister(dee, true);
        hub.unregister(session, true);
        hub.unregister(eve, true);
        tokio::time::sleep(Duration::from_millis(210)).await;
        let got: Vec<_> = std::iter::from_fn(|| ada_rx.next()).collect();
        assert_eq!(
            got.last(),
            Some(&ServerMsg::PresenceBatch {
                room: "r".into(),
                online: 3,
                changed: vec![member("ada", 1), member("bob", 1), member("cy", 1)],
                left: vec![],
                full: true,
            }),
            "{got:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_tab_within_the_interval_is_announced_to_the_first_but_not_to_itself() {
        let hub = batching_hub(100);
        let (_bob, mut bob_rx) = join(&hub, "bob", "bob-token");
        tokio::time::sleep(Duration::from_millis(110)).await;
        // A quiet interval: Ada's first tab is announced at once.
        let (_tab1, mut tab1_rx) = join(&hub, "ada", "ada-token");
        assert_eq!(
            bob_rx.next(),
            Some(ServerMsg::Joined {
                room: "r".into(),
                member: member("ada", 1)
            })
        );
        // Her second tab, within the interval: its snapshot says 2, the first tab's said 1.
        let (_tab2, mut tab2_rx) = join(&hub, "ada", "ada-token");
        tokio::time::sleep(Duration::from_millis(110)).await;
        let two = Some(ServerMsg::Presence {
            room: "r".into(),
            member: member("ada", 2),
        });
        assert_eq!(bob_rx.next(), two);
        assert_eq!(
            tab1_rx.next(),
            two,
            "the first tab would show one connection for good"
        );
        assert_eq!(
            tab2_rx.next(),
            None,
            "the second tab knew from its snapshot"
        );
    }
}
