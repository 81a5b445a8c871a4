//! Presence: the members of a room as seen from this node, merged with the members other
//! nodes hold (clustered), and the changes announced to the room.

use super::*;

/// A member's connections on this node and the others; `None` if it is on neither.
pub(super) fn merge(local: Option<u32>, remote: Option<u32>) -> Option<u32> {
    match (local, remote) {
        (None, None) => None,
        (l, r) => Some(l.unwrap_or(0) + r.unwrap_or(0)),
    }
}

impl Hub {
    /// Replaces the members other nodes hold and announces the differences in each room.
    pub fn set_remote(&self, remote: RemoteMembers) {
        let old = std::mem::replace(
            &mut *self.remote.write().expect("remote members poisoned"),
            remote.clone(),
        );
        let rooms: BTreeSet<&RoomId> = old.keys().chain(remote.keys()).collect();
        let empty = BTreeMap::new();
        for room_id in rooms {
            let Some(cell) = self.room(room_id) else {
                continue; // nobody here: nothing to announce
            };
            let mut room = lock_room(&cell);
            let before = old.get(room_id).unwrap_or(&empty);
            let after = remote.get(room_id).unwrap_or(&empty);
            let names: BTreeSet<&Username> = before.keys().chain(after.keys()).collect();
            let mut frames = Vec::new();
            for name in names {
                let local = room.names.get(name).map(|h| h.connections);
                let was = merge(local, before.get(name).copied());
                let now = merge(local, after.get(name).copied());
                let room = room_id.to_string();
                let member = |connections| Member {
                    name: name.to_string(),
                    connections,
                };
                let msg = match (was, now) {
                    (None, Some(c)) => ServerMsg::Joined {
                        room,
                        member: member(c),
                    },
                    (Some(_), None) => ServerMsg::Left {
                        room,
                        member: member(0),
                    },
                    (Some(a), Some(b)) if a != b => ServerMsg::Presence {
                        room,
                        member: member(b),
                    },
                    _ => continue,
                };
                frames.push(encode(&msg));
            }
            for frame in frames {
                room.fan_out(&frame, Live::Frame, self);
            }
        }
    }

    /// Every name held on this node (grace periods included): room, name, holder, connections.
    pub fn local_names(&self) -> Vec<(RoomId, Username, Identity, u32)> {
        let mut names = Vec::new();
        for (room_id, cell) in self.all_rooms() {
            let room = lock_room(&cell);
            names.extend(room.names.iter().map(|(name, h)| {
                (
                    room_id.clone(),
                    name.clone(),
                    h.identity.clone(),
                    h.connections,
                )
            }));
        }
        names
    }

    /// Everyone in `room`, on this node and the others.
    pub fn members_of(&self, room_id: &RoomId) -> Vec<Member> {
        if let Some(cell) = self.room(room_id) {
            return lock_room(&cell).members(room_id, self);
        }
        let remote = self.remote.read().expect("remote members poisoned");
        remote.get(room_id).map_or_else(Vec::new, |names| {
            names
                .iter()
                .map(|(name, connections)| Member {
                    name: name.to_string(),
                    connections: *connections,
                })
                .collect()
        })
    }

    /// The rooms with members, on this node and the others, and how many members each has.
    pub fn rooms_with_members(&self) -> Vec<(RoomId, usize)> {
        let mut ids: BTreeSet<RoomId> = self.all_rooms().into_iter().map(|(id, _)| id).collect();
        ids.extend(
            self.remote
                .read()
                .expect("remote members poisoned")
                .keys()
                .cloned(),
        );
        ids.into_iter()
            .map(|id| {
                let members = self.members_of(&id).len();
                (id, members)
            })
            .filter(|(_, members)| *members > 0)
            .collect()
    }

    /// Connections other nodes report for a name in a room, if they hold it.
    pub(super) fn remote_count(&self, room: &RoomId, name: &Username) -> Option<u32> {
        self.remote
            .read()
            .expect("remote members poisoned")
            .get(room)
            .and_then(|r| r.get(name))
            .copied()
    }

    /// Connections other nodes report for a name (0 if none).
    pub(super) fn remote_connections(&self, room: &RoomId, name: &Username) -> u32 {
        self.remote_count(room, name).unwrap_or(0)
    }
}

impl Room {
    /// Everyone in the room, on this node and the others.
    pub(super) fn members(&self, room_id: &RoomId, hub: &Hub) -> Vec<Member> {
        let mut members: BTreeMap<&Username, u32> = BTreeMap::new();
        let remote = hub.remote.read().expect("remote members poisoned");
        if let Some(remote) = remote.get(room_id) {
            members.extend(remote.iter().map(|(name, c)| (name, *c)));
        }
        for (name, h) in &self.names {
            *members.entry(name).or_default() += h.connections;
        }
        members
            .into_iter()
            .map(|(name, connections)| Member {
                name: name.to_string(),
                connections,
            })
            .collect()
    }
}
