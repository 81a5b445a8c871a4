//! Typing notices: relayed to the others in the room, throttled per session, never stored.

use super::*;

/// Typing notices from one session are relayed at most this often.
pub(super) const TYPING_THROTTLE: Duration = Duration::from_millis(1000);

impl Hub {
    /// Relays "typing" to the others in the room, at most once per [`TYPING_THROTTLE`].
    pub fn typing(&self, session: SessionId) {
        let mut state = self.lock();
        let Some(sub) = state.sessions.get_mut(&session) else {
            return;
        };
        let Some(name) = sub.name.clone() else { return };
        if sub
            .last_typing
            .is_some_and(|t| t.elapsed() < TYPING_THROTTLE)
        {
            return;
        }
        sub.last_typing = Some(Instant::now());
        let room = sub.room.clone();
        state.typing_to_others(&room, &name, self);
        drop(state);
        if let Some(backplane) = self.backplane.get() {
            backplane.typing(&room, &name);
        }
    }

    /// Relays a typing notice from another node (throttled there).
    pub fn remote_typing(&self, room: &RoomId, name: &Username) {
        self.lock().typing_to_others(room, name, self);
    }
}

impl State {
    pub(super) fn typing_to_others(&mut self, room: &RoomId, name: &Username, hub: &Hub) {
        let frame = encode(&ServerMsg::Typing {
            room: room.to_string(),
            name: name.to_string(),
        });
        let Self {
            sessions, rooms, ..
        } = self;
        let Some(members) = rooms.get(room) else {
            return;
        };
        for id in &members.subscribers {
            if sessions
                .get(id)
                .is_some_and(|s| s.name.as_ref() != Some(name))
            {
                deliver(sessions, *id, &frame, None, hub);
            }
        }
    }
}
