//! A session's outbound queue: bounded, many senders (the rooms it is in, its own replies), one
//! receiver (the transport's writer).
//!
//! It replaces tokio's bounded `mpsc` channel for one reason, memory: tokio allocates a block of
//! 32 slots and a cache-padded channel (about 2 KB with our item) when the channel is made, and
//! keeps them while the connection idles. This queue is a `VecDeque` that grows as frames
//! arrive and is let go once drained after a burst, so an idle connection holds a few hundred
//! bytes. The API is the subset of tokio's that the sessions use, with tokio's error types.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;
pub use tokio::sync::mpsc::error::{SendError, TryRecvError, TrySendError};

/// Slots a drained queue may keep; past it, its memory is released.
pub const KEEP: usize = 8;

struct Shared<T> {
    items: Mutex<VecDeque<T>>,
    /// The queue's length, readable without the lock.
    len: AtomicUsize,
    capacity: usize,
    senders: AtomicUsize,
    receiver_gone: AtomicBool,
    /// The receiver's waker, woken by each item and by the last sender leaving.
    receiver: AtomicWaker,
    /// Senders waiting in [`Sender::send`] for room, and how they are told of it.
    waiting: AtomicUsize,
    room: Notify,
}

impl<T> Shared<T> {
    fn items(&self) -> MutexGuard<'_, VecDeque<T>> {
        // A panic while the lock was held leaves a queue still consistent (push and pop only).
        self.items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A bounded queue of `capacity` items (at least 1).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        items: Mutex::new(VecDeque::new()),
        len: AtomicUsize::new(0),
        capacity: capacity.max(1),
        senders: AtomicUsize::new(1),
        receiver_gone: AtomicBool::new(false),
        receiver: AtomicWaker::new(),
        waiting: AtomicUsize::new(0),
        room: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.receiver.wake();
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("outbox::Sender")
            .field("len", &self.shared.len.load(Ordering::Relaxed))
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

impl<T> Sender<T> {
    /// Queues `item` now, or gives it back: `Full` when the queue holds `capacity` items,
    /// `Closed` when the receiver is gone.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        if self.is_closed() {
            return Err(TrySendError::Closed(item));
        }
        {
            let mut items = self.shared.items();
            if items.len() >= self.shared.capacity {
                return Err(TrySendError::Full(item));
            }
            items.push_back(item);
            self.shared.len.store(items.len(), Ordering::Release);
        }
        self.shared.receiver.wake();
        Ok(())
    }

    /// Queues `item`, waiting for room if the queue is full; an error when the receiver is gone.
    pub async fn send(&self, mut item: T) -> Result<(), SendError<T>> {
        /// Counts this sender among the waiting ones until it returns.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.shared.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.shared.waiting);
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Registered before the try, so a slot freed in between is not missed.
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(SendError(back)),
                Err(TrySendError::Full(back)) => item = back,
            }
            room.await;
        }
    }

    /// Free slots now.
    pub fn capacity(&self) -> usize {
        self.shared
            .capacity
            .saturating_sub(self.shared.len.load(Ordering::Acquire))
    }

    pub fn max_capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The receiver is gone: nothing sent will be read.
    pub fn is_closed(&self) -> bool {
        self.shared.receiver_gone.load(Ordering::Acquire)
    }
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
        let dropped = std::mem::take(&mut *self.shared.items());
        self.shared.len.store(0, Ordering::Release);
        self.shared.room.notify_waiters();
        drop(dropped);
    }
}

