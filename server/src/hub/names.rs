//! Names: who holds which name in a room (a token, so one person's tabs share it), the grace
//! period after the last connection goes, and releasing it.

use super::*;

impl Hub {
    /// Gives a nameless (legacy) session its name and announces it.
    pub fn claim_name(&self, session: SessionId, name: Username) -> Result<(), NameTaken> {
        self.with_subscription(session, |room_id, room| {
            let sub = &room.subscribers[&session];
            if sub.name.is_some() {
                return Ok(());
            }
            let identity = sub.identity.clone();
            room.claim(room_id, &name, &identity, self)?;
            if let Some(sub) = room.subscribers.get_mut(&session) {
                sub.name = Some(name);
            }
            Ok(())
        })
        .unwrap_or(Ok(()))
    }

    /// Releases a name whose holder has had no connection since `generation`.
    pub(super) fn release(&self, room_id: &RoomId, name: &Username, generation: u64) {
        let Some(cell) = self.room(room_id) else {
            return;
        };
        let mut room = lock_room(&cell);
        if !room
            .names
            .get(name)
            .is_some_and(|h| h.generation == generation && h.connections == 0)
        {
            return;
        }
        room.before_change(room_id, name, self);
        let Some(holder) = room.names.remove(name) else {
            return;
        };
        // Held on another node too, it stays a member with only the connections there.
        self.presence_changed(room_id, &mut room);
        self.unlock_room(room_id, &cell, room);
        if let Some(backplane) = &self.backplane {
            backplane.released(room_id, name, holder.identity.key(&self.instance));
        }
    }
}

impl Room {
    /// Takes (or shares) a name for `identity`, announcing the change (batched).
    pub(super) fn claim(
        &mut self,
        room_id: &RoomId,
        name: &Username,
        identity: &Identity,
        hub: &Hub,
    ) -> Result<(), NameTaken> {
        if self
            .names
            .get(name)
            .is_some_and(|holder| holder.identity != *identity)
        {
            return Err(NameTaken);
        }
        self.before_change(room_id, name, hub);
        match self.names.get_mut(name) {
            Some(holder) => {
                holder.connections += 1;
                holder.generation += 1;
            }
            None => {
                self.names.insert(
                    name.clone(),
                    Holder {
                        identity: identity.clone(),
                        connections: 1,
                        generation: 0,
                    },
                );
            }
        }
        hub.presence_changed(room_id, self);
        Ok(())
    }
}
