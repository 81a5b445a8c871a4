//! The HTTP transports, for where WebSockets do not get through: Server-Sent Events down with
//! POSTs up, and long-polling. Both carry protocol v3 on the same session core as the
//! WebSocket ([`serve`]): the same frames, resume, acks, limits and slow-consumer policy.
//!
//! An HTTP session is a [`Channel`] in the node's [`HttpSessions`], found by its secret (128
//! random bits; never the session number, which other members can see). The session core
//! writes into its usual bounded queue; a pump moves what it queues into the channel's mailbox
//! and numbers every frame. Readers take frames from the mailbox:
//! - an SSE stream writes each as `id: <secret>:<n>` and `data: <frame>`, heartbeats as
//!   comments. A browser's `EventSource` reconnects by itself and sends `Last-Event-ID`: the
//!   stream resumes after that frame (frames already written are kept, up to the queue size,
//!   for this). A newer stream replaces an older one.
//! - a poll answers with the frames after the `last` it names (which acknowledges those up to
//!   it), waiting up to one heartbeat interval for the first.
//!
//! Frames from the client come in POSTs as a batch; each is fed to the session as a WebSocket
//! text frame would be. A stream's heartbeat, a poll and a POST are each a sign of life: a
//! session that nobody streams, polls or posts to for the heartbeat deadline is closed like a
//! silent WebSocket, and forgotten.
//!
//! Flow control is the WebSocket's: the pump stops taking from the queue while
//! `--outbound-queue` frames wait unread, the queue fills, and the slow-consumer policy closes
//! the session (4429).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::Rng;
use tokio::sync::{Notify, watch};

use super::*;

/// How long an ended session is kept so its client can collect the last frames and the close.
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// Frames one SSE write or one poll answer carries at most.
const MAX_BATCH: usize = 64;
/// Frames one POST may carry.
pub const MAX_SEND_FRAMES: usize = 64;

/// Which HTTP transport opened a session (metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sse,
    Poll,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sse => "sse",
            Self::Poll => "poll",
        }
    }
}

/// How a session ended, as its HTTP client is told (the WebSocket's close code and reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

impl Close {
    pub fn to_json(self) -> String {
        serde_json::json!({ "code": self.code, "reason": self.reason }).to_string()
    }
}

/// The HTTP sessions on this node, by secret.
#[derive(Debug, Default)]
pub struct HttpSessions {
    map: Mutex<HashMap<String, Arc<Channel>>>,
}

impl HttpSessions {
    pub fn get(&self, secret: &str) -> Option<Arc<Channel>> {
        self.map.lock().expect("sessions lock").get(secret).cloned()
    }

    /// Open sessions per transport, by name.
    pub fn open_by_transport(&self) -> [(&'static str, usize); 2] {
        let map = self.map.lock().expect("sessions lock");
        [Transport::Sse, Transport::Poll]
            .map(|t| (t.name(), map.values().filter(|c| c.transport == t).count()))
    }

    fn remove(&self, secret: &str) {
        self.map.lock().expect("sessions lock").remove(secret);
    }

    /// Starts a session: its core, its pump, and its channel here. The caller has checked the
    /// Origin and holds the connection slot (in `p`).
    pub fn open(self: &Arc<Self>, p: SessionParams, transport: Transport) -> Arc<Channel> {
        // The node's id, then 128 random bits: any node can tell whose session it is.
        let secret = {
            let bytes: [u8; 16] = rand::rng().random();
            let random: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}{random}", p.hub.instance())
        };
        let (input, input_rx) = mpsc::channel(MAX_SEND_FRAMES);
        let chan = Arc::new(Channel {
            secret: secret.clone(),
            transport,
            input,
            mailbox: Mutex::new(Mailbox::default()),
            changed: watch::Sender::new(0),
            taken: Notify::new(),
            leaving: AtomicBool::new(false),
        });
        self.map
            .lock()
            .expect("sessions lock")
            .insert(secret, chan.clone());
        let session = p.hub.next_session_id();
        let span =
            tracing::info_span!("session", session, peer = %p.peer, transport = transport.name());
        let tracker = p.tracker.clone();
        tracker.spawn(run(self.clone(), chan.clone(), input_rx, session, p).instrument(span));
        chan
    }
}

