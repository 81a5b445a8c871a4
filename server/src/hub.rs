//! The hub: rooms, their members, and fan-out.
//!
//! Every session owns a bounded outbound queue drained by its writer task; the hub only ever
//! `try_send`s into it, so a client that stops reading never delays a room. When a queue is full
//! the policy is to drop that client: it is kicked with close code
//! [`SLOW_CONSUMER`](shared::close_code::SLOW_CONSUMER), its backlog is discarded, and it
//! reconnects on its own. Each broadcast is serialized once and shared by reference count.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use shared::{
    ChatMsg, Member, MessageText, RoomId, ServerMsg, SessionId, Stats, Username, close_code,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::kick::Kick;

/// What a writer task sends.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A serialized [`ServerMsg`], shared between every recipient.
    Frame(Utf8Bytes),
    /// A heartbeat ping.
    Ping,
}

/// The hub's handle on one session.
#[derive(Debug)]
struct Subscriber {
    room: RoomId,
    name: Option<Username>,
    tx: mpsc::Sender<Outbound>,
    kick: Kick,
    /// Receives the once-a-second live feed.
    feed: bool,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<SessionId, Subscriber>,
    /// Members of each room, in join order (session ids grow).
    rooms: HashMap<RoomId, BTreeMap<SessionId, ()>>,
    recent_stats: VecDeque<Stats>,
}

#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    next_session: AtomicU64,
    /// Chat messages accepted since start.
    messages_total: AtomicU64,
    /// Clients dropped because their outbound queue overflowed.
    slow_consumers: AtomicU64,
    started: Instant,
    stats_history: usize,
}

/// Another session in the room holds the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTaken;

/// What a new session needs to register.
#[derive(Debug)]
pub struct Registration {
    pub room: RoomId,
    pub name: Option<Username>,
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
    pub fn new(stats_history: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            next_session: AtomicU64::new(1),
            messages_total: AtomicU64::new(0),
            slow_consumers: AtomicU64::new(0),
            started: Instant::now(),
            stats_history,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("hub lock poisoned")
    }

