//! Delivery: fan-out of serialized frames through each session's bounded queue, the
//! slow-consumer policy, and the hold-back of live frames while a session replays history.

use super::*;

/// Serializes a message once; the result is cloned by reference count for every recipient.
pub fn encode(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(msg.to_json())
}

/// Queues a frame for one session, or holds it back while the session replays history. A full
/// queue (or too much held back) kicks the session: the slow-consumer policy.
pub(super) fn deliver(
    sessions: &mut HashMap<SessionId, Subscriber>,
    id: SessionId,
    frame: &Utf8Bytes,
    chat: Option<Committed>,
    hub: &Hub,
) {
    let Some(sub) = sessions.get_mut(&id) else {
        return;
    };
    if let (Some((seq, _)), None) = (chat, &sub.held) {
        if seq <= sub.last_seq {
            return;
        }
        sub.last_seq = seq;
    }
    let overflow = match &mut sub.held {
        Some(held) => {
            held.push((chat, frame.clone()));
            held.len() > hub.held_limit
        }
        None => matches!(
            sub.tx.try_send(match chat {
                Some((_, at)) => Outbound::Chat(frame.clone(), at),
                None => Outbound::Frame(frame.clone()),
            }),
            Err(mpsc::error::TrySendError::Full(_))
        ),
    };
    if overflow && drop_slow_consumer(&sub.kick, &hub.metrics) {
        tracing::warn!(session = id, "slow consumer dropped");
    }
}

/// The slow-consumer policy: a session whose queue is full is closed with 4429 (its backlog
/// discarded; it reconnects and resumes) and counted, once. `true` the first time.
pub fn drop_slow_consumer(kick: &Kick, metrics: &Metrics) -> bool {
    let first = kick.kick(
        close_code::SLOW_CONSUMER,
        "slow consumer: outbound queue full",
        false,
    );
    if first {
        metrics.slow_consumers.inc();
    }
    first
}

impl Hub {
    /// Ends a session's replay: queues the frames held back since it registered, skipping chat
    /// messages with `seq <= replayed_to` (the replay already sent them).
    pub fn go_live(&self, session: SessionId, replayed_to: u64) {
        let mut state = self.lock();
        let Some(sub) = state.sessions.get_mut(&session) else {
            return;
        };
        sub.last_seq = sub.last_seq.max(replayed_to);
        // `deliver` skips the chat frames the replay already sent.
        for (chat, frame) in sub.held.take().unwrap_or_default() {
            deliver(&mut state.sessions, session, &frame, chat, self);
        }
    }

    /// Fans out freshly committed messages, in the order given (per room, `seq` order).
    pub fn publish_committed(&self, messages: Vec<ChatMsg>) {
        self.metrics.persisted.inc_by(messages.len() as u64);
        self.publish_recovered(messages);
    }

    /// Fans out stored messages that may have been published before (a cluster node catching
    /// up after missing some): each session gets only those newer than its last.
    pub fn publish_recovered(&self, messages: Vec<ChatMsg>) {
        let mut state = self.lock();
        let committed_at = Instant::now();
        for msg in messages {
            let Ok(room) = RoomId::parse(&msg.room) else {
                continue;
            };
            let chat = Some((msg.seq, committed_at));
            state.fan_out(&room, &encode(&ServerMsg::Chat(msg)), chat, self);
        }
    }

    /// For each room with live (not replaying) sessions, the oldest last `seq` among them:
    /// what a node that may have missed messages must read on from.
    pub fn room_floors(&self) -> Vec<(RoomId, u64)> {
        let state = self.lock();
        state
            .rooms
            .keys()
            .filter_map(|room| Some((room.clone(), state.floor(room)?)))
            .collect()
    }

    /// The fewest free slots in the outbound queue of any live session in the room.
    pub fn room_headroom(&self, room: &RoomId) -> Option<usize> {
        let state = self.lock();
        state
            .rooms
            .get(room)?
            .subscribers
            .iter()
            .filter_map(|id| state.sessions.get(id))
            .filter(|s| s.held.is_none())
            .map(|s| s.tx.capacity())
            .min()
    }

    /// [`room_floors`](Self::room_floors) for one room.
    pub fn room_floor(&self, room: &RoomId) -> Option<u64> {
        self.lock().floor(room)
    }
}

impl State {
    pub(super) fn floor(&self, room: &RoomId) -> Option<u64> {
        self.rooms
            .get(room)?
            .subscribers
            .iter()
            .filter_map(|id| self.sessions.get(id))
            .filter(|s| s.held.is_none())
            .map(|s| s.last_seq)
            .min()
    }

    pub(super) fn fan_out(
        &mut self,
        room: &RoomId,
        frame: &Utf8Bytes,
        chat: Option<Committed>,
        hub: &Hub,
    ) {
        let Self {
            sessions, rooms, ..
        } = self;
        if let Some(members) = rooms.get(room) {
            for id in &members.subscribers {
                deliver(sessions, *id, frame, chat, hub);
            }
        }
    }
}