/// One HTTP session's link between its core and its client's requests.
#[derive(Debug)]
pub struct Channel {
    secret: String,
    pub transport: Transport,
    /// What the client sends (POSTed frames, signs of life), read by the session core.
    input: mpsc::Sender<Incoming>,
    mailbox: Mutex<Mailbox>,
    /// Bumped on every change a reader waits for (frames, a heartbeat, the end, a newer
    /// stream).
    changed: watch::Sender<u64>,
    /// A reader took frames: the pump may take more from the queue.
    taken: Notify,
    /// The client said it leaves: what the session still queues for it is dropped, so that
    /// the session reads on to the leave however full the mailbox is.
    leaving: AtomicBool,
}

/// The frames of one session, numbered from 1.
#[derive(Debug, Default)]
struct Mailbox {
    /// Frames not yet acknowledged: unread ones, and read ones kept for a resume.
    frames: VecDeque<(u64, Utf8Bytes)>,
    /// The newest frame's number.
    last: u64,
    /// Frames up to this one went to a reader.
    read: u64,
    /// Heartbeats so far (an SSE stream writes a comment for each).
    pings: u64,
    /// Set once the session ended.
    close: Option<Close>,
    /// A reader has delivered the close.
    close_read: bool,
    /// The attached SSE stream's number; an older stream ends.
    stream: u64,
}

impl Mailbox {
    fn unread(&self) -> usize {
        (self.last - self.read) as usize
    }

    /// Forgets frames up to `upto` (acknowledged), and read frames beyond `keep`.
    fn trim(&mut self, upto: u64, keep: usize) {
        while let Some(&(n, _)) = self.frames.front() {
            let read_kept = self.frames.len().saturating_sub(self.unread());
            if n <= upto || (n <= self.read && read_kept > keep) {
                self.frames.pop_front();
            } else {
                break;
            }
        }
    }

    /// Whether every frame after `after` is still here (or `after` is the newest).
    fn has_all_after(&self, after: u64) -> bool {
        let first_kept = self.frames.front().map_or(self.last + 1, |&(n, _)| n);
        after <= self.last && first_kept <= after + 1
    }

    /// A client is at `after`: it has every frame up to there and none after. Frames after it
    /// count as unread again (a dropped stream, a lost poll answer), so that no trim forgets
    /// them; a position past what was ever read is refused.
    fn rewind(&mut self, after: u64) -> Result<(), PositionLost> {
        if after > self.read || !self.has_all_after(after) {
            return Err(PositionLost);
        }
        self.read = after;
        Ok(())
    }

    /// Up to [`MAX_BATCH`] frames after `after`, marked read.
    fn take_after(&mut self, after: u64) -> Vec<(u64, Utf8Bytes)> {
        let batch: Vec<_> = self
            .frames
            .iter()
            .filter(|(n, _)| *n > after)
            .take(MAX_BATCH)
            .cloned()
            .collect();
        if let Some(&(n, _)) = batch.last() {
            self.read = self.read.max(n);
        }
        batch
    }
}

/// The session has ended: it takes no more frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended;

/// Why a client's position could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionLost;

impl Channel {
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Feeds the client's frames to the session. `Err` if the session has ended.
    pub async fn send(&self, item: Incoming) -> Result<(), Ended> {
        if self.mailbox.lock().expect("mailbox lock").close.is_some() {
            return Err(Ended);
        }
        self.input.send(item).await.map_err(|_| Ended)
    }

    /// The client leaves after the frames it is sending: nobody will read what the session
    /// still has to say, so it is dropped from now on, and the session reads on to the leave
    /// (a session reads only while its queue is half empty). Then [`Incoming::Left`] follows.
    pub fn leaving(&self) {
        self.leaving.store(true, Ordering::Relaxed);
        self.taken.notify_one();
    }

