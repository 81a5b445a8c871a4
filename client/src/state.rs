//! The room's reactive state. The connection's events are applied here, in order; components
//! only read these signals.
//!
//! History: chat lines carry the room's `seq`; the last one seen (with the history `epoch`) is
//! what a reconnect asks to resume from, and anything at or below it is a duplicate.
//! Outbox: messages typed while disconnected (or not yet acknowledged) stay pending, in memory
//! and in `localStorage`, are sent on every welcome, and leave the outbox when acknowledged.

use std::collections::VecDeque;

use leptos::prelude::*;
use shared::{
    ChatMsg, GapReason, Limits, Member, PROTOCOL_VERSION, Resume, RoomId, ServerMsg, Stats,
    TYPING_TTL_MS,
};

use crate::connection::{ConnEvent, ConnState};
use crate::identity::{self, Pending};

/// Lines kept in the message list.
const MAX_LINES: usize = 1000;
/// Live-feed points kept for the chart (one a second).
pub const CHART_POINTS: usize = 60;
/// Socket events kept in the diagnostics log.
const MAX_EVENTS: usize = 12;

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

/// One entry of the socket event log (open / message / close / error).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub id: u64,
    pub at_ms: f64,
    pub kind: &'static str,
    pub detail: String,
}

/// A problem to show the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub title: String,
    pub detail: String,
}

#[derive(Clone, Copy)]
pub struct RoomState {
    pub room: StoredValue<RoomId>,
    pub my_name: StoredValue<String>,
    pub conn: RwSignal<ConnState>,
    pub peer_addr: RwSignal<Option<String>>,
    pub server_version: RwSignal<Option<String>>,
    pub lines: RwSignal<Vec<Line>>,
    /// Messages not yet seen broadcast, oldest first.
    pub outbox: RwSignal<Vec<Pending>>,
    pub members: RwSignal<Vec<Member>>,
    /// Who is typing, with when the notice expires (`Date.now()` ms).
    pub typing: RwSignal<Vec<(String, f64)>>,
    pub stats: RwSignal<VecDeque<Stats>>,
    pub limits: RwSignal<Option<Limits>>,
    pub problem: RwSignal<Option<Problem>>,
    pub log: RwSignal<VecDeque<LogEntry>>,
    /// Frames received since the page loaded.
    pub received: RwSignal<u64>,
    /// The history position: epoch and the last `seq` seen.
    pub epoch: RwSignal<Option<String>>,
    pub last_seq: RwSignal<u64>,
    /// Whether older history can be loaded (`seq` of the oldest line shown > 1).
    pub has_older: RwSignal<bool>,
    next_id: StoredValue<u64>,
    welcomes: StoredValue<u32>,
}

impl RoomState {
    pub fn new(room: RoomId, my_name: String) -> Self {
        let outbox = identity::load_outbox(&room, &my_name);
        Self {
            room: StoredValue::new(room),
            my_name: StoredValue::new(my_name),
            conn: RwSignal::new(ConnState::Connecting),
            peer_addr: RwSignal::new(None),
            server_version: RwSignal::new(None),
            lines: RwSignal::new(Vec::new()),
            outbox: RwSignal::new(outbox),
            members: RwSignal::new(Vec::new()),
            typing: RwSignal::new(Vec::new()),
            stats: RwSignal::new(VecDeque::new()),
            limits: RwSignal::new(None),
            problem: RwSignal::new(None),
            log: RwSignal::new(VecDeque::new()),
            received: RwSignal::new(0),
            epoch: RwSignal::new(None),
            last_seq: RwSignal::new(0),
            has_older: RwSignal::new(false),
            next_id: StoredValue::new(0),
            welcomes: StoredValue::new(0),
        }
    }

    /// Where to resume from on the next connection: `(epoch, last seq)` once welcomed.
    pub fn position(&self) -> Option<(String, u64)> {
        Some((self.epoch.get_untracked()?, self.last_seq.get_untracked()))
    }

