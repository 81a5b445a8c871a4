//! One joined room's reactive state: its lines, history position, outbox, members, typing and
//! unread count. The session routes each room-scoped frame here by its `room`.
//!
//! History: chat lines carry the room's `seq`; the last one seen (with the history `epoch`) is
//! what a (re)join asks to resume from, and anything at or below it is a duplicate.
//! Outbox: messages typed while disconnected (or not yet acknowledged) stay pending, in memory
//! and in `localStorage`, are sent again on every `subscribed`, and leave the outbox when
//! acknowledged and broadcast.

use std::sync::atomic::{AtomicU64, Ordering};

use leptos::prelude::*;
use shared::{ChatMsg, DataMsg, GapReason, Member, Resume, RoomId, Subscribed, TYPING_TTL_MS};

use crate::identity::{self, Pending};

/// Lines kept per room.
const MAX_LINES: usize = 1000;

/// How far back a data key's chart reaches, in milliseconds.
pub const DATA_WINDOW_MS: f64 = 5.0 * 60_000.0;
/// Points kept per data key (a point a second fills the window).
const MAX_POINTS: usize = 300;
/// Data keys shown per room.
const MAX_KEYS: usize = 50;

/// One data key of a room: its latest value and, when numeric, its recent values.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub key: String,
    /// The latest value, as its JSON text.
    pub text: String,
    /// When the latest value was published (server time, ms).
    pub ts: u64,
    /// `(ts, value)` of numeric values in the window, oldest first.
    pub points: Vec<(f64, f64)>,
}

/// A page-wide counter for keyed rendering.
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug, Clone, PartialEq)]
pub enum LineKind {
    Chat {
        seq: u64,
        name: String,
        text: String,
        ts: u64,
        mine: bool,
    },
    /// Joins, leaves, connection changes, recovery outcomes.
    Notice(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Unique within the page, for keyed rendering.
    pub id: u64,
    pub kind: LineKind,
}

/// Where a room stands with the server.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomStatus {
    /// `join` sent (or waiting for the connection), no `subscribed` yet.
    Joining,
    /// Subscribed: live frames arrive.
    Joined,
    /// The server refused the join or dropped the room; the reason is shown with a retry.
    Refused(String),
}

#[derive(Clone, Copy)]
pub struct RoomState {
    pub room: StoredValue<RoomId>,
    pub my_name: StoredValue<String>,
    pub status: RwSignal<RoomStatus>,
    pub lines: RwSignal<Vec<Line>>,
    /// Messages not yet seen broadcast, oldest first.
    pub outbox: RwSignal<Vec<Pending>>,
    pub members: RwSignal<Vec<Member>>,
    /// How many members the room has: more than `members` holds in a room too large for
    /// the server to list (its list is paged).
    pub online: RwSignal<u32>,
    /// `members` holds pages of a room too large to list, loaded from the start in name
    /// order (so the next page is after its last name); the count alone is kept live.
    paged: StoredValue<bool>,
    /// Who is typing, with when the notice expires (`Date.now()` ms).
    pub typing: RwSignal<Vec<(String, f64)>>,
    /// Chat messages from others that arrived while another room was shown.
    pub unread: RwSignal<u32>,
    /// The history position: epoch and the last `seq` seen.
    pub epoch: RwSignal<Option<String>>,
    pub last_seq: RwSignal<u64>,
    /// Whether older history can be loaded (`seq` of the oldest line shown > 1).
    pub has_older: RwSignal<bool>,
    /// The room's data publications, by key (in order of first arrival).
    pub data: RwSignal<Vec<Series>>,
    /// The smallest `seq` of a history entry seen that is not a chat line (a durable data
    /// point), so loading older history moves past pages of them.
    oldest_entry: StoredValue<Option<u64>>,
    /// Whether this room was subscribed before (a later `subscribed` is a resume).
    subscribed_before: StoredValue<bool>,
    /// Messages of a first join's replay still to come: history, not unread news.
    history_left: StoredValue<u64>,
}

impl RoomState {
    pub fn new(room: RoomId, my_name: String) -> Self {
        let outbox = identity::load_outbox(&room, &my_name);
        Self {
            room: StoredValue::new(room),
            my_name: StoredValue::new(my_name),
            status: RwSignal::new(RoomStatus::Joining),
            lines: RwSignal::new(Vec::new()),
            outbox: RwSignal::new(outbox),
            members: RwSignal::new(Vec::new()),
            online: RwSignal::new(0),
            paged: StoredValue::new(false),
            typing: RwSignal::new(Vec::new()),
            unread: RwSignal::new(0),
            epoch: RwSignal::new(None),
            last_seq: RwSignal::new(0),
            has_older: RwSignal::new(false),
            data: RwSignal::new(Vec::new()),
            oldest_entry: StoredValue::new(None),
            subscribed_before: StoredValue::new(false),
            history_left: StoredValue::new(0),
        }
    }