    /// A sign of life from the client (a poll, a stream's heartbeat read).
    fn alive(&self) {
        let _ = self.input.try_send(Incoming::Alive);
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn push(&self, item: Outbound) {
        let mut mb = self.mailbox.lock().expect("mailbox lock");
        match item {
            Outbound::Ping => mb.pings += 1,
            Outbound::Frame(text)
            | Outbound::Chat(text, _)
            | Outbound::History(text)
            | Outbound::Data(text)
            | Outbound::Notice(text) => {
                mb.last += 1;
                let n = mb.last;
                mb.frames.push_back((n, text));
            }
        }
        drop(mb);
        self.notify();
    }

    fn end(&self, close: Close) {
        self.mailbox.lock().expect("mailbox lock").close = Some(close);
        self.notify();
    }

    /// Attaches a new SSE stream that resumes after frame `after`; the older stream, if any,
    /// ends. `Err` when frames after `after` are gone.
    pub fn attach_stream(&self, after: u64, keep: usize) -> Result<u64, PositionLost> {
        let mut mb = self.mailbox.lock().expect("mailbox lock");
        mb.rewind(after)?;
        mb.trim(after, keep);
        mb.stream += 1;
        let stream = mb.stream;
        drop(mb);
        self.notify();
        self.taken.notify_one();
        self.alive();
        Ok(stream)
    }

    /// One poll: acknowledges frames up to `after`, then waits up to `wait` for frames after
    /// it (or the end). Returns the frames and, once every frame is out, the close.
    pub async fn poll(
        &self,
        after: u64,
        keep: usize,
        wait: Duration,
    ) -> Result<(Vec<(u64, Utf8Bytes)>, Option<Close>), PositionLost> {
        self.alive();
        let mut changed = self.changed.subscribe();
        let deadline = Instant::now() + wait;
        self.mailbox.lock().expect("mailbox lock").rewind(after)?;
        loop {
            changed.borrow_and_update();
            {
                let mut mb = self.mailbox.lock().expect("mailbox lock");
                if !mb.has_all_after(after) {
                    return Err(PositionLost);
                }
                mb.trim(after, keep);
                let frames = mb.take_after(after);
                let all_out = frames.last().is_none_or(|&(n, _)| n == mb.last);
                let close = mb.close.filter(|_| all_out);
                if close.is_some() {
                    mb.close_read = true;
                }
                if !frames.is_empty() || close.is_some() {
                    drop(mb);
                    self.taken.notify_one();
                    self.notify();
                    return Ok((frames, close));
                }
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return Ok((Vec::new(), None)); },
                () = tokio::time::sleep_until(deadline) => {
                    self.alive();
                    return Ok((Vec::new(), None));
                }
            }
        }
    }

    /// The SSE body for the stream `stream` (from [`attach_stream`](Self::attach_stream)),
    /// starting after frame `after`.
    pub fn sse_body(
        self: Arc<Self>,
        stream: u64,
        after: u64,
        (keep, interval): (usize, Duration),
    ) -> impl Stream<Item = Result<String, std::convert::Infallible>> + Send + 'static {
        let changed = self.changed.subscribe();
        let pings = self.mailbox.lock().expect("mailbox lock").pings;
        let state = SseState {
            chan: self,
            interval,
            stream,
            cursor: after,
            keep,
            pings,
            changed,
            done: false,
        };
        futures_util::stream::unfold(state, |mut s| async move {
            let chunk = s.next_chunk().await?;
            Some((Ok(chunk), s))
        })
    }
}

struct SseState {
    chan: Arc<Channel>,
    /// The heartbeat interval, told to the client with each heartbeat.
    interval: Duration,
    stream: u64,
    cursor: u64,
    /// Frames written that are kept for a resume.
    keep: usize,
    pings: u64,
    changed: watch::Receiver<u64>,
    done: bool,
}