    pub fn next_session_id(&self) -> SessionId {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a session to its room and announces it to the others. `welcome` builds the first
    /// frame from the room snapshot; it is queued inside the lock, so no broadcast can reach the
    /// session before its welcome.
    pub fn register(
        &self,
        session: SessionId,
        reg: Registration,
        welcome: impl FnOnce(Snapshot) -> ServerMsg,
    ) -> Result<(), NameTaken> {
        let mut state = self.lock();
        if let Some(name) = &reg.name
            && state.name_holder(&reg.room, name).is_some()
        {
            return Err(NameTaken);
        }
        let mut members = state.members(&reg.room);
        if let Some(name) = &reg.name {
            members.push(Member {
                name: name.to_string(),
                session,
            });
        }
        let snapshot = Snapshot {
            members,
            recent_stats: state.recent_stats.iter().cloned().collect(),
        };
        // A fresh queue always has room for the welcome.
        let _ = reg.tx.try_send(Outbound::Frame(encode(&welcome(snapshot))));
        // Announce to the others before joining, so the newcomer does not hear of itself.
        if let Some(name) = &reg.name {
            let joined = ServerMsg::Joined {
                room: reg.room.to_string(),
                member: Member {
                    name: name.to_string(),
                    session,
                },
            };
            state.fan_out(&reg.room, &encode(&joined), &self.slow_consumers);
        }
        state
            .rooms
            .entry(reg.room.clone())
            .or_default()
            .insert(session, ());
        state.sessions.insert(
            session,
            Subscriber {
                room: reg.room,
                name: reg.name,
                tx: reg.tx,
                kick: reg.kick,
                feed: reg.feed,
            },
        );
        Ok(())
    }

    /// Gives a nameless (legacy) session its name and announces it.
    pub fn claim_name(&self, session: SessionId, name: Username) -> Result<(), NameTaken> {
        let mut state = self.lock();
        let Some(room) = state.sessions.get(&session).map(|s| s.room.clone()) else {
            return Ok(());
        };
        match state.name_holder(&room, &name) {
            Some(holder) if holder == session => return Ok(()),
            Some(_) => return Err(NameTaken),
            None => {}
        }
        if let Some(sub) = state.sessions.get_mut(&session) {
            sub.name = Some(name.clone());
        }
        let joined = ServerMsg::Joined {
            room: room.to_string(),
            member: Member {
                name: name.to_string(),
                session,
            },
        };
        state.fan_out_except(&room, session, &encode(&joined), &self.slow_consumers);
        Ok(())
    }

    /// Removes a session and announces its departure.
    pub fn unregister(&self, session: SessionId) {
        let mut state = self.lock();
        let Some(sub) = state.sessions.remove(&session) else {
            return;
        };
        if let Some(members) = state.rooms.get_mut(&sub.room) {
            members.remove(&session);
            if members.is_empty() {
                state.rooms.remove(&sub.room);
            }
        }
        if let Some(name) = sub.name {
            let left = ServerMsg::Left {
                room: sub.room.to_string(),
                member: Member {
                    name: name.to_string(),
                    session,
                },
            };
            state.fan_out(&sub.room, &encode(&left), &self.slow_consumers);
        }
    }

    /// Broadcasts a chat message from `session` to every member of its room, sender included.
    /// The name comes from the session, never from the message. Returns `false` if the session
    /// has no name yet.
    pub fn chat(&self, session: SessionId, text: MessageText) -> bool {
        let state = self.lock();
        let Some(sub) = state.sessions.get(&session) else {
            return false;
        };
        let Some(name) = &sub.name else { return false };
        let room = sub.room.clone();
        let msg = ServerMsg::Chat(ChatMsg {
            room: room.to_string(),
            name: name.to_string(),
            msg: text.as_str().to_owned(),
            session,
            ts: unix_millis(),
        });
        self.messages_total.fetch_add(1, Ordering::Relaxed);
        state.fan_out(&room, &encode(&msg), &self.slow_consumers);
        true
    }

    pub fn set_feed(&self, session: SessionId, enabled: bool) {
        if let Some(sub) = self.lock().sessions.get_mut(&session) {
            sub.feed = enabled;
        }
    }

    /// Takes one live-feed sample and sends it to every session that wants it.
    /// `messages_per_sec` is the count since the previous call, which the caller makes each second.
    pub fn publish_stats(&self, messages_per_sec: u64) -> Stats {
        let mut state = self.lock();
        let stats = Stats {
            connections: state.sessions.len() as u64,
            rooms: state.rooms.len() as u64,
            messages_per_sec,
            uptime_secs: self.started.elapsed().as_secs(),
            server_time_ms: unix_millis(),
        };
        state.recent_stats.push_back(stats.clone());
        while state.recent_stats.len() > self.stats_history {
            state.recent_stats.pop_front();
        }
        let frame = encode(&ServerMsg::Stats(stats.clone()));
        let targets: Vec<SessionId> = state
            .sessions
            .iter()
            .filter(|(_, s)| s.feed)
            .map(|(id, _)| *id)
            .collect();
        for id in targets {
            state.deliver(id, &frame, &self.slow_consumers);
        }
        stats
    }

    pub fn messages_total(&self) -> u64 {
        self.messages_total.load(Ordering::Relaxed)
    }

    pub fn slow_consumers(&self) -> u64 {
        self.slow_consumers.load(Ordering::Relaxed)
    }

    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

impl State {
    fn name_holder(&self, room: &RoomId, name: &Username) -> Option<SessionId> {
        let members = self.rooms.get(room)?;
        members.keys().copied().find(|id| {
            self.sessions
                .get(id)
                .and_then(|s| s.name.as_ref())
                .is_some_and(|n| n == name)
        })
    }

    fn members(&self, room: &RoomId) -> Vec<Member> {
        let Some(members) = self.rooms.get(room) else {
            return Vec::new();
        };
        members
            .keys()
            .filter_map(|id| {
                let name = self.sessions.get(id)?.name.as_ref()?;
                Some(Member {
                    name: name.to_string(),
                    session: *id,
                })
            })
            .collect()
    }

    fn fan_out(&self, room: &RoomId, frame: &Utf8Bytes, slow: &AtomicU64) {
        self.fan_out_except(room, 0, frame, slow);
    }

    /// Delivers to every member but `except` (session ids start at 1, so 0 excludes nobody).
    fn fan_out_except(
        &self,
        room: &RoomId,
        except: SessionId,
        frame: &Utf8Bytes,
        slow: &AtomicU64,
    ) {
        if let Some(members) = self.rooms.get(room) {
            for id in members.keys().filter(|id| **id != except) {
                self.deliver(*id, frame, slow);
            }
        }
    }

    /// Queues a frame for one session; a full queue kicks it (the slow-consumer policy).
    fn deliver(&self, id: SessionId, frame: &Utf8Bytes, slow: &AtomicU64) {
        let Some(sub) = self.sessions.get(&id) else {
            return;
        };
        let full = matches!(
            sub.tx.try_send(Outbound::Frame(frame.clone())),
            Err(mpsc::error::TrySendError::Full(_))
        );
        if full
            && sub.kick.kick(
                close_code::SLOW_CONSUMER,
                "slow consumer: outbound queue full",
                false,
            )
        {
            slow.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(session = id, "slow consumer dropped");
        }
    }
}

/// Serializes a message once; the result is cloned by reference count for every recipient.
pub fn encode(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(msg.to_json())
}

pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
