//! Telling a session to close the connection: one session with a given code (a kick), or every
//! session at once (a shutdown).
//!
//! Both are seen on a session's hot path (its writer checks before every batch), so both are
//! one atomic load to check and a lock-free waker to wait on. The server's shutdown token would
//! be neither: `CancellationToken::is_cancelled` and every poll of `cancelled()` take the
//! token's mutex, one mutex shared by every connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
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

/// Cloneable; the first kick wins. A session is *closing* once it is kicked or the server
/// shuts down. Made by [`Kicks::issue`]: a kick made otherwise (the tests' `Kick::default`)
/// never sees a shutdown.
#[derive(Debug, Clone)]
#[cfg_attr(test, derive(Default))]
pub struct Kick(Arc<Inner>);

#[derive(Debug)]
#[cfg_attr(test, derive(Default))]
struct Inner {
    reason: OnceLock<KickReason>,
    /// Wakes the session's reader (and an HTTP session's waiters) at a kick or a shutdown.
    woken: Notify,
    /// The writer waiting in `poll_closing`.
    writer: AtomicWaker,
    /// The registry that wakes this kick at a shutdown, and its key there.
    kicks: Option<(Arc<Registry>, u64)>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((kicks, key)) = &self.kicks {
            kicks.live().remove(key);
        }
    }
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
            self.0.wake();
        }
        first
    }

    /// Ready once the session is closing; registers the writer's waker otherwise.
    pub fn poll_closing(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_until(cx, Self::is_closing)
    }

    /// Ready once the server shuts down (kicked or not); registers the writer's waker
    /// otherwise.
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_until(cx, Self::is_shutdown)
    }

    fn poll_until(&self, cx: &mut Context<'_>, done: fn(&Self) -> bool) -> Poll<()> {
        if done(self) {
            return Poll::Ready(());
        }
        self.0.writer.register(cx.waker());
        // Again after registering: a wake in between woke the old waker.
        if done(self) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Resolves once the session is closing (at once if it already is).
    pub async fn closing(&self) {
        loop {
            let notified = self.0.woken.notified();
            tokio::pin!(notified);
            // Registered before the check, so a kick or a shutdown in between is not missed.
            notified.as_mut().enable();
            if self.is_closing() {
                return;
            }
            notified.await;
        }
    }

    /// Whether the session was kicked: one atomic load.
    pub fn is_kicked(&self) -> bool {
        self.0.reason.get().is_some()
    }

    /// Whether the server is shutting down: one atomic load.
    pub fn is_shutdown(&self) -> bool {
        self.0
            .kicks
            .as_ref()
            .is_some_and(|(kicks, _)| kicks.shutdown.0.load(Ordering::Acquire))
    }

    /// Kicked, or the server is shutting down.
    pub fn is_closing(&self) -> bool {
        self.is_kicked() || self.is_shutdown()
    }

    pub fn reason(&self) -> Option<KickReason> {
        self.0.reason.get().cloned()
    }
}

impl Inner {
    fn wake(&self) {
        self.woken.notify_waiters();
        self.writer.wake();
    }
}

/// Issues the sessions' kicks and wakes them all at a shutdown. Its lock is taken when a
/// session starts and ends, and once at the shutdown; never on a session's hot path.
#[derive(Debug, Clone, Default)]
pub struct Kicks(Arc<Registry>);

#[derive(Debug, Default)]
struct Registry {
    /// Read before every batch of every writer; the rest of the registry (and the `Arc`'s
    /// counts) is written as sessions come and go, so the flag has a cache line of its own.
    shutdown: Padded,
    next: AtomicU64,
    live: Mutex<HashMap<u64, Weak<Inner>>>,
}

/// A flag alone on its cache line (128 bytes: two lines on x86, which prefetches in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicBool);

impl Registry {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Weak<Inner>>> {
        // Inserts and removes only: a panic while it was held leaves it consistent.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Kicks {
    /// A new session's kick, which [`shut_down`](Self::shut_down) will wake.
    pub fn issue(&self) -> Kick {
        let key = self.0.next.fetch_add(1, Ordering::Relaxed);
        let kick = Kick(Arc::new(Inner {
            reason: OnceLock::new(),
            woken: Notify::new(),
            writer: AtomicWaker::new(),
            kicks: Some((self.0.clone(), key)),
        }));
        // Registered before its first check: a shutdown that starts later wakes it; one that
        // started earlier is seen by that check (the flag is set before the registry is read).
        self.0.live().insert(key, Arc::downgrade(&kick.0));
        kick
    }

    /// Every session issued a kick is closing from now on, and woken to see it.
    pub fn shut_down(&self) {
        self.0.shutdown.0.store(true, Ordering::Release);
        let live: Vec<_> = self.0.live().values().filter_map(Weak::upgrade).collect();
        for inner in live {
            inner.wake();
        }
    }

    /// Sessions whose kick is alive.
    #[cfg(test)]
    fn live(&self) -> usize {
        self.0.live().len()
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
            async move { kick.closing().await }
        });
        tokio::task::yield_now().await;
        assert!(!kick.is_kicked());
        assert!(!waiter.is_finished(), "closing() resolved without a kick");
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
        kick.closing().await;
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
        assert!(kick.poll_closing(&mut cx).is_pending());
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(kick.kick(4429, "slow consumer", false));
        // A second kick changes nothing and wakes nobody.
        assert!(!kick.kick(1008, "later", true));
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(kick.poll_closing(&mut cx).is_ready());
    }

    #[tokio::test]
    async fn a_shutdown_wakes_every_issued_kick_and_closes_later_ones() {
        let kicks = Kicks::default();
        let (a, b) = (kicks.issue(), kicks.issue());
        let reader = tokio::spawn({
            let a = a.clone();
            async move { a.closing().await }
        });
        let wakes = Arc::new(Wakes::default());
        let waker = futures_util::task::waker(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(b.poll_closing(&mut cx).is_pending());
        assert!(b.poll_shutdown(&mut cx).is_pending());
        tokio::task::yield_now().await;
        assert!(
            !reader.is_finished(),
            "closing() resolved before the shutdown"
        );

        kicks.shut_down();
        tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("the reader was woken")
            .unwrap();
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(b.poll_closing(&mut cx).is_ready());
        assert!(b.poll_shutdown(&mut cx).is_ready());
        // Closing, but not kicked: the writer sends the shutdown's close, not a kick's.
        assert!(b.is_shutdown() && !b.is_kicked() && b.reason().is_none());
        // Issued after the shutdown: closing from the start.
        assert!(kicks.issue().is_closing());
        // A kick not issued by the registry never sees a shutdown.
        assert!(!Kick::default().is_closing());
    }

    #[test]
    fn a_kick_leaves_the_registry_with_its_last_clone() {
        let kicks = Kicks::default();
        let kick = kicks.issue();
        let clone = kick.clone();
        assert_eq!(kicks.live(), 1);
        drop(kick);
        assert_eq!(kicks.live(), 1);
        drop(clone);
        assert_eq!(kicks.live(), 0);
    }
}