impl SseState {
    async fn next_chunk(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        loop {
            self.changed.borrow_and_update();
            {
                let chan = &self.chan;
                let mut mb = chan.mailbox.lock().expect("mailbox lock");
                if mb.stream != self.stream {
                    return None; // a newer stream took over
                }
                let frames = mb.take_after(self.cursor);
                if let Some(&(n, _)) = frames.last() {
                    // What was written is kept, up to `keep` frames, for a resume.
                    mb.trim(0, self.keep);
                    drop(mb);
                    self.cursor = n;
                    chan.taken.notify_one();
                    let mut out = String::new();
                    for (n, text) in &frames {
                        out.push_str("id: ");
                        out.push_str(&chan.secret);
                        out.push(':');
                        out.push_str(&n.to_string());
                        out.push_str("\ndata: ");
                        out.push_str(text.as_str());
                        out.push_str("\n\n");
                    }
                    return Some(out);
                }
                if let Some(close) = mb.close {
                    mb.close_read = true;
                    drop(mb);
                    chan.notify();
                    self.done = true;
                    return Some(format!("event: close\ndata: {}\n\n", close.to_json()));
                }
                if mb.pings != self.pings {
                    self.pings = mb.pings;
                    drop(mb);
                    // The client took what came before: it is alive.
                    chan.alive();
                    return Some(ping_event(self.interval));
                }
            }
            if self.changed.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// Serves one HTTP session until it ends, then keeps its channel a moment for the client to
/// read the close, and forgets it.
async fn run(
    sessions: Arc<HttpSessions>,
    chan: Arc<Channel>,
    mut input: mpsc::Receiver<Incoming>,
    session: SessionId,
    p: SessionParams,
) {
    let (tx, rx) = outbox::channel(p.settings.outbound_queue);
    let kick = p.kicks.issue();
    let ended = CancellationToken::new();
    let pump = p.tracker.spawn(
        pump(
            chan.clone(),
            rx,
            (kick.clone(), ended.clone()),
            p.settings.outbound_queue,
        )
        .instrument(tracing::Span::current()),
    );
    let mut incoming = futures_util::stream::poll_fn(move |cx| input.poll_recv(cx));
    let end = serve(&p, session, &mut incoming, &tx, &kick).await;
    drop(tx);
    // The pump may be waiting for a reader to make room; the session is over either way.
    ended.cancel();
    let _ = pump.await;
    // A client that left needs no close; at shutdown, streams and polls in flight hold the
    // channel themselves, and the server does not wait for new ones.
    if end != End::Left && !kick.is_shutdown() {
        let mut changed = chan.changed.subscribe();
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            while !chan.mailbox.lock().expect("mailbox lock").close_read {
                if changed.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
    }
    sessions.remove(&chan.secret);
    drop(p.permit);
}

/// Moves what the session queues into the mailbox while fewer than `cap` frames wait unread;
/// at the end, the close (after the frames a kick lets through, or the shutdown notice).
async fn pump(
    chan: Arc<Channel>,
    mut rx: outbox::Receiver<Outbound>,
    (kick, ended): (Kick, CancellationToken),
    cap: usize,
) {
    loop {
        let leaving = chan.leaving.load(Ordering::Relaxed);
        let room = leaving || chan.mailbox.lock().expect("mailbox lock").unread() < cap;
        tokio::select! {
            biased;
            () = kick.closing() => break,
            item = rx.recv(), if room => match item {
                Some(_) if leaving => {}
                Some(item) => chan.push(item),
                None => break,
            },
            () = chan.taken.notified(), if !room => {}
            () = ended.cancelled(), if !room => break,
        }
    }
    let left = !kick.is_closing();
    if left {
        // The session ended without a kick: the client left.
        chan.end(Close {
            code: 1000,
            reason: "left",
        });
        return;
    }
    let close = match kick.reason() {
        Some(k) => {
            if k.drain {
                take_answers(&chan, &mut rx, &ended).await;
            }
            Close {
                code: k.code,
                reason: k.reason,
            }
        }
        None => {
            take_answers(&chan, &mut rx, &ended).await;
            let retry_after_ms = rand::rng().random_range(500..3000);
            chan.push(Outbound::Frame(encode(&ServerMsg::Shutdown {
                retry_after_ms,
            })));
            Close {
                code: 1001,
                reason: "server shutting down",
            }
        }
    };
    chan.end(close);
}

/// Takes what the session still queues until it has ended ([`next_before_end`]), waiting
/// [`ANSWERS_WAIT`] at most, so that its last answers go before the close.
async fn take_answers(
    chan: &Channel,
    rx: &mut outbox::Receiver<Outbound>,
    ended: &CancellationToken,
) {
    let _ = tokio::time::timeout(ANSWERS_WAIT, async {
        while let Some(item) = next_before_end(rx, ended).await {
            chan.push(item);
        }
    })
    .await;
    while let Ok(item) = rx.try_recv() {
        chan.push(item);
    }
}

/// How long the close of an HTTP session waits for the session's last answers.
const ANSWERS_WAIT: Duration = Duration::from_secs(1);

/// The node holding the session with this secret (its first 16 characters), if it has the
/// shape of one.
pub fn owner_of(secret: &str) -> Option<&str> {
    (secret.len() == 48 && secret.bytes().all(|b| b.is_ascii_hexdigit())).then(|| &secret[..16])
}

/// The answer to a poll: `{"session","last","frames":[...],"close"?}` (frames are JSON
/// already; they are not parsed again).
pub fn poll_answer(
    secret: &str,
    after: u64,
    frames: &[(u64, Utf8Bytes)],
    close: Option<Close>,
) -> String {
    let last = frames.last().map_or(after, |&(n, _)| n);
    let mut out =
        String::with_capacity(64 + frames.iter().map(|(_, f)| f.len() + 1).sum::<usize>());
    out.push_str("{\"session\":\"");
    out.push_str(secret);
    out.push_str("\",\"last\":");
    out.push_str(&last.to_string());
    out.push_str(",\"frames\":[");
    for (i, (_, frame)) in frames.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(frame.as_str());
    }
    out.push(']');
    if let Some(close) = close {
        out.push_str(",\"close\":");
        out.push_str(&close.to_json());
    }
    out.push('}');
    out
}

/// A heartbeat on an SSE stream: a comment (traffic for proxies that close idle connections)
/// and a `ping` event whose data is the interval in milliseconds, so that a client can tell a
/// stream that went silent (a proxy that started buffering, a half-open connection) from a
/// quiet one: nothing for two intervals means the stream is dead.
pub fn ping_event(interval: Duration) -> String {
    format!(
        ": heartbeat\nevent: ping\ndata: {}\n\n",
        interval.as_millis()
    )
}

/// Parses an SSE resume position, `<secret>:<n>` (an event id).
pub fn parse_event_id(id: &str) -> Option<(&str, u64)> {
    let (secret, n) = id.trim().split_once(':')?;
    Some((secret, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Outbound {
        Outbound::Frame(Utf8Bytes::from(s.to_owned()))
    }

    #[test]
    fn a_mailbox_keeps_unread_frames_and_at_most_keep_read_ones() {
        let mut mb = Mailbox::default();
        for i in 1..=5u64 {
            mb.last = i;
            mb.frames.push_back((i, Utf8Bytes::from(i.to_string())));
        }
        assert_eq!(mb.take_after(0).len(), 5);
        assert_eq!(mb.unread(), 0);
        mb.trim(0, 2);
        assert_eq!(
            mb.frames.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [4, 5]
        );
        assert!(mb.has_all_after(3));
        assert!(!mb.has_all_after(2), "frame 3 is gone");
        assert!(!mb.has_all_after(6), "frame 6 does not exist");
        mb.trim(5, 2);
        assert!(mb.frames.is_empty());
        assert!(mb.has_all_after(5));
        assert!(!mb.has_all_after(4), "frame 5 was acknowledged and is gone");
    }

    #[test]
    fn a_client_back_at_a_position_gets_every_frame_after_it_again_and_no_more() {
        let mut mb = Mailbox::default();
        for i in 1..=6u64 {
            mb.last = i;
            mb.frames.push_back((i, Utf8Bytes::from(i.to_string())));
        }
        assert_eq!(mb.take_after(0).len(), 6);
        // The stream dropped after the client had frame 2; the rest was written, not read.
        assert_eq!(mb.rewind(2), Ok(()));
        mb.trim(2, 1);
        assert_eq!(
            mb.take_after(2).iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [3, 4, 5, 6],
            "a trim never forgets what the client has not had"
        );
        // A client cannot acknowledge what it was never sent.
        mb.last = 7;
        mb.frames.push_back((7, Utf8Bytes::from("7")));
        assert_eq!(mb.rewind(7), Err(PositionLost));
        assert_eq!(mb.rewind(9), Err(PositionLost));
    }

    #[test]
    fn a_secret_names_its_node() {
        let secret = format!("{}{}", "0123456789abcdef", "f".repeat(32));
        assert_eq!(owner_of(&secret), Some("0123456789abcdef"));
        assert_eq!(owner_of("17"), None);
        assert_eq!(owner_of(&"x".repeat(48)), None);
    }

    #[test]
    fn event_ids_carry_the_secret_and_the_frame_number() {
        assert_eq!(parse_event_id("ab12:7"), Some(("ab12", 7)));
        assert_eq!(parse_event_id("ab12"), None);
        assert_eq!(parse_event_id("ab12:x"), None);
    }

    #[tokio::test]
    async fn a_poll_waits_for_frames_and_acknowledges_what_it_names() {
        let (input, _input_rx) = mpsc::channel(4);
        let chan = Arc::new(Channel {
            secret: "s".into(),
            transport: Transport::Poll,
            input,
            mailbox: Mutex::new(Mailbox::default()),
            changed: watch::Sender::new(0),
            taken: Notify::new(),
            leaving: AtomicBool::new(false),
        });
        let waiting = tokio::spawn({
            let chan = chan.clone();
            async move { chan.poll(0, 8, Duration::from_secs(5)).await }
        });
        tokio::task::yield_now().await;
        chan.push(frame("a"));
        let (frames, close) = waiting.await.unwrap().unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, 1);
        assert_eq!(close, None);
        chan.push(frame("b"));
        chan.end(Close {
            code: 4429,
            reason: "slow consumer",
        });
        let (frames, close) = chan.poll(1, 8, Duration::from_secs(5)).await.unwrap();
        assert_eq!(frames.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [2]);
        assert_eq!(close.map(|c| c.code), Some(4429));
        assert_eq!(
            chan.mailbox.lock().unwrap().frames.len(),
            1,
            "frame 1 acknowledged"
        );
    }
}
