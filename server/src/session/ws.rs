//! The WebSocket transport: moves bytes between a socket and the session core.
//!
//! The reader side turns frames into [`Incoming`] events for [`serve`]; the writer task alone
//! owns the sink and writes what the session queued, batching what is ready into one flush.
//! Closing follows RFC 6455: the close frame of a kicked session (with its code) or of a
//! shutdown, then a short wait for the peer's own close frame.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use std::collections::VecDeque;
use std::future::poll_fn;

use super::*;

/// Queue items a writer takes at once, and writes before one flush. Taken items no longer count
/// against the queue's bound, so a session's frames in memory are at most the queue's capacity
/// plus this.
const MAX_BATCH: usize = 64;
/// How long a writer may take to deliver its last frames and the close frame, and how long a
/// closing session waits for the peer's close frame.
const CLOSE_DEADLINE: Duration = Duration::from_secs(2);
/// How long a session whose stream failed keeps the connection after its close frame.
const BROKEN_LINGER: Duration = Duration::from_millis(500);

/// The session of one WebSocket. Not an `async fn`: one of those keeps its arguments (the socket
/// and the parameters, about 750 bytes) beside the state that moved them, for as long as the
/// connection is open; the future built here holds each once.
pub fn run(socket: WebSocket, p: SessionParams) -> impl Future<Output = ()> + Send {
    let session = p.hub.next_session_id();
    let span = tracing::info_span!("session", session, peer = %p.peer);
    let (sink, stream) = socket.split();
    async move {
        let (tx, rx) = outbox::channel(p.settings.outbound_queue);
        let kick = p.kicks.issue();
        let answered = CancellationToken::new();
        let writer = p.tracker.spawn(
            write_loop(
                sink,
                rx,
                (kick.clone(), answered.clone()),
                p.metrics.clone(),
                p.settings.heartbeat_interval() + p.settings.heartbeat_timeout(),
                p.protocol == Negotiated::Plain,
            )
            .instrument(tracing::Span::current()),
        );
        let mut incoming = stream.map(incoming);
        let end = serve(&p, session, &mut incoming, &tx, &kick).await;
        answered.cancel();
        drop(tx);
        let _ = writer.await;
        linger(incoming.into_inner(), end).await;
        drop(p.permit);
    }
    .instrument(span)
}

/// A frame (or a read error) as the session sees it.
fn incoming(frame: Result<Message, axum::Error>) -> Incoming {
    match frame {
        Ok(Message::Text(text)) => Incoming::Text(text),
        Ok(Message::Binary(_)) => Incoming::Binary,
        Ok(Message::Ping(_) | Message::Pong(_)) => Incoming::Alive,
        // Close 1000 is a deliberate leave: the name need not be held.
        Ok(Message::Close(Some(frame))) if frame.code == 1000 => Incoming::Left,
        Ok(Message::Close(_)) => Incoming::Gone,
        Err(e) => Incoming::Broken(close_for(e)),
    }
}

