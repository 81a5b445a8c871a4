//! The live feed: the once-a-second stats frame, its recent history for the welcome, and who
//! receives it.

use super::*;

impl Hub {
    pub fn set_feed(&self, session: SessionId, enabled: bool) {
        if let Some(sub) = self.lock().sessions.get_mut(&session) {
            sub.feed = enabled;
        }
    }

    /// Takes one live-feed sample and sends it to every session that wants it.
    /// `messages_per_sec` is the count since the previous call, which the caller makes each second.
    pub fn publish_stats(&self, messages_per_sec: u64) -> Stats {
        let mut state = self.lock();
        let stats = Stats {
            connections: state.connection_count() as u64,
            rooms: state.rooms.len() as u64,
            messages_per_sec,
            uptime_secs: self.started.elapsed().as_secs(),
            server_time_ms: unix_millis(),
        };
        state.recent_stats.push_back(stats.clone());
        while state.recent_stats.len() > self.stats_history {
            state.recent_stats.pop_front();
        }
        let frame = encode(&ServerMsg::Stats(stats.clone()));
        let targets: Vec<SessionId> = state
            .sessions
            .iter()
            .filter(|(_, s)| s.feed)
            .map(|(id, _)| *id)
            .collect();
        for id in targets {
            deliver(&mut state.sessions, id, &frame, None, self);
        }
        stats
    }

    /// Chat messages published since start (the store's commits).
    pub fn messages_total(&self) -> u64 {
        self.metrics.persisted.get()
    }
}