    pub fn id(&self) -> RoomId {
        self.room.get_value()
    }

    pub fn is(&self, room: &str) -> bool {
        self.room.with_value(|r| r.as_str() == room)
    }

    /// Where to resume from on the next join: `(epoch, last seq)` once subscribed.
    pub fn position(&self) -> Option<(String, u64)> {
        Some((self.epoch.get_untracked()?, self.last_seq.get_untracked()))
    }

    /// Messages to send (again): everything not yet acknowledged.
    pub fn unacked(&self) -> Vec<Pending> {
        self.outbox
            .with_untracked(|o| o.iter().filter(|p| p.acked.is_none()).cloned().collect())
    }

    fn push_line(&self, kind: LineKind) {
        let line = Line {
            id: next_id(),
            kind,
        };
        self.lines.update(|lines| {
            lines.push(line);
            if lines.len() > MAX_LINES {
                lines.drain(..lines.len() - MAX_LINES);
            }
        });
    }

    pub fn notice(&self, text: impl Into<String>) {
        self.push_line(LineKind::Notice(text.into()));
    }

    /// Adds a typed message to the outbox; returns it for sending.
    pub fn queue(&self, text: String) -> Pending {
        let pending = Pending {
            id: identity::random_hex(12),
            text,
            acked: None,
        };
        self.outbox.update(|o| o.push(pending.clone()));
        self.save_outbox();
        pending
    }

    /// Forgets the messages not yet sent (the room is being left).
    pub fn discard_outbox(&self) {
        self.outbox.set(Vec::new());
        self.save_outbox();
    }

    fn save_outbox(&self) {
        self.outbox.with_untracked(|o| {
            identity::save_outbox(&self.room.get_value(), &self.my_name.get_value(), o)
        });
    }

    fn chat_line(&self, c: ChatMsg) -> LineKind {
        let mine = c.name == self.my_name.get_value();
        LineKind::Chat {
            seq: c.seq,
            name: c.name,
            text: c.msg,
            ts: c.ts,
            mine,
        }
    }

    /// A data publication. A durable one holds a place in the history (a replayed one is not
    /// applied twice); an older value than the one shown (a `latest` snapshot overtaken by a
    /// live value) only joins the chart.
    pub fn data(&self, d: DataMsg) {
        if let Some(seq) = d.seq {
            if self.oldest_seq().is_none() {
                self.has_older.set(seq > 1);
            }
            self.note_entry(seq);
            if seq <= self.last_seq.get_untracked() {
                return;
            }
            self.last_seq.set(seq);
            if self.history_left.get_value() > 0 {
                self.history_left.update_value(|n| *n -= 1);
            }
        }
        let text = d.data.as_str();
        // A JSON number starts so; its value comes from the browser's parser (Rust's float
        // parsing is not in the bundle).
        let number = text
            .starts_with(|c: char| c == '-' || c.is_ascii_digit())
            .then(|| js_sys::Number::parse_float(text))
            .filter(|v| v.is_finite());
        let ts = d.ts as f64;
        self.data.update(|all| {
            let at = match all.iter().position(|s| s.key == d.key) {
                Some(at) => at,
                None if all.len() >= MAX_KEYS => return,
                None => {
                    all.push(Series {
                        key: d.key.clone(),
                        text: String::new(),
                        ts: 0,
                        points: Vec::new(),
                    });
                    all.len() - 1
                }
            };
            let series = &mut all[at];
            if d.ts >= series.ts {
                series.ts = d.ts;
                series.text = text.to_owned();
            }
            // A `latest` value sent again on a rejoin is one point, not two.
            let known = series.points.iter().any(|(t, _)| *t == ts);
            if let Some(v) = number.filter(|_| !known) {
                let place = series.points.partition_point(|(t, _)| *t <= ts);
                series.points.insert(place, (ts, v));
                let newest = series.points.last().map_or(ts, |p| p.0);
                series.points.retain(|(t, _)| newest - t <= DATA_WINDOW_MS);
                let extra = series.points.len().saturating_sub(MAX_POINTS);
                series.points.drain(..extra);
            }
        });
    }

