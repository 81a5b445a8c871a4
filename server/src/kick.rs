//! Telling a session's writer to close the connection with a given code, from anywhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

/// Why and how a session is being closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KickReason {
    pub code: u16,
    pub reason: &'static str,
    /// Send what is already queued before the close frame (true for a typed error the client
    /// must see; false for a slow consumer, whose backlog is the problem).
    pub drain: bool,
}

/// Cloneable; the first kick wins.
///
/// Also how a WebSocket session tells its writer that it ended at a shutdown
/// ([`stop`](Self::stop)). The writer waits for either with [`poll_stop`](Self::poll_stop): an
/// atomic load and a lock-free waker, where waiting on a `CancellationToken` or a `Notify`
/// takes a lock on every poll, and a writer of a busy room polls once per frame it is sent.
#[derive(Debug, Clone, Default)]
pub struct Kick(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    reason: OnceLock<KickReason>,
    /// Wakes the session's reader (and an HTTP session's waiters).
    kicked: Notify,
    stopped: AtomicBool,
    /// The writer waiting in `poll_stop`.
    writer: AtomicWaker,
}

impl Kick {
    /// Asks the writer to close with `code`. Returns `false` if the session was already kicked.
    pub fn kick(&self, code: u16, reason: &'static str, drain: bool) -> bool {
        let first = self
            .0
            .reason
            .set(KickReason {
                code,
                reason,
                drain,
            })
            .is_ok();
        if first {
            self.0.kicked.notify_waiters();
            self.0.writer.wake();
        }
        first
    }

    /// Tells the writer that the session ended without a kick (a shutdown): it sends the
    /// session's last answers, the `shutdown` notice and the close frame (1001).
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::Release);
        self.0.writer.wake();
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    /// Ready once the session is kicked or stopped; registers the writer's waker otherwise.
    pub fn poll_stop(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_kicked() || self.is_stopped() {
            return Poll::Ready(());
        }
        self.0.writer.register(cx.waker());
        // Again after registering: a kick in between woke the old waker.
        if self.is_kicked() || self.is_stopped() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Resolves once the session is kicked (at once if it was already).
    pub async fn kicked(&self) {
        loop {
            let notified = self.0.kicked.notified();
            tokio::pin!(notified);
            // Registered before the check, so a kick in between is not missed.
            notified.as_mut().enable();
            if self.is_kicked() {
                return;
            }
            notified.await;
        }
    }

    /// Whether the session was kicked: one atomic load.
    pub fn is_kicked(&self) -> bool {
        self.0.reason.get().is_some()
    }

    pub fn reason(&self) -> Option<KickReason> {
        self.0.reason.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_kick_wins_and_wakes_a_waiter() {
        let kick = Kick::default();
        let waiter = tokio::spawn({
            let kick = kick.clone();
            async move { kick.kicked().await }
        });
        tokio::task::yield_now().await;
        assert!(!kick.is_kicked());
        assert!(!waiter.is_finished(), "kicked() resolved without a kick");
        assert!(kick.kick(4429, "slow consumer", false));
        assert!(!kick.kick(1008, "later", true));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiter was woken")
            .unwrap();
        assert_eq!(
            kick.reason(),
            Some(KickReason {
                code: 4429,
                reason: "slow consumer",
                drain: false
            })
        );
        // Already kicked: resolves at once.
        kick.kicked().await;
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl futures_util::task::ArcWake for Wakes {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_writer_is_woken_once_by_a_kick_and_by_a_stop() {
        for stop in [false, true] {
            let kick = Kick::default();
            let wakes = Arc::new(Wakes::default());
            let waker = futures_util::task::waker(wakes.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(kick.poll_stop(&mut cx).is_pending());
            if stop {
                kick.stop();
                assert!(kick.is_stopped() && !kick.is_kicked());
            } else {
                assert!(kick.kick(4429, "slow consumer", false));
                // A second kick changes nothing and wakes nobody.
                assert!(!kick.kick(1008, "later", true));
            }
            assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "stop: {stop}");
            assert!(kick.poll_stop(&mut cx).is_ready());
        }
    }
}
