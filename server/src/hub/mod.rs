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
//! Clustered (`--redis-url`), a [`Backplane`] carries names and typing notices to the other
//! nodes, and [`Hub::set_remote`] merges the other nodes' members into each room's presence.
//! Every session remembers the last chat `seq` it was given and skips anything not newer, so
//! a message that reaches the node twice (a live copy and a catch-up read) is delivered once.
//!
//! # Layout
//! - this file — the registry: sessions and rooms, registering and unregistering a session.
//! - [`names`] — who holds a name, the grace period, releasing it.
//! - [`presence`] — a room's members, merged with other nodes', and the changes announced.
//! - [`typing`] — typing notices, throttled, never stored.
//! - [`delivery`] — fan-out through bounded queues, the slow-consumer policy, replay hold-back.
//! - [`stats`] — the live feed and its recent history.
//!
//! All of it is one `Mutex<State>` still: per-room locks come with protocol v3's sessions of
//! many rooms.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use shared::{ChatMsg, Member, RoomId, ServerMsg, SessionId, Stats, Username, close_code};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::kick::Kick;
use crate::metrics::Metrics;

mod delivery;
mod names;
mod presence;
mod stats;
mod typing;

use delivery::deliver;
pub use delivery::{drop_slow_consumer, encode};

/// A chat message's `seq` and commit time, carried with its frame.
type Committed = (u64, Instant);

/// What a writer task sends.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A serialized [`ServerMsg`], shared between every recipient.
    Frame(Utf8Bytes),
    /// A serialized chat message and when it was committed (for the delivery-latency metric).
    Chat(Utf8Bytes, Instant),
    /// A serialized chat message from history (a replay).
    History(Utf8Bytes),
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
            Self::Token(token) => {
                use sha2::{Digest, Sha256};
                let digest = Sha256::digest(token.as_bytes());
                let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("t:{hex}")
            }
            Self::Session(session) => format!("s:{instance}:{session}"),
        }
    }
}

/// The hub's handle on one session.
#[derive(Debug)]
struct Subscriber {
    /// The connection this subscription belongs to (a v3 connection has one per room).
    connection: SessionId,
    room: RoomId,
    identity: Identity,
    name: Option<Username>,
    tx: mpsc::Sender<Outbound>,
    kick: Kick,
    /// Receives the once-a-second live feed.
    feed: bool,
    /// While the session replays history, live frames wait here (with the `seq` of chat frames).
    held: Option<Vec<(Option<Committed>, Utf8Bytes)>>,
    /// The newest chat `seq` queued for this session; older or equal ones are skipped.
    last_seq: u64,
    last_typing: Option<Instant>,
}

#[derive(Debug)]
struct Holder {
    identity: Identity,
    connections: u32,
    /// Bumped on every claim, so a pending release of an earlier disconnect does nothing.
    generation: u64,
}

#[derive(Debug, Default)]
struct Room {
    subscribers: BTreeSet<SessionId>,
    names: BTreeMap<Username, Holder>,
}

/// Members held on other nodes, by room: name → connections there.
pub type RemoteMembers = HashMap<RoomId, BTreeMap<Username, u32>>;

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<SessionId, Subscriber>,
    rooms: HashMap<RoomId, Room>,
    remote: RemoteMembers,
    recent_stats: VecDeque<Stats>,
}

/// What the hub tells the other nodes of a cluster.
pub trait Backplane: Send + Sync + std::fmt::Debug {
    /// The last local holder of a name let it go.
    fn released(&self, room: &RoomId, name: &Username, identity: &Identity);
    /// A local member is typing.
    fn typing(&self, room: &RoomId, name: &Username);
}

#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
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
    backplane: OnceLock<Arc<dyn Backplane>>,
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
    pub tx: mpsc::Sender<Outbound>,
    pub kick: Kick,
    pub feed: bool,
}

/// What the session learns from registering, to build its welcome.
#[derive(Debug)]
pub struct Snapshot {
    pub members: Vec<Member>,
    pub recent_stats: Vec<Stats>,
}

