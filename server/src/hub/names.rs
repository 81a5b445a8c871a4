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
        let Some(holder) = room.names.remove(name) else {
            return;
        };
        let member = Member {
            name: name.to_string(),
            connections: 0,
        };
        let room_name = room_id.to_string();
        // Held on another node too: still a member, with only the connections there.
        let msg = match self.remote_count(room_id, name) {
            Some(connections) => ServerMsg::Presence {
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
        room.fan_out(&encode(&msg), Live::Frame, self);
        self.unlock_room(room_id, &cell, room);
        if let Some(backplane) = &self.backplane {
            backplane.released(room_id, name, holder.identity.key(&self.instance));
        }
    }
}

impl Room {
    /// Takes (or shares) a name for `identity`, announcing the change.
    pub(super) fn claim(
        &mut self,
        room_id: &RoomId,
        name: &Username,
        identity: &Identity,
        hub: &Hub,
    ) -> Result<(), NameTaken> {
        let remote = hub.remote_count(room_id, name);
        let msg = match self.names.get_mut(name) {
            Some(holder) if holder.identity != *identity => return Err(NameTaken),
            Some(holder) => {
                holder.connections += 1;
                holder.generation += 1;
                ServerMsg::Presence {
                    room: room_id.to_string(),
                    member: Member {
                        name: name.to_string(),
                        connections: holder.connections + remote.unwrap_or(0),
                    },
                }
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
                let member = Member {
                    name: name.to_string(),
                    connections: 1 + remote.unwrap_or(0),
                };
                let room = room_id.to_string();
                if remote.is_some() {
                    ServerMsg::Presence { room, member }
                } else {
                    ServerMsg::Joined { room, member }
                }
            }
        };
        self.fan_out(&encode(&msg), Live::Frame, hub);
        Ok(())
    }
}
