//! Presence: the members of a room as seen from this node, merged with the members other
//! nodes hold (clustered), and the changes announced to the room.
//!
//! Changes are batched per room: the first change after a quiet interval goes out at once
//! (`joined`, `presence` or `left`, as a single change always did); the changes that follow
//! within `interval` wait and go out together at its end, one `presence_batch` frame per
//! member, with each name's net change. A room of more than `list_max` members announces only
//! its member count, and less often the larger it is (the interval times how many times the
//! limit it holds), so N members joining cost O(N) frames and bytes, never O(N²); its member
//! list is paged on request ([`Hub::members_page`]). Waiting changes go out
//! before any message in the room, so a member is never heard before it is announced.

use super::*;

/// How presence is announced (`--presence-interval-ms`, `--presence-list-max`,
/// `--members-page`).
#[derive(Debug, Clone, Copy)]
pub struct PresenceOptions {
    /// Changes within this long of a room's last announcement wait for the next one. Zero:
    /// every change at once.
    pub interval: Duration,
    /// Rooms of more members than this announce counts, not names.
    pub list_max: usize,
    /// Members per page of a member list.
    pub page: usize,
}

impl PresenceOptions {
    /// Every change announced at once, names always listed (unit tests of other concerns).
    pub const IMMEDIATE: Self = Self {
        interval: Duration::ZERO,
        list_max: usize::MAX,
        page: 100,
    };
}

/// A room's presence changes not yet announced.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// Each changed name's connections (here and on other nodes) as last announced; `None`:
    /// it was not a member.
    was: BTreeMap<Username, Option<u32>>,
    last_flush: Option<Instant>,
    /// A flush is due (a task waits for it).
    scheduled: bool,
    /// The last announcement was a count only (too many members to list).
    counted: bool,
    /// The member count last announced.
    online: u32,
    /// Announcements made so far: a subscription registered since the last one knows the
    /// room as it was then (its snapshot), itself included.
    pub(super) flushes: u64,
}

/// A member's connections on this node and the others; `None` if it is on neither.
pub(super) fn merge(local: Option<u32>, remote: Option<u32>) -> Option<u32> {
    match (local, remote) {
        (None, None) => None,
        (l, r) => Some(l.unwrap_or(0) + r.unwrap_or(0)),
    }
}

impl Hub {
    /// Announces the room's presence changes now, or at the end of the interval since its
    /// last announcement. Called with the room locked, after [`Room::before_change`].
    pub(super) fn presence_changed(&self, room_id: &RoomId, room: &mut Room) {
        if room.presence.scheduled {
            return;
        }
        let now = Instant::now();
        let due = room
            .presence
            .last_flush
            .map(|last| last + self.interval_for(room.online(room_id, self)))
            .filter(|due| *due > now);
        let (Some(due), Ok(runtime), Some(hub)) = (
            due,
            tokio::runtime::Handle::try_current(),
            self.me.upgrade(),
        ) else {
            return self.flush_presence(room_id, room);
        };
        room.presence.scheduled = true;
        let room_id = room_id.clone();
        runtime.spawn(async move {
            tokio::time::sleep_until(due).await;
            // The room as it is now (if it emptied meanwhile, nobody is left to tell).
            let Some(cell) = hub.room(&room_id) else {
                return;
            };
            let mut room = lock_room(&cell);
            room.presence.scheduled = false;
            if !room.closed {
                hub.flush_presence(&room_id, &mut room);
            }
        });
    }

    /// The interval between a room's announcements: the configured one, stretched in a room
    /// too large to list by how many times larger than the list limit it is, so announcing
    /// its count costs no more deliveries a second than a room at the limit (10,000 members
    /// with the defaults: once a second).
    fn interval_for(&self, online: u32) -> Duration {
        let times = (online as usize).div_ceil(self.presence.list_max).max(1);
        self.presence.interval * times.min(u32::MAX as usize) as u32
    }

    /// Announces the room's waiting presence changes before a message goes out in it, so
    /// nobody sees a member's message (or typing) before the member.
    /// A counted room's announcements name nobody, so they need not go first (and must not:
    /// they would then go out with every message, not at the room's stretched interval).
    pub(super) fn presence_before_message(&self, room_id: &RoomId, room: &mut Room) {
        if room.presence.was.is_empty()
            || room.presence.counted
            || room.online(room_id, self) as usize > self.presence.list_max
        {
            return;
        }
        self.flush_presence(room_id, room);
    }