impl Hub {
    pub fn new(
        stats_history: usize,
        grace: Duration,
        held_limit: usize,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            instance: format!("{:016x}", rand::random::<u64>()),
            next_session: AtomicU64::new(1),
            metrics,
            started: Instant::now(),
            stats_history,
            grace,
            held_limit,
            backplane: OnceLock::new(),
        })
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// This process's random id (a cluster node's id).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Connects the hub to a cluster (once, before serving).
    pub fn set_backplane(&self, backplane: Arc<dyn Backplane>) {
        let _ = self.backplane.set(backplane);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("hub lock poisoned")
    }

    pub fn next_session_id(&self) -> SessionId {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a session to its room, holding live frames back until [`go_live`](Self::go_live),
    /// and announces it to the others.
    pub fn register(&self, session: SessionId, reg: Registration) -> Result<Snapshot, NameTaken> {
        let mut state = self.lock();
        if let Some(name) = &reg.name {
            state.claim(&reg.room, name, &reg.identity, self)?;
        }
        state
            .rooms
            .entry(reg.room.clone())
            .or_default()
            .subscribers
            .insert(session);
        let snapshot = Snapshot {
            members: state.members(&reg.room),
            recent_stats: state.recent_stats.iter().cloned().collect(),
        };
        state.sessions.insert(
            session,
            Subscriber {
                connection: reg.connection,
                room: reg.room,
                identity: reg.identity,
                name: reg.name,
                tx: reg.tx,
                kick: reg.kick,
                feed: reg.feed,
                held: Some(Vec::new()),
                last_seq: 0,
                last_typing: None,
            },
        );
        Ok(snapshot)
    }

    /// Removes a session. Its name is released after the grace period unless claimed again, or
    /// at once if the client `left` on purpose.
    pub fn unregister(self: &Arc<Self>, session: SessionId, left: bool) {
        let mut state = self.lock();
        let Some(sub) = state.sessions.remove(&session) else {
            return;
        };
        let Some(room) = state.rooms.get_mut(&sub.room) else {
            return;
        };
        room.subscribers.remove(&session);
        if let Some(name) = &sub.name
            && let Some(holder) = room.names.get_mut(name)
        {
            holder.connections = holder.connections.saturating_sub(1);
            let (connections, generation) = (holder.connections, holder.generation);
            // A tokenless session's name cannot be reclaimed, so it goes at once.
            let keep = connections == 0
                && !left
                && matches!(holder.identity, Identity::Token(_))
                && !self.grace.is_zero();
            if connections > 0 || keep {
                let member = Member {
                    name: name.to_string(),
                    connections: connections + state.remote_connections(&sub.room, name),
                };
                let msg = ServerMsg::Presence {
                    room: sub.room.to_string(),
                    member,
                };
                state.fan_out(&sub.room, &encode(&msg), None, self);
            }
            if keep {
                let hub = Arc::clone(self);
                let (room, name) = (sub.room.clone(), name.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(hub.grace).await;
                    hub.release(&room, &name, generation);
                });
            } else if connections == 0 {
                drop(state);
                self.release(&sub.room, name, generation);
                return;
            }
        }
        state.drop_room_if_empty(&sub.room);
    }

    /// Closes every session with `code`; their clients reconnect and resume.
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for sub in self.lock().sessions.values() {
            sub.kick.kick(code, reason, false);
        }
    }

    /// The session's room and who it is.
    pub fn identity(&self, session: SessionId) -> Option<(RoomId, Identity)> {
        let state = self.lock();
        let sub = state.sessions.get(&session)?;
        Some((sub.room.clone(), sub.identity.clone()))
    }

    /// The session's room and name, if it has one.
    pub fn sender(&self, session: SessionId) -> Option<(RoomId, Username)> {
        let state = self.lock();
        let sub = state.sessions.get(&session)?;
        Some((sub.room.clone(), sub.name.clone()?))
    }

    /// Whether the room has members or sessions on this node now.
    pub fn room_in_use(&self, room: &str) -> bool {
        RoomId::parse(room).is_ok_and(|room| self.lock().rooms.contains_key(&room))
    }

    pub fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }

    /// Chat connections (a v3 connection in several rooms counts once).
    pub fn session_count(&self) -> usize {
        self.lock().connection_count()
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

impl State {
    /// Distinct connections among the subscriptions.
    fn connection_count(&self) -> usize {
        let connections: std::collections::HashSet<SessionId> =
            self.sessions.values().map(|s| s.connection).collect();
        connections.len()
    }
    fn drop_room_if_empty(&mut self, room: &RoomId) {
        if self
            .rooms
            .get(room)
            .is_some_and(|r| r.subscribers.is_empty() && r.names.is_empty())
        {
            self.rooms.remove(room);
        }
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
        rx: mpsc::Receiver<Outbound>,
    }

    impl Peer {
        fn next(&mut self) -> Option<ServerMsg> {
            match self.rx.try_recv().ok()? {
                Outbound::Frame(f)
                | Outbound::Chat(f, _)
                | Outbound::History(f)
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
        let (tx, rx) = mpsc::channel(64);
        let reg = Registration {
            connection: 0,
            room: RoomId::parse("r").unwrap(),
            name: name.map(|n| Username::parse(n, 32).unwrap()),
            identity,
            tx,
            kick: Kick::default(),
            feed: false,
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
        }
    }

    fn member(name: &str, connections: u32) -> Member {
        Member {
            name: name.into(),
            connections,
        }
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
        let hub = Hub::new(60, GRACE, 256, Metrics::new());
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
        let hub = Hub::new(60, GRACE, 256, Metrics::new());
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
        let hub = Hub::new(60, GRACE, 256, Metrics::new());
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
        let hub = Hub::new(60, GRACE, 256, Metrics::new());
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
        let hub = Hub::new(60, GRACE, 256, Metrics::new());
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
        let hub = Hub::new(60, GRACE, 256, Metrics::new());
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
        let hub = Hub::new(60, GRACE, 256, Metrics::new());
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
        // Bob appears on another node; Ada is also open in a tab there.
        hub.set_remote(remote(&[("bob", 1), ("ada", 1)]));
        assert_eq!(
            ada.drain_sorted(),
            vec![
                ServerMsg::Joined {
                    room: "r".into(),
                    member: member("bob", 1)
                },
                ServerMsg::Presence {
                    room: "r".into(),
                    member: member("ada", 2)
                },
            ]
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
            vec![
                ServerMsg::Left {
                    room: "r".into(),
                    member: member("bob", 0)
                },
                ServerMsg::Presence {
                    room: "r".into(),
                    member: member("ada", 1)
                },
            ]
        );
    }
}
