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
        let mut state = self.lock();
        let old = std::mem::replace(&mut state.remote, remote);
        let rooms: BTreeSet<RoomId> = old
            .keys()
            .chain(state.remote.keys())
            .filter(|r| state.rooms.contains_key(*r))
            .cloned()
            .collect();
        let empty = BTreeMap::new();
        for room_id in rooms {
            let before = old.get(&room_id).unwrap_or(&empty);
            let after = state.remote.get(&room_id).unwrap_or(&empty);
            let names: BTreeSet<Username> = before.keys().chain(after.keys()).cloned().collect();
            let mut frames = Vec::new();
            for name in names {
                let local = state.rooms[&room_id]
                    .names
                    .get(&name)
                    .map(|h| h.connections);
                let was = merge(local, before.get(&name).copied());
                let now = merge(local, after.get(&name).copied());
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
                state.fan_out(&room_id, &frame, None, self);
            }
        }
    }

    /// Every name held on this node (grace periods included): room, name, holder, connections.
    pub fn local_names(&self) -> Vec<(RoomId, Username, Identity, u32)> {
        let state = self.lock();
        state
            .rooms
            .iter()
            .flat_map(|(room, r)| {
                r.names.iter().map(move |(name, h)| {
                    (
                        room.clone(),
                        name.clone(),
                        h.identity.clone(),
                        h.connections,
                    )
                })
            })
            .collect()
    }
}

impl State {
    /// Everyone in the room, on this node and the others.
    pub(super) fn members(&self, room: &RoomId) -> Vec<Member> {
        let mut members: BTreeMap<&Username, u32> = BTreeMap::new();
        if let Some(remote) = self.remote.get(room) {
            members.extend(remote.iter().map(|(name, c)| (name, *c)));
        }
        if let Some(room) = self.rooms.get(room) {
            for (name, h) in &room.names {
                *members.entry(name).or_default() += h.connections;
            }
        }
        members
            .into_iter()
            .map(|(name, connections)| Member {
                name: name.to_string(),
                connections,
            })
            .collect()
    }

    /// Connections other nodes report for a name.
    pub(super) fn remote_connections(&self, room: &RoomId, name: &Username) -> u32 {
        self.remote
            .get(room)
            .and_then(|r| r.get(name))
            .copied()
            .unwrap_or(0)
    }
}