    /// Sends the room what changed since its last announcement.
    fn flush_presence(&self, room_id: &RoomId, room: &mut Room) {
        let was = std::mem::take(&mut room.presence.was);
        room.presence.last_flush = Some(Instant::now());
        let online = room.online(room_id, self);
        let listed = online as usize <= self.presence.list_max;
        let room_name = || room_id.to_string();
        let msg = if !listed {
            // Too many to list: the count, when it changed.
            let changed = room.presence.online != online || !room.presence.counted;
            room.presence.counted = true;
            // A v2 session has no way to hear a count.
            changed.then(|| {
                let batch = ServerMsg::PresenceBatch {
                    room: room_name(),
                    online,
                    changed: Vec::new(),
                    left: Vec::new(),
                    full: false,
                };
                (batch, Some(Vec::new()))
            })
        } else if room.presence.counted {
            // Listed again: the whole list, which the clients only had a page of.
            room.presence.counted = false;
            let batch = ServerMsg::PresenceBatch {
                room: room_name(),
                online,
                changed: room.members(room_id, self),
                left: Vec::new(),
                full: true,
            };
            // A v2 session cannot replace its list: it reconnects for a new welcome.
            Some((batch, None))
        } else {
            let mut changed = Vec::new();
            let mut left = Vec::new();
            let mut singles = Vec::new();
            let mut single = None;
            let mut about = None;
            for (name, was) in was {
                let now = room.connections_of(room_id, &name, self);
                let member = |connections| Member {
                    name: name.to_string(),
                    connections,
                };
                let room = room_name();
                single = match (was, now) {
                    (None, Some(c)) => Some(ServerMsg::Joined {
                        room,
                        member: member(c),
                    }),
                    (Some(_), None) => Some(ServerMsg::Left {
                        room,
                        member: member(0),
                    }),
                    (Some(a), Some(b)) if a != b => Some(ServerMsg::Presence {
                        room,
                        member: member(b),
                    }),
                    _ => continue,
                };
                match now {
                    Some(c) => changed.push(member(c)),
                    None => left.push(name.to_string()),
                }
                if let Some(single) = &single {
                    singles.push((name.clone(), now, single.clone()));
                }
                about = Some(name);
            }
            match changed.len() + left.len() {
                0 => None,
                1 => {
                    // A subscription of that name registered since the last announcement
                    // whose snapshot already showed it as it is now caused it: it knows.
                    let since = room.presence.flushes;
                    room.presence.flushes += 1;
                    if let (Some(msg), Some(name)) = (single, about) {
                        let now = room.connections_of(room_id, &name, self);
                        let frame = encode(&msg);
                        for (id, sub) in &mut room.subscribers {
                            let knows = sub.presence_since == (since, now)
                                && sub.name.as_ref() == Some(&name);
                            if !knows {
                                deliver(sub, *id, &frame, Live::Frame, self);
                            }
                        }
                    }
                    room.presence.online = online;
                    return;
                }
                _ => {
                    let batch = ServerMsg::PresenceBatch {
                        room: room_name(),
                        online,
                        changed,
                        left,
                        full: false,
                    };
                    Some((batch, Some(singles)))
                }
            }
        };
        let since = room.presence.flushes;
        room.presence.online = online;
        room.presence.flushes += 1;
        let Some((batch, singles)) = msg else { return };
        let batch = encode(&batch);
        if room.subscribers.values().all(|sub| sub.batches) {
            return room.fan_out(&batch, Live::Frame, self);
        }
        let singles: Option<Vec<_>> = singles.map(|singles| {
            singles
                .into_iter()
                .map(|(name, now, msg)| (name, now, encode(&msg)))
                .collect()
        });
        for (id, sub) in &mut room.subscribers {
            if sub.batches {
                deliver(sub, *id, &batch, Live::Frame, self);
                continue;
            }
            // A v2 session: the changes one by one, as long as they fit its queue now; past
            // that, or for a list to replace, a new welcome (it reconnects).
            match &singles {
                Some(singles) if singles.len() <= sub.tx.capacity() => {
                    for (name, now, frame) in singles {
                        // What its own snapshot already showed (see `flush_presence`'s
                        // single change).
                        let knows =
                            sub.presence_since == (since, *now) && sub.name.as_ref() == Some(name);
                        if !knows {
                            deliver(sub, *id, frame, Live::Frame, self);
                        }
                    }
                }
                _ => {
                    sub.kick.kick(
                        close_code::TRY_AGAIN_LATER,
                        "presence changed too much: reconnect for the member list",
                        true,
                    );
                }
            }
        }
    }