    fn id(&self) -> u64 {
        self.next_id.update_value(|n| *n += 1);
        self.next_id.get_value()
    }

    fn line(&self, kind: LineKind) -> Line {
        Line {
            id: self.id(),
            kind,
        }
    }

    fn push_line(&self, kind: LineKind) {
        let line = self.line(kind);
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

    fn log_event(&self, kind: &'static str, detail: String) {
        let entry = LogEntry {
            id: self.id(),
            at_ms: js_sys::Date::now(),
            kind,
            detail,
        };
        self.log.update(|log| {
            log.push_front(entry);
            log.truncate(MAX_EVENTS);
        });
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

    /// Prepends a page of older history (from the HTTP API).
    pub fn prepend(&self, page: Vec<ChatMsg>, has_more: bool) {
        let oldest = self.oldest_seq();
        let older: Vec<Line> = page
            .into_iter()
            .filter(|m| oldest.is_none_or(|o| m.seq < o))
            .map(|m| self.line(self.chat_line(m)))
            .collect();
        self.lines.update(|lines| {
            lines.splice(0..0, older);
        });
        self.has_older.set(has_more);
    }

    /// The smallest `seq` shown.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.lines.with_untracked(|lines| {
            lines.iter().find_map(|l| match l.kind {
                LineKind::Chat { seq, .. } => Some(seq),
                LineKind::Notice(_) => None,
            })
        })
    }

    /// Applies one connection event.
    pub fn apply(&self, event: ConnEvent) {
        match event {
            ConnEvent::State(state) => self.conn.set(state),
            ConnEvent::Opened => self.log_event("open", String::new()),
            ConnEvent::Error => self.log_event("error", "the connection failed".into()),
            ConnEvent::BadFrame(why) => {
                self.log_event("message", format!("unreadable frame: {why}"))
            }
            ConnEvent::Closed {
                code,
                reason,
                clean,
            } => {
                let detail = if reason.is_empty() {
                    format!("code {code}")
                } else {
                    format!("code {code}: {reason}")
                };
                self.log_event(
                    "close",
                    if clean {
                        detail
                    } else {
                        format!("{detail} (unclean)")
                    },
                );
                if self.welcomes.get_value() > 0 && self.conn.get_untracked().is_open() {
                    self.notice("Connection lost; messages you send now wait in the outbox");
                }
                self.typing.set(Vec::new());
            }
            ConnEvent::Message(msg) => {
                self.received.update(|n| *n += 1);
                self.on_message(msg);
            }
        }
    }

    fn on_message(&self, msg: ServerMsg) {
        match msg {
            ServerMsg::Welcome(w) => {
                self.log_event("message", format!("welcome, session {}", w.session));
                if w.protocol != PROTOCOL_VERSION {
                    self.problem.set(Some(Problem {
                        title: "Please reload".into(),
                        detail: format!(
                            "The server speaks protocol {} and this page speaks {}.",
                            w.protocol, PROTOCOL_VERSION
                        ),
                    }));
                }
                let again = self.welcomes.get_value() > 0;
                self.welcomes.update_value(|n| *n += 1);
                self.peer_addr.set(Some(w.peer_addr));
                self.server_version.set(Some(w.server_version));
                self.members.set(w.members);
                self.limits.set(Some(w.limits));
                self.stats.set(w.recent_stats.into_iter().collect());
                let epoch_changed = self.epoch.get_untracked().is_some_and(|e| e != w.epoch);
                if epoch_changed || !again {
                    self.last_seq.set(0);
                }
                self.epoch.set(Some(w.epoch));
                self.notice(resume_notice(&w.resume, again, &w.room));
            }
            ServerMsg::Chat(c) => {
                if c.seq <= self.last_seq.get_untracked() {
                    return; // already shown
                }
                self.last_seq.set(c.seq);
                if let Some(id) = &c.id {
                    let had = self
                        .outbox
                        .with_untracked(|o| o.iter().any(|p| &p.id == id));
                    if had {
                        self.outbox.update(|o| o.retain(|p| &p.id != id));
                        self.save_outbox();
                    }
                }
                self.typing.update(|t| t.retain(|(n, _)| *n != c.name));
                if self.oldest_seq().is_none() {
                    self.has_older.set(c.seq > 1);
                }
                self.push_line(self.chat_line(c));
            }
            ServerMsg::Ack { id, seq, .. } => {
                self.outbox.update(|o| {
                    if let Some(p) = o.iter_mut().find(|p| p.id == id) {
                        p.acked = Some(seq);
                    }
                });
                self.save_outbox();
            }
            ServerMsg::Nack {
                id, code, reason, ..
            } => {
                // Refused for good: it leaves the outbox, so no reconnect sends it again.
                let text = self
                    .outbox
                    .with_untracked(|o| o.iter().find(|p| p.id == id).map(|p| p.text.clone()));
                self.outbox.update(|o| o.retain(|p| p.id != id));
                self.save_outbox();
                self.log_event("message", format!("nack {code:?}"));
                if let Some(text) = text {
                    self.notice(format!(
                        "Not delivered: \u{201c}{text}\u{201d} was refused by the server and will not be resent"
                    ));
                }
                self.problem.set(Some(Problem {
                    title: "Message refused".into(),
                    detail: reason,
                }));
            }
            ServerMsg::Joined { member, .. } => {
                self.notice(format!("{} joined", member.name));
                self.members.update(|m| {
                    m.retain(|x| x.name != member.name);
                    m.push(member);
                    m.sort_by(|a, b| a.name.cmp(&b.name));
                });
            }
            ServerMsg::Presence { member, .. } => {
                self.members
                    .update(|m| match m.iter_mut().find(|x| x.name == member.name) {
                        Some(x) => *x = member,
                        None => m.push(member),
                    })
            }
            ServerMsg::Left { member, .. } => {
                self.notice(format!("{} left", member.name));
                self.members.update(|m| m.retain(|x| x.name != member.name));
                self.typing.update(|t| t.retain(|(n, _)| *n != member.name));
            }
            ServerMsg::Typing { name, .. } => {
                let until = js_sys::Date::now() + TYPING_TTL_MS as f64;
                self.typing
                    .update(|t| match t.iter_mut().find(|(n, _)| *n == name) {
                        Some(entry) => entry.1 = until,
                        None => t.push((name, until)),
                    });
            }
            ServerMsg::Stats(s) => self.stats.update(|points| {
                points.push_back(s);
                while points.len() > CHART_POINTS {
                    points.pop_front();
                }
            }),
            ServerMsg::Error { code, reason, .. } => {
                self.log_event("message", format!("error {code:?}"));
                let title = match code {
                    shared::ErrorCode::NameTaken => "That name is taken",
                    shared::ErrorCode::NameInvalid => "That name cannot be used",
                    shared::ErrorCode::RoomInvalid => "That room name cannot be used",
                    shared::ErrorCode::RateLimited => "Slow down",
                    shared::ErrorCode::TextInvalid => "Message not sent",
                    shared::ErrorCode::StoreUnavailable => "Message not stored yet",
                    shared::ErrorCode::StoreRejected => "Message refused",
                    _ => "The server refused a message",
                };
                self.problem.set(Some(Problem {
                    title: title.into(),
                    detail: reason,
                }));
            }
            ServerMsg::Reload { reason, .. } => self.problem.set(Some(Problem {
                title: "A new version is available \u{2014} reload".into(),
                detail: reason,
            })),
            // Protocol v3 frames; this client speaks v2 and never asks for v3.
            ServerMsg::Hello(_)
            | ServerMsg::Subscribed(_)
            | ServerMsg::Unsubscribed { .. }
            | ServerMsg::JoinRefused { .. } => {
                self.log_event("message", "unexpected protocol v3 frame".into())
            }
            ServerMsg::Shutdown { retry_after_ms } => {
                self.notice(format!(
                    "The server is restarting; reconnecting in {:.1} s",
                    retry_after_ms as f64 / 1000.0
                ));
            }
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
