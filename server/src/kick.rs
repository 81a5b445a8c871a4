//! Telling a session's writer to close the connection with a given code, from anywhere.

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
/// A WebSocket writer waits for a kick with [`poll_kicked`](Self::poll_kicked): an atomic load
/// and a lock-free waker, where waiting on a `CancellationToken` or a `Notify` takes a lock on
/// every poll, and a writer of a busy room would poll once per frame it is sent.
#[derive(Debug, Clone, Default)]
pub struct Kick(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    reason: OnceLock<KickReason>,
    /// Wakes the session's reader (and an HTTP session's waiters).
    kicked: Notify,
    /// The writer waiting in `poll_kicked`.
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

    /// Ready once the session is kicked; registers the writer's waker otherwise.
    pub fn poll_kicked(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_kicked() {
            return Poll::Ready(());
        }
        self.0.writer.register(cx.waker());
        // Again after registering: a kick in between woke the old waker.
        if self.is_kicked() {
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
            arc_self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_writer_is_woken_once_by_a_kick() {
        let kick = Kick::default();
        let wakes = Arc::new(Wakes::default());
        let waker = futures_util::task::waker(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(kick.poll_kicked(&mut cx).is_pending());
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(kick.kick(4429, "slow consumer", false));
        // A second kick changes nothing and wakes nobody.
        assert!(!kick.kick(1008, "later", true));
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(kick.poll_kicked(&mut cx).is_ready());
    }
}
