//! Names: who holds which name in a room (a token, so one person's tabs share it), the grace
//! period after the last connection goes, and releasing it.

use super::*;

impl Hub {
    /// Gives a nameless (legacy) session its name and announces it.
    pub fn claim_name(&self, session: SessionId, name: Username) -> Result<(), NameTaken> {
        let mut state = self.lock();
        let Some(sub) = state.sessions.get(&session) else {
            return Ok(());
        };
        if sub.name.is_some() {
            return Ok(());
        }
        let (room, identity) = (sub.room.clone(), sub.identity.clone());
        state.claim(&room, &name, &identity, self)?;
        if let Some(sub) = state.sessions.get_mut(&session) {
            sub.name = Some(name);
        }
        Ok(())
    }

    /// Releases a name whose holder has had no connection since `generation`.
    pub(super) fn release(&self, room_id: &RoomId, name: &Username, generation: u64) {
        let mut state = self.lock();
        let Some(room) = state.rooms.get_mut(room_id) else {
            return;
        };
        if !room
            .names
            .get(name)
            .is_some_and(|h| h.generation == generation && h.connections == 0)
        {
            return;
        }
        let Some(holder) = room.names.remove(name) else {
            return;
        };
        let member = Member {
            name: name.to_string(),
            connections: 0,
        };
        let room_name = room_id.to_string();
        // Held on another node too: still a member, with only the connections there.
        let msg = match state.remote.get(room_id).and_then(|r| r.get(name)) {
            Some(&connections) => ServerMsg::Presence {
                room: room_name,
                member: Member {
                    connections,
                    ..member
                },
            },
            None => ServerMsg::Left {
                room: room_name,
                member,
            },
        };
        state.fan_out(room_id, &encode(&msg), None, self);
        state.drop_room_if_empty(room_id);
        drop(state);
        if let Some(backplane) = self.backplane.get() {
            backplane.released(room_id, name, &holder.identity);
        }
    }
}

impl State {
    /// Takes (or shares) a name for `identity`, announcing the change.
    pub(super) fn claim(
        &mut self,
        room_id: &RoomId,
        name: &Username,
        identity: &Identity,
        hub: &Hub,
    ) -> Result<(), NameTaken> {
        let room = self.rooms.entry(room_id.clone()).or_default();
        let msg = match room.names.get_mut(name) {
            Some(holder) if holder.identity != *identity => return Err(NameTaken),
            Some(holder) => {
                holder.connections += 1;
                holder.generation += 1;
                let connections = holder.connections + self.remote_connections(room_id, name);
                ServerMsg::Presence {
                    room: room_id.to_string(),
                    member: Member {
                        name: name.to_string(),
                        connections,
                    },
                }
            }
            None => {
                room.names.insert(
                    name.clone(),
                    Holder {
                        identity: identity.clone(),
                        connections: 1,
                        generation: 0,
                    },
                );
                let member = Member {
                    name: name.to_string(),
                    connections: 1 + self.remote_connections(room_id, name),
                };
                let room = room_id.to_string();
                if self
                    .remote
                    .get(room_id)
                    .is_some_and(|r| r.contains_key(name))
                {
                    ServerMsg::Presence { room, member }
                } else {
                    ServerMsg::Joined { room, member }
                }
            }
        };
        self.fan_out(room_id, &encode(&msg), None, hub);
        Ok(())
    }
}
