//! The room's reactive state. The connection's events are applied here, in order; components
//! only read these signals.

use std::collections::VecDeque;

use leptos::prelude::*;
use shared::{Limits, Member, PROTOCOL_VERSION, ServerMsg, SessionId, Stats};

use crate::connection::{ConnEvent, ConnState};

/// Lines kept in the message list.
const MAX_LINES: usize = 500;
/// Live-feed points kept for the chart (one a second).
pub const CHART_POINTS: usize = 60;
/// Socket events kept in the diagnostics log.
const MAX_EVENTS: usize = 12;

#[derive(Debug, Clone, PartialEq)]
pub enum LineKind {
    Chat {
        name: String,
        text: String,
        ts: u64,
        mine: bool,
    },
    /// Joins, leaves, connection changes.
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
    pub conn: RwSignal<ConnState>,
    pub me: RwSignal<Option<SessionId>>,
    pub my_name: RwSignal<Option<String>>,
    pub peer_addr: RwSignal<Option<String>>,
    pub server_version: RwSignal<Option<String>>,
    pub lines: RwSignal<Vec<Line>>,
    pub members: RwSignal<Vec<Member>>,
    pub stats: RwSignal<VecDeque<Stats>>,
    pub limits: RwSignal<Option<Limits>>,
    pub problem: RwSignal<Option<Problem>>,
    pub log: RwSignal<VecDeque<LogEntry>>,
    /// Frames received since the page loaded.
    pub received: RwSignal<u64>,
    next_id: StoredValue<u64>,
    welcomes: StoredValue<u32>,
}

impl Default for RoomState {
    fn default() -> Self {
        Self::new()
    }
}

impl RoomState {
    pub fn new() -> Self {
        Self {
            conn: RwSignal::new(ConnState::Connecting),
            me: RwSignal::new(None),
            my_name: RwSignal::new(None),
            peer_addr: RwSignal::new(None),
            server_version: RwSignal::new(None),
            lines: RwSignal::new(Vec::new()),
            members: RwSignal::new(Vec::new()),
            stats: RwSignal::new(VecDeque::new()),
            limits: RwSignal::new(None),
            problem: RwSignal::new(None),
            log: RwSignal::new(VecDeque::new()),
            received: RwSignal::new(0),
            next_id: StoredValue::new(0),
            welcomes: StoredValue::new(0),
        }
    }

    fn id(&self) -> u64 {
        self.next_id.update_value(|n| *n += 1);
        self.next_id.get_value()
    }

    fn push_line(&self, kind: LineKind) {
        let line = Line {
            id: self.id(),
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
                    self.notice("Connection lost");
                }
                self.members.set(Vec::new());
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
                self.me.set(Some(w.session));
                self.my_name.set(w.name.clone());
                self.peer_addr.set(Some(w.peer_addr));
                self.server_version.set(Some(w.server_version));
                self.members.set(w.members);
                self.limits.set(Some(w.limits));
                self.stats.set(w.recent_stats.into_iter().collect());
                let again = self.welcomes.get_value() > 0;
                self.welcomes.update_value(|n| *n += 1);
                self.notice(if again {
                    format!("Reconnected to #{}", w.room)
                } else {
                    format!("You joined #{} as {}", w.room, w.name.unwrap_or_default())
                });
            }
            ServerMsg::Chat(c) => {
                let mine = self.me.get_untracked() == Some(c.session);
                self.push_line(LineKind::Chat {
                    name: c.name,
                    text: c.msg,
                    ts: c.ts,
                    mine,
                });
            }
            ServerMsg::Joined { member, .. } => {
                self.notice(format!("{} joined", member.name));
                self.members.update(|m| {
                    if !m.iter().any(|x| x.session == member.session) {
                        m.push(member);
                    }
                });
            }
            ServerMsg::Left { member, .. } => {
                self.notice(format!("{} left", member.name));
                self.members
                    .update(|m| m.retain(|x| x.session != member.session));
            }
            ServerMsg::Stats(s) => self.stats.update(|points| {
                points.push_back(s);
                while points.len() > CHART_POINTS {
                    points.pop_front();
                }
            }),
            ServerMsg::Error { code, reason } => {
                self.log_event("message", format!("error {code:?}"));
                let title = match code {
                    shared::ErrorCode::NameTaken => "That name is taken",
                    shared::ErrorCode::NameInvalid => "That name cannot be used",
                    shared::ErrorCode::RoomInvalid => "That room name cannot be used",
                    shared::ErrorCode::RateLimited => "Slow down",
                    shared::ErrorCode::TextInvalid => "Message not sent",
                    _ => "The server refused a message",
                };
                self.problem.set(Some(Problem {
                    title: title.into(),
                    detail: reason,
                }));
            }
            ServerMsg::Shutdown { retry_after_ms } => {
                self.notice(format!(
                    "The server is restarting; reconnecting in {:.1} s",
                    retry_after_ms as f64 / 1000.0
                ));
            }
        }
    }
}
