//! Delivery: fan-out of serialized frames through each session's bounded queue, the
//! slow-consumer policy, and the hold-back of live frames while a session replays history.

use super::*;

/// Serializes a message once; the result is cloned by reference count for every recipient.
pub fn encode(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(msg.to_json())
}

/// A stored entry's frame: a chat message, or (with a key) a durable data point. `true` for
/// a data point.
pub fn entry_frame(msg: ChatMsg) -> (Utf8Bytes, bool) {
    match msg.key {
        None => (encode(&ServerMsg::Chat(msg)), false),
        Some(key) => {
            let data = shared::DataMsg {
                room: msg.room,
                key,
                data: shared::RawJson::from_trusted(msg.msg),
                delivery: shared::Delivery::Durable,
                seq: Some(msg.seq),
                ts: msg.ts,
            };
            (encode(&ServerMsg::Data(data)), true)
        }
    }
}

/// Queues a frame for one session, or holds it back while the session replays history. A full
/// queue (or too much held back) kicks the session: the slow-consumer policy. A volatile data
/// point is dropped instead.
pub(super) fn deliver(
    sub: &mut Subscriber,
    id: SessionId,
    frame: &Utf8Bytes,
    live: Live,
    hub: &Hub,
) {
    if let (Live::Entry((seq, _), _), None) = (live, &sub.held) {
        if seq <= sub.last_seq {
            return;
        }
        sub.last_seq = seq;
    }
    let overflow = match (&mut sub.held, live) {
        // A replaying session has no use for a passing value.
        (Some(_), Live::Volatile) => {
            hub.metrics.volatile_dropped.inc();
            false
        }
        (Some(held), _) => {
            held.push((live, frame.clone()));
            held.len() > hub.held_limit
        }
        (None, Live::Volatile) => {
            let half_full = sub.tx.capacity() * 2 < sub.tx.max_capacity();
            if half_full || sub.tx.try_send(Outbound::Data(frame.clone())).is_err() {
                hub.metrics.volatile_dropped.inc();
            }
            false
        }
        (None, _) => matches!(
            sub.tx.try_send(match live {
                Live::Entry((_, at), false) => Outbound::Chat(frame.clone(), at),
                Live::Entry(_, true) => Outbound::Data(frame.clone()),
                _ => Outbound::Frame(frame.clone()),
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
    /// Fans out a data point that is not stored in history (`latest`, `volatile`) to the
    /// room's members on this node. Returns how many subscriptions it went to.
    pub fn publish_data(&self, data: shared::DataMsg) -> usize {
        let Ok(room_id) = RoomId::parse(&data.room) else {
            return 0;
        };
        let Some(cell) = self.room(&room_id) else {
            return 0;
        };
        let live = match data.delivery {
            shared::Delivery::Volatile => Live::Volatile,
            _ => Live::Frame,
        };
        let frame = encode(&ServerMsg::Data(data));
        let mut room = lock_room(&cell);
        self.presence_before_message(&room_id, &mut room);
        room.fan_out(&frame, live, self);
        room.subscribers.len()
    }

    /// Ends a session's replay: queues the frames held back since it registered, skipping chat
    /// messages with `seq <= replayed_to` (the replay already sent them).
    pub fn go_live(&self, session: SessionId, replayed_to: u64) {
        self.with_subscription(session, |_, room| {
            let Some(sub) = room.subscribers.get_mut(&session) else {
                return;
            };
            sub.last_seq = sub.last_seq.max(replayed_to);
            // `deliver` skips the entries the replay already sent.
            for (live, frame) in sub.held.take().unwrap_or_default() {
                deliver(sub, session, &frame, live, self);
            }
        });
    }

    /// Fans out freshly committed messages, in the order given (per room, `seq` order).
    pub fn publish_committed(&self, messages: Vec<ChatMsg>) {
        self.metrics.persisted.inc_by(messages.len() as u64);
        self.publish_recovered(messages);
    }

    /// Fans out stored messages that may have been published before (a cluster node catching
    /// up after missing some): each session gets only those newer than its last. Each message
    /// locks only its own room.
    pub fn publish_recovered(&self, messages: Vec<ChatMsg>) {
        let committed_at = Instant::now();
        for msg in messages {
            let Ok(room_id) = RoomId::parse(&msg.room) else {
                continue;
            };
            let Some(cell) = self.room(&room_id) else {
                continue; // nobody in the room on this node
            };
            let seq = msg.seq;
            let (frame, data) = entry_frame(msg);
            let mut room = lock_room(&cell);
            self.presence_before_message(&room_id, &mut room);
            room.fan_out(&frame, Live::Entry((seq, committed_at), data), self);
        }
    }

    /// For each room with live (not replaying) sessions, the oldest last `seq` among them:
    /// what a node that may have missed messages must read on from.
    pub fn room_floors(&self) -> Vec<(RoomId, u64)> {
        self.all_rooms()
            .into_iter()
            .filter_map(|(id, cell)| Some((id, lock_room(&cell).floor()?)))
            .collect()
    }

    /// The fewest free slots in the outbound queue of any live session in the room.
    pub fn room_headroom(&self, room: &RoomId) -> Option<usize> {
        let cell = self.room(room)?;
        let room = lock_room(&cell);
        room.subscribers
            .values()
            .filter(|s| s.held.is_none())
            .map(|s| s.tx.capacity())
            .min()
    }

    /// [`room_floors`](Self::room_floors) for one room.
    pub fn room_floor(&self, room: &RoomId) -> Option<u64> {
        let cell = self.room(room)?;
        lock_room(&cell).floor()
    }
}

impl Room {
    pub(super) fn floor(&self) -> Option<u64> {
        self.subscribers
            .values()
            .filter(|s| s.held.is_none())
            .map(|s| s.last_seq)
            .min()
    }

    pub(super) fn fan_out(&mut self, frame: &Utf8Bytes, live: Live, hub: &Hub) {
        for (id, sub) in &mut self.subscribers {
            deliver(sub, *id, frame, live, hub);
        }
    }
}
