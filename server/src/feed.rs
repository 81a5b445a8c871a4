//! The live feed: once a second, a [`shared::Stats`] sample to every session that wants it.

use std::sync::Arc;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// How long the feed waits between samples.
pub const FEED_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn run(hub: Arc<Hub>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(FEED_PERIOD);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_total = hub.messages_total();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let total = hub.messages_total();
        hub.publish_stats(total - last_total);
        last_total = total;
    }
}