/// Lets the peer see the close frame before the TCP connection goes. Closing a socket that
/// still has unread input makes the kernel send RST, and a peer that gets RST may drop the close
/// frame still in its receive buffer (the browser then reports 1006 instead of our code).
async fn linger(mut stream: SplitStream<WebSocket>, end: End) {
    match end {
        End::PeerGone | End::Left => {}
        // RFC 6455 §7.1.1: wait for the peer's close frame, then close the connection.
        End::Closing => {
            let _ = tokio::time::timeout(CLOSE_DEADLINE, async {
                while let Some(Ok(frame)) = stream.next().await {
                    if matches!(frame, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        // The stream cannot be read any more: give the close frame a moment to arrive.
        End::Broken => tokio::time::sleep(BROKEN_LINGER).await,
    }
}

/// The close code for a read error: 1009 for an over-limit message or frame, 1007 for a text
/// frame that is not UTF-8, 1002 for any other protocol violation (unmasked frames, reserved
/// bits, unknown opcodes, fragmented control frames, invalid close codes). `None` when the
/// connection itself failed and there is nobody to tell.
pub(crate) fn close_for(e: axum::Error) -> Option<(u16, &'static str)> {
    use tungstenite::Error as E;
    match e.into_inner().downcast_ref::<E>()? {
        E::Capacity(_) => Some((1009, "message too big")),
        E::Utf8(_) => Some((1007, "invalid UTF-8")),
        E::Protocol(_) => Some((1002, "protocol error")),
        _ => None,
    }
}

/// The only owner of the sink. Feeds every queued frame, then flushes once.
///
/// `answered`: cancelled once the session has ended, so that everything it will ever queue is
/// queued (at a shutdown or a kick that lets its frames through, it still answers the messages
/// it had in flight, a commit later, and those answers go out before the close).
///
/// `kick_deadline`: how long the close frame of a kicked session may wait to be written. A slow
/// consumer's socket is full by definition, so its close frame waits behind what the kernel
/// already holds; the client gets as long as a silent peer gets (the heartbeat deadline) to read
/// up to it, so it learns why it was closed (4429) instead of seeing the connection vanish.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: outbox::Receiver<Outbound>,
    (kick, answered): (Kick, CancellationToken),
    metrics: Arc<Metrics>,
    kick_deadline: Duration,
    plain: bool,
) {
    // Commit times of the chat frames in the current batch (reused between batches; empty,
    // and unallocated, until the first chat message).
    let mut committed = Vec::new();
    // The frames taken from the queue and not yet written: one lock takes a batch, and the
    // buffer trades places with the queue's when the batch is all of it.
    let mut batch = VecDeque::new();
    loop {
        // The queue first: a kick or a shutdown is waited for (an atomic load and a waker, see
        // `Kick::poll_closing`) only when nothing is queued, and checked before each batch. No
        // batch starts once the session is closing: `close` writes what is left.
        if kick.is_closing() {
            break;
        }
        let taken = tokio::select! {
            biased;
            taken = rx.recv_many(&mut batch, MAX_BATCH) => taken,
            () = poll_fn(|cx| kick.poll_closing(cx)) => break,
        };
        if taken == 0 {
            // The session ended kicked, or at a shutdown (a session that ends without a kick
            // ends at a shutdown or after the peer left): the close frame is ours to send.
            if kick.is_closing() {
                break;
            }
            // The session ended (the peer closed or went away): finish the closing handshake
            // if the socket still works.
            let _ = tokio::time::timeout(CLOSE_DEADLINE, sink.close()).await;
            return;
        }
        committed.clear();
        let mut frames = 0;
        let write = async {
            // A frame leaves `batch` only once the sink has room for it: a write cut short by a
            // kick leaves every unsent frame in `batch`, in order, for `close`.
            while let Some(front) = batch.front() {
                let shown = shown_to(plain, front);
                if shown {
                    poll_fn(|cx| sink.poll_ready_unpin(cx)).await?;
                }
                let Some(item) = batch.pop_front() else { break };
                if let Outbound::Chat(_, at) = &item {
                    committed.push(*at);
                }
                if shown {
                    sink.start_send_unpin(to_message(item))?;
                    frames += 1;
                }
            }
            sink.flush().await
        };
        // A write that blocks (peer not reading) must not outlive a kick or a shutdown. The
        // batch first: one that is written at once polls neither.
        let written = tokio::select! {
            biased;
            r = write => r.is_ok(),
            () = poll_fn(|cx| kick.poll_closing(cx)) => false,
        };
        if !written && !kick.is_closing() {
            // The peer closed (or the connection failed) while frames were still queued:
            // nothing more can be sent but the reply to its close frame, if one is pending.
            let _ = tokio::time::timeout(CLOSE_DEADLINE, sink.close()).await;
            return;
        }
        if !written {
            break;
        }
        // A burst's buffers are not kept while the connection idles (`batch`'s goes back to
        // the queue, or is let go, when `recv_many` finds nothing to take).
        if committed.capacity() > outbox::KEEP {
            committed = Vec::new();
        }
        metrics.frames_out.inc_by(frames as u64);
        if !committed.is_empty() {
            // One clock read per batch, not per frame.
            let now = Instant::now();
            for at in &committed {
                metrics
                    .delivery_seconds
                    .observe(now.saturating_duration_since(*at).as_secs_f64());
            }
        }
    }
    // Boxed: the closing is the largest state of the writer and runs once, at the end; inline,
    // every open connection would carry its space (about 1 KB).
    Box::pin(close(
        sink,
        (batch, rx),
        &kick,
        &answered,
        kick_deadline,
        plain,
    ))
    .await;
}

/// The end of a kicked or shut-down session's writer: the session's last answers (unless it
/// was dropped as a slow consumer), the `shutdown` notice at a shutdown, then the close frame.
async fn close(
    mut sink: SplitSink<WebSocket, Message>,
    (mut unwritten, mut rx): (VecDeque<Outbound>, outbox::Receiver<Outbound>),
    kick: &Kick,
    answered: &CancellationToken,
    kick_deadline: Duration,
    plain: bool,
) {
    // Read once: a kick that lands while a shutdown's close is under way must not mix the
    // shutdown's close frame with the kick's deadline or backlog policy.
    let reason = kick.reason();
    let (close, farewell) = match &reason {
        Some(k) => {
            if !k.drain {
                unwritten.clear();
                while rx.try_recv().is_ok() {}
            }
            (
                CloseFrame {
                    code: k.code,
                    reason: Utf8Bytes::from_static(k.reason),
                },
                None,
            )
        }
        None => {
            let retry_after_ms = rand::rng().random_range(500..3000);
            (
                CloseFrame {
                    code: 1001,
                    reason: Utf8Bytes::from_static("server shutting down"),
                },
                Some(ServerMsg::Shutdown { retry_after_ms }),
            )
        }
    };
    // At shutdown the grace period is short, and so is the wait.
    let kicked = reason.is_some();
    let deadline = if kicked {
        kick_deadline
    } else {
        CLOSE_DEADLINE
    };
    // A slow consumer's backlog was discarded above: nothing more goes to it but the close.
    let answers = reason.as_ref().is_none_or(|k| k.drain);
    let goodbye = async {
        let shown = |item: &Outbound| shown_to(plain, item);
        // What a write cut short by the kick left, first.
        for item in unwritten {
            if shown(&item) {
                sink.feed(to_message(item)).await?;
            }
        }
        if answers {
            // What the session still queues until it ends (within half the deadline, so that
            // the close frame keeps its time).
            let _ = tokio::time::timeout(deadline / 2, async {
                while let Some(item) = next_before_end(&mut rx, answered).await {
                    if shown(&item) {
                        sink.feed(to_message(item)).await?;
                    }
                }
                Ok::<_, axum::Error>(())
            })
            .await;
        }
        while let Ok(item) = rx.try_recv() {
            if shown(&item) {
                sink.feed(to_message(item)).await?;
            }
        }
        if let Some(msg) = farewell.filter(|_| !plain) {
            sink.feed(Message::Text(encode(&msg))).await?;
        }
        sink.send(Message::Close(Some(close))).await
    };
    let delivered = tokio::select! {
        // The goodbye first: a shutdown already under way must not cut a kicked session's
        // close frame before it was even tried.
        biased;
        written = tokio::time::timeout(deadline, goodbye) => matches!(written, Ok(Ok(()))),
        () = poll_fn(|cx| kick.poll_shutdown(cx)), if kicked => false,
    };
    if !delivered {
        debug!("the close frame could not be delivered");
    }
}

/// Whether `item` goes to the client: a plain client is sent only what it can display.
fn shown_to(plain: bool, item: &Outbound) -> bool {
    !(plain && matches!(item, Outbound::Frame(_) | Outbound::Data(_)))
}

fn to_message(item: Outbound) -> Message {
    match item {
        Outbound::Frame(text)
        | Outbound::Chat(text, _)
        | Outbound::History(text)
        | Outbound::Data(text)
        | Outbound::Notice(text) => Message::Text(text),
        Outbound::Ping => Message::Ping(Default::default()),
    }
}