    /// A page of the room's members (here and on other nodes) in name order, after `after`;
    /// with the member count and the `after` of the next page, if any.
    pub fn members_page(
        &self,
        room_id: &RoomId,
        after: Option<&str>,
    ) -> (Vec<Member>, u32, Option<String>) {
        let limit = self.presence.page;
        let (mut page, online) = match self.room(room_id) {
            Some(cell) => {
                let room = lock_room(&cell);
                (
                    room.members_after(room_id, self, after, limit + 1),
                    room.online(room_id, self),
                )
            }
            None => {
                let all = self.members_of(room_id);
                let online = all.len() as u32;
                let page = all
                    .into_iter()
                    .filter(|m| after.is_none_or(|after| m.name.as_str() > after))
                    .take(limit + 1)
                    .collect();
                (page, online)
            }
        };
        let next = (page.len() > limit).then(|| {
            page.truncate(limit);
            page.last().map(|m| m.name.clone()).unwrap_or_default()
        });
        (page, online, next)
    }

    /// What a joiner is told of a room's members: all of them, or in a room too large to
    /// list, the first page; and the member count. Never the cost of the whole list in a
    /// large room.
    pub(super) fn snapshot_members(&self, room_id: &RoomId, room: &mut Room) -> (Vec<Member>, u32) {
        let online = room.online(room_id, self);
        let limit = if online as usize > self.presence.list_max {
            // A joiner with a page only is sent the whole list once the room is small again,
            // even if no count went out in between.
            room.presence.counted = true;
            self.presence.page
        } else {
            usize::MAX
        };
        (room.members_after(room_id, self, None, limit), online)
    }

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
            let mut any = false;
            for name in names {
                if before.get(name) == after.get(name) {
                    continue;
                }
                let local = room.names.get(name).map(|h| h.connections);
                let was = merge(local, before.get(name).copied());
                room.presence.was.entry(name.clone()).or_insert(was);
                any = true;
            }
            if any {
                self.presence_changed(room_id, &mut room);
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
}

impl Room {
    /// Records a name's presence as it is before a change (once per announcement).
    pub(super) fn before_change(&mut self, room_id: &RoomId, name: &Username, hub: &Hub) {
        if !self.presence.was.contains_key(name) {
            let now = self.connections_of(room_id, name, hub);
            self.presence.was.insert(name.clone(), now);
        }
    }

    /// A name's connections here and on other nodes; `None` if it is not a member.
    pub(super) fn connections_of(
        &self,
        room_id: &RoomId,
        name: &Username,
        hub: &Hub,
    ) -> Option<u32> {
        merge(
            self.names.get(name).map(|h| h.connections),
            hub.remote_count(room_id, name),
        )
    }

    /// How many members the room has, here and on other nodes.
    fn online(&self, room_id: &RoomId, hub: &Hub) -> u32 {
        let remote = hub.remote.read().expect("remote members poisoned");
        let elsewhere = remote.get(room_id).map_or(0, |names| {
            names
                .keys()
                .filter(|n| !self.names.contains_key(*n))
                .count()
        });
        (self.names.len() + elsewhere) as u32
    }

    /// Everyone in the room, on this node and the others.
    pub(super) fn members(&self, room_id: &RoomId, hub: &Hub) -> Vec<Member> {
        self.members_after(room_id, hub, None, usize::MAX)
    }

    /// Up to `limit` of the room's members (here and on other nodes, connections summed) in
    /// name order, after `after`: a merge of the two sorted lists, O(limit) from the start.
    pub(super) fn members_after(
        &self,
        room_id: &RoomId,
        hub: &Hub,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<Member> {
        let remote = hub.remote.read().expect("remote members poisoned");
        let past = |name: &Username| after.is_none_or(|after| name.as_str() > after);
        let mut local = self
            .names
            .iter()
            .map(|(name, h)| (name, h.connections))
            .filter(|(name, _)| past(name))
            .peekable();
        let mut elsewhere = remote
            .get(room_id)
            .into_iter()
            .flatten()
            .map(|(name, c)| (name, *c))
            .filter(|(name, _)| past(name))
            .peekable();
        let mut members = Vec::new();
        while members.len() < limit {
            let (name, connections) = match (local.peek(), elsewhere.peek()) {
                (None, None) => break,
                (Some(_), None) => local.next(),
                (None, Some(_)) => elsewhere.next(),
                (Some((a, _)), Some((b, _))) => match a.cmp(b) {
                    std::cmp::Ordering::Less => local.next(),
                    std::cmp::Ordering::Greater => elsewhere.next(),
                    std::cmp::Ordering::Equal => {
                        let (name, here) = local.next().expect("peeked");
                        let (_, there) = elsewhere.next().expect("peeked");
                        Some((name, here + there))
                    }
                },
            }
            .expect("one side has a next member");
            members.push(Member {
                name: name.to_string(),
                connections,
            });
        }
        members
    }
}
