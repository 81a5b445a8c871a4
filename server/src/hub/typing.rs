//! Typing notices: relayed to the others in the room, throttled per session, never stored.

use super::*;

/// Typing notices from one session are relayed at most this often.
pub(super) const TYPING_THROTTLE: Duration = Duration::from_millis(1000);

impl Hub {
    /// Relays "typing" to the others in the room, at most once per [`TYPING_THROTTLE`].
    pub fn typing(&self, session: SessionId) {
        let relayed = self.with_subscription(session, |room_id, room| {
            let sub = room.subscribers.get_mut(&session)?;
            let name = sub.name.clone()?;
            if sub
                .last_typing
                .is_some_and(|t| t.elapsed() < TYPING_THROTTLE)
            {
                return None;
            }
            sub.last_typing = Some(Instant::now());
            room.typing_to_others(room_id, &name, self);
            Some((room_id.clone(), name))
        });
        if let (Some(Some((room, name))), Some(backplane)) = (relayed, &self.backplane) {
            backplane.typing(&room, &name);
        }
    }

    /// Relays a typing notice from another node (throttled there).
    pub fn remote_typing(&self, room: &RoomId, name: &Username) {
        if let Some(cell) = self.room(room) {
            lock_room(&cell).typing_to_others(room, name, self);
        }
    }
}

impl Room {
    pub(super) fn typing_to_others(&mut self, room: &RoomId, name: &Username, hub: &Hub) {
        hub.presence_before_message(room, self);
        let frame = encode(&ServerMsg::Typing {
            room: room.to_string(),
            name: name.to_string(),
        });
        for (id, sub) in &mut self.subscribers {
            if sub.name.as_ref() != Some(name) {
                deliver(sub, *id, &frame, Live::Frame, hub);
            }
        }
    }
}