impl<T> Receiver<T> {
    /// The next item, or `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| match self.try_recv() {
            Ok(item) => Poll::Ready(Some(item)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                self.shared.receiver.register(cx.waker());
                // Again after registering: an item (or the last sender leaving) in between
                // woke the old waker.
                match self.try_recv() {
                    Ok(item) => Poll::Ready(Some(item)),
                    Err(TryRecvError::Disconnected) => Poll::Ready(None),
                    Err(TryRecvError::Empty) => Poll::Pending,
                }
            }
        })
        .await
    }

    /// Waits for items, then moves up to `limit` of them (at least 1) to the back of `batch`,
    /// under one lock. Returns how many; 0 once every sender is gone and the queue is empty
    /// (tokio's `mpsc::Receiver::recv_many`, into a `VecDeque`, so that a writer interrupted
    /// half-way keeps the rest in order).
    pub async fn recv_many(&mut self, batch: &mut VecDeque<T>, limit: usize) -> usize {
        poll_fn(|cx| match self.try_recv_many(batch, limit) {
            Ok(n) => Poll::Ready(n),
            Err(TryRecvError::Disconnected) => Poll::Ready(0),
            Err(TryRecvError::Empty) => {
                self.shared.receiver.register(cx.waker());
                // Again after registering (see `recv`).
                match self.try_recv_many(batch, limit) {
                    Ok(n) => Poll::Ready(n),
                    Err(TryRecvError::Disconnected) => Poll::Ready(0),
                    Err(TryRecvError::Empty) => Poll::Pending,
                }
            }
        })
        .await
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut item = None;
        self.take(|items| {
            item = items.pop_front();
            usize::from(item.is_some())
        })?;
        Ok(item.expect("one item was taken"))
    }

    /// Moves up to `limit` queued items (at least 1) to the back of `batch`, under one lock.
    fn try_recv_many(
        &mut self,
        batch: &mut VecDeque<T>,
        limit: usize,
    ) -> Result<usize, TryRecvError> {
        self.take(|items| {
            let moved = items.len().min(limit.max(1));
            if items.is_empty() {
                // Nothing to take: the receiver is about to wait. One buffer is kept while
                // idle, the queue's: `batch`'s goes to the queue if it has none, or is let go.
                if batch.is_empty() {
                    if items.capacity() == 0 && batch.capacity() <= KEEP {
                        std::mem::swap(items, batch);
                    } else {
                        *batch = VecDeque::new();
                    }
                }
            } else if moved == items.len() && batch.is_empty() {
                // All of it: the buffers trade places (the queue keeps `batch`'s empty one).
                std::mem::swap(items, batch);
            } else {
                batch.extend(items.drain(..moved));
            }
            moved
        })
    }

    /// Takes items out with `take` (which returns how many) under the queue's lock.
    fn take(
        &mut self,
        take: impl FnOnce(&mut VecDeque<T>) -> usize,
    ) -> Result<usize, TryRecvError> {
        // Read before the take: a sender queues before it leaves, so if none was left then, an
        // empty queue is the end. Read after it, the last sender could queue and leave in
        // between, and its item would be reported as never coming.
        let senders_left = self.shared.senders.load(Ordering::Acquire);
        let taken = {
            let mut items = self.shared.items();
            let taken = take(&mut items);
            if items.is_empty() && items.capacity() > KEEP {
                *items = VecDeque::new();
            }
            self.shared.len.store(items.len(), Ordering::Release);
            taken
        };
        match taken {
            0 if senders_left == 0 => Err(TryRecvError::Disconnected),
            0 => Err(TryRecvError::Empty),
            taken => {
                if self.shared.waiting.load(Ordering::SeqCst) > 0 {
                    self.shared.room.notify_waiters();
                }
                Ok(taken)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A task's result, failing the test if it does not come within a second.
    async fn within_a_second<R>(task: tokio::task::JoinHandle<R>) -> R {
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the task did not finish")
            .expect("the task panicked")
    }

    #[tokio::test]
    async fn items_come_out_in_order_and_a_full_queue_gives_the_item_back() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).unwrap();
        tx.clone().try_send(2).unwrap();
        assert_eq!(tx.capacity(), 0);
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(tx.capacity(), 1);
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_an_item_and_by_the_last_sender_leaving() {
        let (tx, mut rx) = channel(4);
        let late = tx.clone();
        let reader = tokio::spawn(async move { (rx.recv().await, rx.recv().await) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        late.try_send("a").unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(late);
        drop(tx);
        assert_eq!(within_a_second(reader).await, (Some("a"), None));
    }

    #[tokio::test]
    async fn send_waits_for_room_and_fails_once_the_receiver_is_gone() {
        let (tx, mut rx) = channel(1);
        tx.try_send(1).unwrap();
        let sender = tx.clone();
        let waiting = tokio::spawn(async move { sender.send(2).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "send must wait while the queue is full"
        );
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(within_a_second(waiting).await, Ok(()));
        assert_eq!(rx.recv().await, Some(2));

        tx.try_send(3).unwrap();
        let sender = tx.clone();
        let waiting = tokio::spawn(async move { sender.send(4).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(within_a_second(waiting).await, Err(SendError(4)));
        assert!(matches!(tx.try_send(5), Err(TrySendError::Closed(5))));
    }

    /// The last sender queues an item and leaves while the receiver is looking: the item must
    /// come out before the end is reported. A race, so many tries; a receiver that reads the
    /// sender count after its pop loses the item in some of them.
    #[test]
    fn an_item_queued_by_the_last_sender_as_it_leaves_is_never_lost() {
        let mut lost = 0;
        for _ in 0..20_000 {
            let (tx, mut rx) = channel(4);
            let sender = std::thread::spawn(move || {
                tx.try_send(1).unwrap();
                drop(tx);
            });
            let got = loop {
                match rx.try_recv() {
                    Ok(item) => break Some(item),
                    Err(TryRecvError::Disconnected) => break None,
                    Err(TryRecvError::Empty) => std::hint::spin_loop(),
                }
            };
            sender.join().unwrap();
            if got.is_none() {
                lost += 1;
            }
        }
        assert_eq!(lost, 0, "items reported as never coming");
    }

    #[test]
    fn a_drained_queue_lets_its_memory_go() {
        let (tx, mut rx) = channel(1024);
        for i in 0..100 {
            tx.try_send(i).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.shared.items().capacity(), 0);
        // A queue that never grew past KEEP slots keeps them.
        tx.try_send(1).unwrap();
        rx.try_recv().unwrap();
        assert!(rx.shared.items().capacity() <= KEEP);
    }

    #[tokio::test]
    async fn recv_many_moves_at_most_its_limit_in_order_and_returns_0_at_the_end() {
        let (tx, mut rx) = channel(16);
        for i in 0..10 {
            tx.try_send(i).unwrap();
        }
        let mut batch = VecDeque::from([-1]);
        assert_eq!(rx.recv_many(&mut batch, 4).await, 4);
        assert_eq!(batch, [-1, 0, 1, 2, 3]);
        assert_eq!(tx.capacity(), 16 - 6);
        batch.clear();
        // The rest, all of it: the whole buffer changes hands.
        assert_eq!(rx.recv_many(&mut batch, 64).await, 6);
        assert_eq!(batch, [4, 5, 6, 7, 8, 9]);
        assert_eq!(tx.capacity(), 16);
        let waiting = tokio::spawn(async move {
            let mut batch = VecDeque::new();
            let first = rx.recv_many(&mut batch, 64).await;
            (first, batch, rx.recv_many(&mut VecDeque::new(), 64).await)
        });
        tokio::task::yield_now().await;
        tx.try_send(10).unwrap();
        drop(tx);
        assert_eq!(within_a_second(waiting).await, (1, VecDeque::from([10]), 0));
    }

    /// A receiver that takes batches into its own buffer and waits in between holds one buffer
    /// while idle (the queue's), and allocates none per message once it has it.
    #[tokio::test]
    async fn an_idle_receiver_taking_batches_keeps_one_buffer() {
        let (tx, mut rx) = channel(64);
        let mut batch = VecDeque::new();
        let held = |rx: &Receiver<u32>, batch: &VecDeque<u32>| {
            (rx.shared.items().capacity() > 0) as usize + (batch.capacity() > 0) as usize
        };
        for i in 0..5 {
            tx.try_send(i).unwrap();
            assert_eq!(rx.recv_many(&mut batch, 64).await, 1);
            assert_eq!(batch.pop_front(), Some(i));
            // Waiting again (nothing queued) hands the buffer back.
            assert!(matches!(
                rx.try_recv_many(&mut batch, 64),
                Err(TryRecvError::Empty)
            ));
            assert_eq!(held(&rx, &batch), 1, "buffers held while idle, after {i}");
        }
        // The next message finds room in the buffer the queue kept.
        let kept = rx.shared.items().capacity();
        assert!(kept > 0 && kept <= KEEP, "{kept}");
        tx.try_send(9).unwrap();
        assert_eq!(rx.shared.items().capacity(), kept);
    }
}
