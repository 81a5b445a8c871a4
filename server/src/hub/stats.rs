//! The live feed: the once-a-second stats frame, its recent history for the welcome, and who
//! receives it.

use super::*;

impl Hub {
    pub fn set_feed(&self, session: SessionId, enabled: bool) {
        self.with_subscription(session, |_, room| {
            if let Some(sub) = room.subscribers.get_mut(&session) {
                sub.feed = enabled;
            }
        });
    }

    /// Takes one live-feed sample and sends it to every session that wants it, room by room.
    /// `messages_per_sec` is the count since the previous call, which the caller makes each second.
    pub fn publish_stats(&self, messages_per_sec: u64) -> Stats {
        let stats = Stats {
            connections: self.connection_count() as u64,
            rooms: self.room_count() as u64,
            messages_per_sec,
            uptime_secs: self.started.elapsed().as_secs(),
            server_time_ms: unix_millis(),
        };
        {
            let mut recent = self.recent_stats();
            recent.push_back(stats.clone());
            while recent.len() > self.stats_history {
                recent.pop_front();
            }
        }
        let frame = encode(&ServerMsg::Stats(stats.clone()));
        for (_, cell) in self.all_rooms() {
            for (id, sub) in &mut lock_room(&cell).subscribers {
                if sub.feed {
                    deliver(sub, *id, &frame, Live::Frame, self);
                }
            }
        }
        stats
    }

    /// Chat messages published since start (the store's commits).
    pub fn messages_total(&self) -> u64 {
        self.metrics.persisted.get()
    }
}