    /// Prepends a page of older history (from the HTTP API); data points in it are not chat
    /// lines.
    pub fn prepend(&self, page: Vec<ChatMsg>, has_more: bool) {
        let oldest = self.oldest_seq();
        if let Some(first) = page.first() {
            self.note_entry(first.seq);
        }
        let older: Vec<Line> = page
            .into_iter()
            .filter(|m| m.key.is_none() && oldest.is_none_or(|o| m.seq < o))
            .map(|m| Line {
                id: next_id(),
                kind: self.chat_line(m),
            })
            .collect();
        self.lines.update(|lines| {
            lines.splice(0..0, older);
        });
        self.has_older.set(has_more);
    }

    fn note_entry(&self, seq: u64) {
        self.oldest_entry
            .update_value(|o| *o = Some(o.map_or(seq, |o| o.min(seq))));
    }

    /// The smallest `seq` shown, or of a history entry seen that is not shown (a durable data
    /// point): where older history continues.
    pub fn oldest_seq(&self) -> Option<u64> {
        let chat = self.lines.with_untracked(|lines| {
            lines.iter().find_map(|l| match l.kind {
                LineKind::Chat { seq, .. } => Some(seq),
                LineKind::Notice(_) => None,
            })
        });
        match (chat, self.oldest_entry.get_value()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The answer to a join: history position, resume outcome, members.
    pub fn subscribed(&self, s: Subscribed) {
        let again = self.subscribed_before.get_value();
        self.subscribed_before.set_value(true);
        let epoch_changed = self.epoch.get_untracked().is_some_and(|e| e != s.epoch);
        if epoch_changed || !again {
            self.last_seq.set(0);
        }
        self.epoch.set(Some(s.epoch));
        let mut members = Vec::with_capacity(s.members.len());
        for member in s.members {
            insert_sorted(&mut members, member);
        }
        self.online.set(s.online.max(members.len() as u32));
        self.paged.set_value(s.online as usize > members.len());
        self.members.set(members);
        self.status.set(RoomStatus::Joined);
        // What a reconnect recovers was missed, so it counts as unread; a first join's
        // history does not.
        self.history_left.set_value(match s.resume {
            Resume::Fresh { count } => count,
            _ => 0,
        });
        self.notice(resume_notice(&s.resume, again, &s.room));
    }

    /// A chat message; returns whether it is news from someone else (for the unread count):
    /// not a duplicate, not the sender's own, not a first join's history.
    pub fn chat(&self, c: ChatMsg) -> bool {
        if c.seq <= self.last_seq.get_untracked() {
            return false; // already shown
        }
        let history = self.history_left.get_value() > 0;
        if history {
            self.history_left.update_value(|n| *n -= 1);
        }
        self.last_seq.set(c.seq);
        if let Some(id) = &c.id
            && self
                .outbox
                .with_untracked(|o| o.iter().any(|p| &p.id == id))
        {
            self.outbox.update(|o| o.retain(|p| &p.id != id));
            self.save_outbox();
        }
        self.typing.update(|t| t.retain(|(n, _)| *n != c.name));
        if self.oldest_seq().is_none() {
            self.has_older.set(c.seq > 1);
        }
        let line = self.chat_line(c);
        let news = !history && matches!(line, LineKind::Chat { mine: false, .. });
        self.push_line(line);
        news
    }

    pub fn ack(&self, id: &str, seq: u64) {
        self.outbox.update(|o| {
            if let Some(p) = o.iter_mut().find(|p| p.id == id) {
                p.acked = Some(seq);
            }
        });
        self.save_outbox();
    }

    /// Refused for good: it leaves the outbox, so no reconnect sends it again.
    pub fn nack(&self, id: &str) {
        let text = self
            .outbox
            .with_untracked(|o| o.iter().find(|p| p.id == id).map(|p| p.text.clone()));
        self.outbox.update(|o| o.retain(|p| p.id != id));
        self.save_outbox();
        if let Some(text) = text {
            self.notice(format!(
                "Not delivered: \u{201c}{text}\u{201d} was refused by the server and will not be resent"
            ));
        }
    }

    pub fn joined(&self, member: Member) {
        self.notice(format!("{} joined", member.name));
        self.presence(member);
    }

    /// A member's connections changed (or it arrived); the count follows the list, as the
    /// server sends single changes only in rooms it lists.
    pub fn presence(&self, member: Member) {
        self.members.update(|m| upsert(m, member));
        self.online
            .set(self.members.with_untracked(|m| m.len() as u32));
    }

    pub fn left(&self, member: Member) {
        self.notice(format!("{} left", member.name));
        self.gone(&member.name);
        self.online
            .set(self.members.with_untracked(|m| m.len() as u32));
    }

    fn gone(&self, name: &str) {
        self.members.update(|m| m.retain(|x| x.name != name));
        self.typing.update(|t| t.retain(|(n, _)| n != name));
    }

    /// Several changes at once (`presence_batch`); in a room too large to list, only the
    /// count. Arrivals and departures are summed up in one notice. `true` when the room has
    /// just become too large to list: the list is emptied, and its first page must be asked
    /// for (the names held are no longer a prefix of the room's).
    pub fn presence_batch(
        &self,
        online: u32,
        changed: Vec<Member>,
        left: Vec<String>,
        full: bool,
    ) -> bool {
        if full {
            self.members.set(Vec::new());
            self.paged.set_value(false);
        } else if changed.is_empty() && left.is_empty() && !self.paged.get_value() {
            self.paged.set_value(true);
            self.members.set(Vec::new());
            self.online.set(online);
            return true;
        }
        let known = |name: &str| {
            self.members
                .with_untracked(|m| m.iter().any(|x| x.name == name))
        };
        let arrived = changed.iter().filter(|m| !known(&m.name)).count();
        let departed = left.iter().filter(|n| known(n)).count();
        for name in &left {
            self.gone(name);
        }
        self.members.update(|m| {
            for member in changed {
                upsert(m, member);
            }
        });
        self.online.set(online);
        if !full {
            let mut parts = Vec::new();
            if arrived > 0 {
                parts.push(format!("{arrived} joined"));
            }
            if departed > 0 {
                parts.push(format!("{departed} left"));
            }
            if !parts.is_empty() {
                self.notice(parts.join(", "));
            }
        }
        false
    }

    /// A page of a large room's member list (the answer to `members`).
    pub fn members_page(&self, page: Vec<Member>, online: u32) {
        self.members.update(|m| {
            for member in page {
                upsert(m, member);
            }
        });
        self.online.set(online);
    }

    pub fn typing(&self, name: String) {
        let until = js_sys::Date::now() + TYPING_TTL_MS as f64;
        self.typing
            .update(|t| match t.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = until,
                None => t.push((name, until)),
            });
    }

    /// The connection dropped: typing notices go, and the room waits for the next join.
    pub fn disconnected(&self) {
        self.typing.set(Vec::new());
        if self.status.get_untracked() == RoomStatus::Joined {
            self.status.set(RoomStatus::Joining);
        }
    }

    /// Drops typing notices that have expired.
    pub fn expire_typing(&self, now_ms: f64) {
        if self
            .typing
            .with_untracked(|t| t.iter().any(|(_, until)| *until <= now_ms))
        {
            self.typing
                .update(|t| t.retain(|(_, until)| *until > now_ms));
        }
    }
}

/// Adds or replaces a member, keeping the list sorted by name.
fn upsert(members: &mut Vec<Member>, member: Member) {
    match members.iter_mut().find(|x| x.name == member.name) {
        Some(x) => *x = member,
        None => insert_sorted(members, member),
    }
}

/// Keeps the member list sorted by name.
fn insert_sorted(members: &mut Vec<Member>, member: Member) {
    let at = members.partition_point(|x| x.name < member.name);
    members.insert(at, member);
}

/// What the user is told after a (re)join. Never silent about a gap.
pub fn resume_notice(resume: &Resume, again: bool, room: &str) -> String {
    let plural = |n: u64| if n == 1 { "message" } else { "messages" };
    match (resume, again) {
        (Resume::Fresh { .. }, _) | (Resume::Live, false) => format!("You joined #{room}"),
        (Resume::Live, true) => "Reconnected; nothing was missed".into(),
        (Resume::Recovered { count }, _) => {
            format!("Reconnected; recovered {count} missed {}", plural(*count))
        }
        (
            Resume::Gap {
                reason: GapReason::Trimmed,
                count,
            },
            _,
        ) => format!(
            "Some messages are no longer available (history trimmed); showing the {count} that are"
        ),
        (
            Resume::Gap {
                reason: GapReason::EpochChanged,
                count,
            },
            _,
        ) => format!(
            "The server's history was reset; earlier messages may be missing. Showing the latest {count}"
        ),
    }
}
