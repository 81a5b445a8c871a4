//! One chat session, whatever its transport: validate, register, replay, then a reader loop
//! over [`Incoming`] events; everything for the client goes into one bounded queue of
//! [`Outbound`] items that the transport's writer drains ([`ws`] for WebSockets).
//!
//! A plain client (no subprotocol: a tutorial page) and protocol v2 (`switchboard.v2`) carry one
//! room, given in the query; a plain client is sent only what it can display. Protocol v3
//! (`switchboard.v3`, [`v3`]) carries any number of rooms, joined and left by commands; each
//! joined room is a subscription in the hub, and all of them share the connection's queue, its
//! writer and its slow-consumer policy.

pub mod http;
mod v3;
pub mod ws;

pub use v3::Negotiated;
pub(crate) use ws::close_for;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{Stream, StreamExt};
use shared::{
    ClientMsg, ErrorCode, Inbound, LegacyChat, MessageText, PROTOCOL_VERSION, RoomId, ServerMsg,
    SessionId, Username, Welcome, close_code,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info};

use crate::client_addr::ClientAddr;
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::hub::{
    Hub, Identity, NameTaken, Outbound, Registration, Snapshot, drop_slow_consumer, encode,
    unix_millis,
};
use crate::kick::{Kick, Kicks};
use crate::limits::{ConnectionPermit, TokenBucket};
use crate::metrics::{Metrics, kind};
use crate::outbox;
use crate::resume::resume_plan;
use crate::store::{Appended, NewMessage, Range, Store, StoreError};

/// Everything a session needs, gathered by the upgrade handler.
pub struct SessionParams {
    pub hub: Arc<Hub>,
    pub settings: Arc<Settings>,
    /// The client's address (through trusted proxies).
    pub peer: ClientAddr,
    /// The query's room, name and token, not yet validated (validation errors are sent as
    /// typed errors over the socket, where a browser can read them).
    pub room: Option<String>,
    pub name: Option<String>,
    pub token: Option<String>,
    /// The user of a verified signed token (`?access_token=`), when tokens are on.
    pub user: Option<crate::auth::User>,
    /// Checks the tokens of `refresh` frames, when tokens are on.
    pub auth: Option<Arc<crate::auth::Verifier>>,
    /// The client's last known position in the room's history.
    pub position: Option<(String, u64)>,
    pub feed: bool,
    pub store: Arc<dyn Store>,
    /// Set when clustered: names are claimed across nodes.
    pub cluster: Option<Arc<Cluster>>,
    pub metrics: Arc<Metrics>,
    /// Issues the session's kick, which a shutdown wakes.
    pub kicks: Kicks,
    pub tracker: tokio_util::task::TaskTracker,
    /// Held for the connection's life; frees the connection slot when dropped.
    pub permit: ConnectionPermit,
    /// The protocol the upgrade settled on.
    pub protocol: Negotiated,
}

/// What a transport hands the session, whatever carries it (a WebSocket today; SSE with POSTs
/// and long-polling later). The session reads these and writes [`Outbound`] items into one
/// bounded queue; the transport's writer turns those into bytes.
#[derive(Debug)]
pub enum Incoming {
    /// One client message (a text frame).
    Text(Utf8Bytes),
    /// A binary frame: the chat protocol has none, and says so.
    Binary,
    /// Proof of life and nothing else (a ping or a pong).
    Alive,
    /// The client left on purpose (close 1000): its names are released at once.
    Left,
    /// The client went away (another close, or the end of its stream).
    Gone,
    /// The transport failed and cannot be read any more; `close` is what the client is told,
    /// if it can still be told (1009 too big, 1007 bad UTF-8, 1002 protocol error).
    Broken(Option<(u16, &'static str)>),
}

/// The session's view of its transport's input: a stream of [`Incoming`].
pub type IncomingStream<'a> = dyn Stream<Item = Incoming> + Unpin + Send + 'a;

/// Serves one session over any transport until it ends: identity, rooms, replay, commands,
/// heartbeats. Frames go into `tx`; `kick` asks the transport to close with a code.
pub(crate) async fn serve(
    p: &SessionParams,
    session: SessionId,
    incoming: &mut IncomingStream<'_>,
    tx: &outbox::Sender<Outbound>,
    kick: &Kick,
) -> End {
    let plain = p.protocol == Negotiated::Plain;
    // A user of a signed token is found by the server API's disconnect, whatever it joined.
    let _tracked = p
        .user
        .as_ref()
        .map(|user| p.hub.users.track(&user.sub, session, kick.clone()));
    // `room`: the room a v3 command was about, named in the error.
    let send_error = |code: ErrorCode, reason: String, room: Option<&RoomId>| {
        if plain {
            queue_item(tx, kick, &p.metrics, Outbound::Notice(notice(&reason)));
        } else {
            let error = ServerMsg::Error {
                code,
                reason,
                room: room.map(ToString::to_string),
            };
            queue_own(tx, kick, &p.metrics, &error);
        }
    };
    match p.protocol {
        Negotiated::V3 | Negotiated::Unsupported(_) => {
            v3::run(p, session, incoming, tx, kick, &send_error).await
        }
        // Boxed: the one-room session's future is larger than v3's, and inline every v3
        // session would carry its size.
        Negotiated::V2 | Negotiated::Plain => {
            Box::pin(run_one_room(p, session, incoming, tx, kick, &send_error)).await
        }
    }
}

/// A v2 or plain session: admit to the query's room, replay, then read until the end.
async fn run_one_room<F: Fn(ErrorCode, String, Option<&RoomId>)>(
    p: &SessionParams,
    session: SessionId,
    stream: &mut IncomingStream<'_>,
    tx: &outbox::Sender<Outbound>,
    kick: &Kick,
    send_error: &F,
) -> End {
    // Boxed: they run once, at the start; unboxed, their state would stay part of every
    // session's future (and of its memory) for the connection's life.
    let admitted = match Box::pin(admit(p, session, tx.clone(), kick.clone())).await {
        Ok(Admitted {
            room,
            snapshot,
            name,
            sender,
        }) => match Box::pin(replay(
            p,
            session,
            &room,
            snapshot,
            name.clone(),
            (tx, kick),
        ))
        .await
        {
            Ok(()) => Ok((
                room,
                Speaker {
                    key: sender,
                    name,
                    home: None,
                },
            )),
            Err(e) => {
                p.hub.unregister(session, false);
                p.metrics.store_error(e.kind());
                // Transient: try again later (1013). Permanent: an internal error (1011).
                let close = if e.is_transient() {
                    close_code::TRY_AGAIN_LATER
                } else {
                    1011
                };
                Err((ErrorCode::StoreUnavailable, close, e.to_string()))
            }
        },
        Err(e) => Err(e),
    };
    match admitted {
        Ok((room, speaker)) => {
            info!(room = %room, "joined");
            let speaker = Speaker {
                home: Some(room.clone()),
                ..speaker
            };
            let mut reader = Reader::new(p, session, kick, send_error, speaker, None);
            let end = reader.read_loop(stream, tx).await;
            p.hub.unregister(session, end == End::Left);
            info!(room = %room, ?end, "left");
            end
        }
        Err((code, close, reason)) => {
            send_error(code, reason, None);
            kick.kick(close, code_reason(code), true);
            End::Closing
        }
    }
}

/// Who a session's messages come from.
#[derive(Debug)]
struct Speaker {
    /// Whose message ids these are ([`Identity::key`]).
    key: String,
    /// The name it chats as; `None` until a nameless legacy client names itself.
    name: Option<Username>,
    /// A v2 or plain session's one room (`None` in v3: each command names its room).
    home: Option<RoomId>,
}

/// The token buckets a frame can be charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    /// Chat messages, and frames that do not decode.
    Messages,
    /// Typing notices and feed switches; v3 joins and leaves that are refused outright.
    Control,
    /// v3 joins that pass the room checks.
    Joins,
}

/// How a session ended (its transport finishes accordingly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The peer closed with 1000: it left on purpose.
    Left,
    /// The peer sent another close frame, or the connection ended.
    PeerGone,
    /// The server is closing (kick or shutdown): the writer sends the close frame.
    Closing,
    /// The stream failed (e.g. an oversize frame) and can no longer be read.
    Broken,
}

type Refused = (ErrorCode, u16, String);

/// A registered session, before its welcome.
struct Admitted {
    room: RoomId,
    snapshot: Snapshot,
    name: Option<Username>,
    /// The identity's key ([`Identity::key`]): its message ids are deduplicated together.
    sender: String,
}

/// Validates the request and registers the session (the hub holds live frames back until the
/// replay is queued).
async fn admit(
    p: &SessionParams,
    session: SessionId,
    tx: outbox::Sender<Outbound>,
    kick: Kick,
) -> Result<Admitted, Refused> {
    let room = match p.room.as_deref() {
        None => RoomId::lobby(),
        Some(raw) => RoomId::parse(raw).map_err(|e| {
            (
                ErrorCode::RoomInvalid,
                close_code::REJECTED,
                format!("room {e}"),
            )
        })?,
    };
    let (name, identity) = identify(p, session)?;
    let name_taken = |name: &Option<Username>| {
        let name = name.as_ref().map(ToString::to_string).unwrap_or_default();
        (
            ErrorCode::NameTaken,
            close_code::NAME_TAKEN,
            format!("the name \"{name}\" is already in use in room \"{room}\""),
        )
    };
    if let (Some(cluster), Some(taken)) = (&p.cluster, &name) {
        cluster
            .claim_name(&room, taken, &identity)
            .await
            .map_err(|NameTaken| name_taken(&name))?;
    }
    let sender = identity.key(p.hub.instance());
    let reg = Registration {
        connection: session,
        room: room.clone(),
        name: name.clone(),
        identity: identity.clone(),
        tx,
        kick,
        feed: p.feed,
        batches: p.protocol != Negotiated::V2,
    };
    let snapshot = match p.hub.register(session, reg) {
        Ok(snapshot) => snapshot,
        Err(NameTaken) => {
            if let (Some(cluster), Some(taken)) = (&p.cluster, &name) {
                cluster.release_name(&room, taken, &identity).await;
            }
            return Err(name_taken(&name));
        }
    };
    Ok(Admitted {
        room,
        snapshot,
        name,
        sender,
    })
}

/// Who the connection is: its name (`?name=`, validated) and what holds the name (its token, or
/// the session itself).
fn identify(
    p: &SessionParams,
    session: SessionId,
) -> Result<(Option<Username>, Identity), Refused> {
    if let Some(user) = &p.user {
        // Signed tokens: the name is the token's, held by its user; `?name=` and `?token=`
        // do not count.
        return Ok((Some(user.name.clone()), Identity::User(user.sub.clone())));
    }
    let name = match p.name.as_deref() {
        None => None,
        Some(raw) => Some(
            Username::parse(raw, p.settings.max_name_chars).map_err(|e| {
                (
                    ErrorCode::NameInvalid,
                    close_code::REJECTED,
                    format!("name {e}"),
                )
            })?,
        ),
    };
    let identity = match p.token.as_deref() {
        None => Identity::Session(session),
        Some(token) if valid_token(token) => Identity::Token(token.to_owned()),
        Some(_) => {
            return Err((
                ErrorCode::TokenInvalid,
                close_code::REJECTED,
                "token must be 16 to 128 characters of A-Z a-z 0-9 - _".into(),
            ));
        }
    };
    Ok((name, identity))
}

/// A token is 16..=128 characters of `A-Z a-z 0-9 - _`.
fn valid_token(token: &str) -> bool {
    (16..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Messages read from the store per page while replaying.
const REPLAY_PAGE: usize = 500;

/// Sends the welcome, then exactly the messages the client missed, then lets live frames
/// through. Live frames that arrived meanwhile were held back by the hub; those the replay
/// already covered are dropped there, so there is no gap and no duplicate.
async fn replay(
    p: &SessionParams,
    session: SessionId,
    room: &RoomId,
    snapshot: Snapshot,
    name: Option<Username>,
    (tx, kick): (&outbox::Sender<Outbound>, &Kick),
) -> Result<(), StoreError> {
    let store = &p.store;
    let bounds = store.bounds(room).await?;
    let epoch = store.epoch();
    let (resume, after) = resume_plan(
        &epoch,
        p.position.as_ref(),
        bounds,
        p.settings.history_on_join,
    );
    let welcome = ServerMsg::Welcome(Welcome {
        protocol: PROTOCOL_VERSION,
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        session,
        name: name.as_ref().map(ToString::to_string),
        room: room.to_string(),
        peer_addr: p.peer.to_string(),
        members: snapshot.members,
        epoch,
        resume,
        limits: p.settings.limits(),
        recent_stats: snapshot.recent_stats,
    });
    // `send().await`: only this session waits for its own writer. A plain client gets no
    // welcome: it could not display one.
    if p.protocol != Negotiated::Plain && tx.send(Outbound::Frame(encode(&welcome))).await.is_err()
    {
        return Ok(());
    }
    let dead_after = p.settings.heartbeat_interval() + p.settings.heartbeat_timeout();
    let stall = (kick, p.metrics.as_ref(), dead_after);
    if replay_range(store.as_ref(), room, (after, bounds.last), tx, stall).await? {
        p.hub.go_live(session, bounds.last);
    }
    Ok(())
}

/// Queues a room's stored messages with `after < seq <= upto`, waiting for the session's own
/// writer (only this session waits). `false` if the replay ended early: the writer is gone,
/// or the client stopped reading.
///
/// A replay leaves half the queue free: the connection's other rooms (v3), its feed and its
/// own replies stay live meanwhile and go through `try_send`, so the replay must never take
/// the slots they need (a `try_send` that found the queue full would drop the connection as a
/// slow consumer). It queues one frame at a time, and only while more than half the queue is
/// free; otherwise it waits for the writer to make room.
///
/// A client that takes nothing for the heartbeat deadline (interval + timeout) is dropped as a
/// slow consumer (4429): the read loop that notices dead peers does not run while a join
/// replays, and without a deadline such a client would hold its connection for good.
async fn replay_range(
    store: &dyn Store,
    room: &RoomId,
    (after, upto): (u64, u64),
    tx: &outbox::Sender<Outbound>,
    (kick, metrics, deadline): (&Kick, &Metrics, Duration),
) -> Result<bool, StoreError> {
    let mut range = Range::new(room.clone(), after, upto);
    while let Some(page) = range.next_page(store, REPLAY_PAGE).await? {
        for msg in page {
            let mut item = match crate::hub::entry_frame(msg) {
                (frame, false) => Outbound::History(frame),
                (frame, true) => Outbound::Data(frame),
            };
            loop {
                if !wait_for_room(tx, deadline).await {
                    if !tx.is_closed() && drop_slow_consumer(kick, metrics) {
                        tracing::warn!(room = %room, "slow consumer dropped: stopped reading its replay");
                    }
                    return Ok(false);
                }
                // Live frames may have taken the room meanwhile: then wait again.
                match tx.try_send(item) {
                    Ok(()) => break,
                    Err(outbox::TrySendError::Full(back)) => item = back,
                    Err(outbox::TrySendError::Closed(_)) => return Ok(false),
                }
            }
        }
    }
    Ok(true)
}

/// How often a waiting session looks whether its client has made room in the queue: at first
/// soon, then less often while the client takes nothing (many stalled sessions stay cheap).
const ROOM_POLL_FIRST: Duration = Duration::from_millis(1);
const ROOM_POLL_MAX: Duration = Duration::from_millis(50);

/// Watches a session's queue while something waits for more than half of it to be free: a
/// replay, or a reader whose client's answers must fit ([`Reader::read_frames`]).
struct QueueWatch {
    free: usize,
    /// When the writer last took something from the queue.
    progress: Instant,
    poll: Duration,
}

/// What a [`QueueWatch`] saw.
enum Watched {
    /// More than half of the queue is free.
    Room,
    Waiting,
    /// The writer is gone, or the client took nothing for the deadline.
    Stalled,
}

impl QueueWatch {
    fn new(tx: &outbox::Sender<Outbound>) -> Self {
        Self {
            free: tx.capacity(),
            progress: Instant::now(),
            poll: ROOM_POLL_FIRST,
        }
    }

    /// Looks again after a pause.
    async fn next(&mut self, tx: &outbox::Sender<Outbound>, deadline: Duration) -> Watched {
        tokio::time::sleep(self.poll).await;
        if tx.is_closed() {
            return Watched::Stalled;
        }
        let free = tx.capacity();
        if free > self.free {
            self.progress = Instant::now();
            self.poll = ROOM_POLL_FIRST;
        } else {
            self.poll = (self.poll * 2).min(ROOM_POLL_MAX);
        }
        self.free = free;
        if free > tx.max_capacity() / 2 {
            Watched::Room
        } else if self.progress.elapsed() >= deadline {
            Watched::Stalled
        } else {
            Watched::Waiting
        }
    }
}

/// [`QueueWatch::next`] while there is a watch; never resolves without one.
async fn watch_queue(
    watch: Option<&mut QueueWatch>,
    tx: &outbox::Sender<Outbound>,
    deadline: Duration,
) -> Watched {
    match watch {
        Some(watch) => watch.next(tx, deadline).await,
        None => std::future::pending().await,
    }
}

/// Waits until more than half of the queue is free. `false` if the writer is gone, or if the
/// client took nothing from the queue for `deadline`.
async fn wait_for_room(tx: &outbox::Sender<Outbound>, deadline: Duration) -> bool {
    if tx.capacity() > tx.max_capacity() / 2 {
        return !tx.is_closed();
    }
    let mut watch = QueueWatch::new(tx);
    loop {
        match watch.next(tx, deadline).await {
            Watched::Room => return true,
            Watched::Waiting => {}
            Watched::Stalled => return false,
        }
    }
}

fn code_reason(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NameTaken => "name taken",
        ErrorCode::NameInvalid => "invalid name",
        ErrorCode::RoomInvalid => "invalid room",
        _ => "rejected",
    }
}

struct Reader<'a, F: Fn(ErrorCode, String, Option<&RoomId>)> {
    hub: &'a Arc<Hub>,
    settings: &'a Settings,
    session: SessionId,
    kick: &'a Kick,
    send_error: &'a F,
    /// Chat messages (and frames that do not decode).
    bucket: TokenBucket,
    /// Typing notices and feed switches.
    control_bucket: TokenBucket,
    /// v3 joins.
    joins_bucket: TokenBucket,
    /// Consecutive rate-limited messages.
    strikes: u32,
    /// Who sends this session's messages, kept here so a message needs no hub lookup.
    speaker: Speaker,
    store: &'a dyn Store,
    cluster: Option<&'a Cluster>,
    metrics: &'a Metrics,
    /// v3: the rooms joined. `None` for a v2 or plain session.
    rooms: Option<v3::Rooms>,
    /// A plain client (no subprotocol): a frame that is not a message is plain text to send.
    plain: bool,
    /// v3: the room of the command being handled, named in its errors.
    about_room: Option<RoomId>,
    /// Signed tokens: the verifier, the connection's user (replaced by each `refresh`), and
    /// whether it was told its token is expiring.
    auth: Option<&'a crate::auth::Verifier>,
    user: Option<crate::auth::User>,
    expiring_sent: bool,
    /// When the current token was accepted (ms since the Unix epoch).
    token_since: u64,
    /// Messages handed to the store and not yet committed, oldest first: the reader goes on
    /// reading while they commit (a commit waits for the disk), and answers each one (ack,
    /// nack or error) when it lands, in the order they were sent.
    in_flight: FuturesOrdered<InFlight>,
}

/// How many of a connection's messages may wait for their commit at once; past that, the
/// reader stops reading until the oldest one lands. A commit waits for the disk (about a
/// millisecond or more): one message at a time held a connection to a few hundred a second,
/// while many messages in flight share the writer's batched commits.
const MAX_IN_FLIGHT: usize = 32;

/// A message being committed ([`Store::submit`]).
type InFlight = std::pin::Pin<Box<dyn std::future::Future<Output = Committed> + Send + Sync>>;

/// A message's commit, with what its answer needs.
struct Committed {
    outcome: Result<Appended, StoreError>,
    id: Option<String>,
    /// The room a v3 message was sent to (its ack, nack or error names it).
    room: Option<RoomId>,
}

impl<'a, F: Fn(ErrorCode, String, Option<&RoomId>)> Reader<'a, F> {
    fn new(
        p: &'a SessionParams,
        session: SessionId,
        kick: &'a Kick,
        send_error: &'a F,
        speaker: Speaker,
        rooms: Option<v3::Rooms>,
    ) -> Self {
        Self {
            hub: &p.hub,
            settings: &p.settings,
            session,
            kick,
            send_error,
            bucket: TokenBucket::new(p.settings.rate_per_sec, p.settings.rate_burst),
            control_bucket: TokenBucket::new(
                p.settings.control_rate_per_sec,
                p.settings.control_rate_burst,
            ),
            joins_bucket: TokenBucket::new(
                p.settings.join_rate_per_sec,
                p.settings.join_rate_burst,
            ),
            strikes: 0,
            speaker,
            plain: p.protocol == Negotiated::Plain,
            about_room: None,
            store: &*p.store,
            cluster: p.cluster.as_deref(),
            metrics: &p.metrics,
            rooms,
            auth: p.auth.as_deref(),
            user: p.user.clone(),
            expiring_sent: false,
            token_since: unix_millis(),
            in_flight: FuturesOrdered::new(),
        }
    }
}

impl<F: Fn(ErrorCode, String, Option<&RoomId>)> Reader<'_, F> {
    /// Reads the client's frames until the session ends, then answers the messages still
    /// being committed (unless nobody is left to read the answers).
    async fn read_loop(
        &mut self,
        stream: &mut IncomingStream<'_>,
        tx: &outbox::Sender<Outbound>,
    ) -> End {
        let end = self.read_frames(stream, tx).await;
        if !matches!(end, End::PeerGone | End::Broken) {
            while let Some(done) = self.in_flight.next().await {
                self.committed(done, tx);
            }
        }
        end
    }

    async fn read_frames(
        &mut self,
        stream: &mut IncomingStream<'_>,
        tx: &outbox::Sender<Outbound>,
    ) -> End {
        let interval = self.settings.heartbeat_interval();
        let dead_after = interval + self.settings.heartbeat_timeout();
        // Three deadlines and one timer (a timer is about 100 bytes of every idle session):
        // - the next ping;
        // - `dead_at`: any frame (a pong included) proves the peer alive; silence until then
        //   means it is gone, and it is closed right then, not at the next ping;
        // - signed tokens: when to say the token is expiring, then when to close (re-armed by
        //   each refresh). Without tokens, never.
        let mut next_ping = Instant::now() + interval;
        let mut dead_at = Instant::now() + dead_after;
        let timer = tokio::time::sleep_until(next_ping);
        tokio::pin!(timer);
        // See [`MAX_IN_FLIGHT`]; a quarter of the queue at most, so that the answers and the
        // broadcasts of the messages in flight fit the half of it that is kept free.
        let max_in_flight = MAX_IN_FLIGHT.min(tx.max_capacity() / 4).max(1);
        let mut stalled = None;
        // Since when the reader has not been reading (see `reading`).
        let mut paused: Option<Instant> = None;
        loop {
            // The answers to the client's frames (errors, acks, its own messages) go into its
            // queue: a frame is read only while more than half of the queue is free. A client
            // that sends faster than it reads is slowed down (TCP backpressure) rather than
            // dropped as a slow consumer for its own answers; one that takes nothing from its
            // queue for the heartbeat deadline is dropped (4429).
            let room_for_answers = tx.capacity() > tx.max_capacity() / 2;
            if room_for_answers {
                stalled = None;
            } else if stalled.is_none() {
                stalled = Some(QueueWatch::new(tx));
            }
            let reading = room_for_answers && self.in_flight.len() < max_in_flight;
            match (reading, paused) {
                (false, None) => paused = Some(Instant::now()),
                (true, Some(since)) => {
                    // Nothing was read while the reader waited, so the peer could not be
                    // heard: its deadline moves by the pause, no more.
                    paused = None;
                    dead_at += since.elapsed();
                }
                _ => {}
            }
            let armed = self.token_deadline();
            // Checked here, not only when the timer fires: the timer comes after the client's
            // frames in the select below, and a client that floods frames (pings cost it
            // nothing) would otherwise keep its token past its expiry.
            if armed.is_some_and(|at| at <= Instant::now()) {
                if self.on_token_deadline(tx) {
                    return End::Closing;
                }
                continue;
            }
            // While the reader is paused the peer cannot be heard, so it cannot be dead.
            let wake = [reading.then_some(dead_at), armed]
                .into_iter()
                .flatten()
                .fold(next_ping, Instant::min);
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            // In this order: a kick or a shutdown first; then commits that landed, answered
            // before the next frame is read (a store that answers at once, Redis, must not
            // see a later message before an earlier one's refusal is acted on).
            tokio::select! {
                biased;
                () = self.kick.closing() => return End::Closing,
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.committed(done, tx);
                }
                watched = watch_queue(stalled.as_mut(), tx, dead_after) => {
                    if let Watched::Stalled = watched {
                        if !tx.is_closed() && drop_slow_consumer(self.kick, self.metrics) {
                            tracing::warn!("slow consumer dropped: stopped reading its answers");
                        }
                        return End::Closing;
                    }
                }
                frame = stream.next(), if reading => {
                    dead_at = Instant::now() + dead_after;
                    match frame {
                        Some(Incoming::Text(text)) => {
                            // Boxed: handling a frame is the largest future of a session
                            // and only lives while a frame is handled; inline, every idle
                            // session would carry its space (about 700 bytes).
                            Box::pin(self.on_text(text.as_str(), tx)).await;
                            // A v3 join replays history before it returns: the peer was being
                            // written to, not silent, meanwhile.
                            dead_at = Instant::now() + dead_after;
                        }
                        Some(Incoming::Binary) => {
                            self.metrics.frames_in.get_or_create(&kind("binary")).inc();
                            self.reject(
                                ErrorCode::BinaryNotSupported,
                                "the chat socket speaks JSON text frames; /echo takes binary".into(),
                            );
                        }
                        Some(Incoming::Alive) => {}
                        Some(Incoming::Left) => return End::Left,
                        Some(Incoming::Gone) | None => return End::PeerGone,
                        Some(Incoming::Broken(close)) => {
                            if let Some((code, reason)) = close {
                                self.kick.kick(code, reason, false);
                            }
                            return End::Broken;
                        }
                    }
                }
                () = &mut timer => {
                    // A token deadline is handled at the top of the loop.
                    let now = Instant::now();
                    if reading && dead_at <= now {
                        info!("heartbeat timeout");
                        self.kick.kick(close_code::HEARTBEAT_TIMEOUT, "heartbeat timeout", false);
                        return End::Closing;
                    }
                    if next_ping <= now {
                        let _ = tx.try_send(Outbound::Ping);
                        // A late ping moves the next one (no burst of pings to catch up).
                        next_ping = now + interval;
                    }
                }
            }
        }
    }

    /// The next moment the token needs attention: the `token_expiring` notice (the refresh
    /// window before `exp`), then the close (`exp` plus the leeway).
    fn token_deadline(&self) -> Option<Instant> {
        let (auth, user) = (self.auth?, self.user.as_ref()?);
        let exp = user.exp.saturating_mul(1000);
        let at = if self.expiring_sent {
            auth.closes_at(user.exp).saturating_mul(1000)
        } else {
            // The refresh window before `exp`, but never before half the token's life here:
            // a token that lives no longer than the window would otherwise be "expiring" again
            // at once after each refresh.
            let window = u64::try_from(auth.refresh_window().as_millis()).unwrap_or(u64::MAX);
            let half_life = self.token_since + exp.saturating_sub(self.token_since) / 2;
            exp.saturating_sub(window).max(half_life.min(exp))
        };
        Some(Instant::now() + Duration::from_millis(at.saturating_sub(unix_millis())))
    }

    /// The token timer fired: tell the client to refresh, or close the session (4401) if it
    /// did not in time. `true` when the session ends.
    fn on_token_deadline(&mut self, tx: &outbox::Sender<Outbound>) -> bool {
        let Some(user) = &self.user else {
            return false;
        };
        if !self.expiring_sent {
            self.expiring_sent = true;
            let exp = user.exp;
            queue_own(
                tx,
                self.kick,
                self.metrics,
                &ServerMsg::TokenExpiring { exp },
            );
            return false;
        }
        info!(exp = user.exp, "token expired without a refresh");
        self.metrics.tokens_expired.inc();
        self.reject(
            ErrorCode::TokenExpired,
            format!(
                "your token expired (exp {}) and was not refreshed: get a new token and reconnect",
                user.exp
            ),
        );
        self.kick
            .kick(close_code::UNAUTHORIZED, "token expired", true);
        true
    }

    /// A `refresh`: a new token for the same user extends the session; anything else is a
    /// typed error and the session goes on until its current token expires.
    fn refresh(&mut self, token: &str, tx: &outbox::Sender<Outbound>) {
        let (Some(auth), Some(current)) = (self.auth, self.user.as_ref()) else {
            return self.reject(
                ErrorCode::InvalidMessage,
                "this server does not use signed user tokens: there is nothing to refresh".into(),
            );
        };
        let user = match auth
            .verify_refresh(current, token)
            .and_then(|user| self.hub.users.not_signed_out(user))
        {
            Ok(user) => user,
            Err(refused) => {
                self.metrics
                    .auth_refused
                    .get_or_create(&kind(refused.code.name()))
                    .inc();
                return self.reject(refused.code, format!("refresh refused: {}", refused.reason));
            }
        };
        self.metrics.tokens_refreshed.inc();
        let exp = user.exp;
        self.user = Some(user);
        self.expiring_sent = false;
        self.token_since = unix_millis();
        // The new token may allow fewer rooms: those are left (a one-room session, whose room
        // is the connection's, is closed).
        if self.rooms.is_some() {
            self.leave_forbidden_rooms(tx);
        } else if let Some(home) = self.speaker.home.clone()
            && !self.allowed(&home)
        {
            self.reject(
                ErrorCode::RoomForbidden,
                format!("your new token does not allow room \"{home}\""),
            );
            self.kick
                .kick(close_code::UNAUTHORIZED, "room no longer allowed", true);
            return;
        }
        queue_own(
            tx,
            self.kick,
            self.metrics,
            &ServerMsg::TokenRefreshed { exp },
        );
    }

    /// Whether the connection's user may join `room` (always, without signed tokens).
    fn allowed(&self, room: &RoomId) -> bool {
        self.user.as_ref().is_none_or(|u| u.rooms.allows(room))
    }

    /// Decodes a frame, charges it to its kind's token bucket, and handles it.
    async fn on_text(&mut self, text: &str, tx: &outbox::Sender<Outbound>) {
        if self.rooms.is_some() {
            return self.on_command(text, tx).await;
        }
        let frame = Inbound::decode(text);
        self.metrics
            .frames_in
            .get_or_create(&kind(match &frame {
                Ok(Inbound::Typed(ClientMsg::Chat { .. })) => "chat",
                Ok(Inbound::Typed(ClientMsg::Typing)) => "typing",
                Ok(Inbound::Typed(ClientMsg::Feed { .. })) => "feed",
                Ok(Inbound::Typed(ClientMsg::Refresh { .. })) => "refresh",
                Ok(Inbound::Legacy(_)) => "legacy",
                Err(_) if self.plain => "text",
                Err(_) => "invalid",
            }))
            .inc();
        // Typing and feed switches are cheap and frequent; everything else (chat, and frames
        // that do not decode) is charged to the message bucket.
        let control = matches!(
            frame,
            Ok(Inbound::Typed(
                ClientMsg::Typing | ClientMsg::Feed { .. } | ClientMsg::Refresh { .. }
            ))
        );
        let bucket = if control {
            Bucket::Control
        } else {
            Bucket::Messages
        };
        if !self.charge_or_reject(bucket) {
            return;
        }
        match frame {
            Ok(Inbound::Typed(ClientMsg::Chat { msg, id })) => self.chat_home(&msg, id).await,
            Ok(Inbound::Typed(ClientMsg::Typing)) => self.hub.typing(self.session),
            Ok(Inbound::Typed(ClientMsg::Feed { enabled })) => {
                self.hub.set_feed(self.session, enabled)
            }
            Ok(Inbound::Typed(ClientMsg::Refresh { token })) => self.refresh(&token, tx),
            Ok(Inbound::Legacy(LegacyChat { name, msg })) => {
                if self.speaker.name.is_none() && !self.take_name(&name).await {
                    return;
                }
                self.chat_home(&msg, None).await;
            }
            // A tutorial page may send plain text (the WebAPI chat does): it is the message.
            Err(_) if self.plain => self.chat_home(text, None).await,
            Err(e) => self.reject(e.code(), e.to_string()),
        }
    }

    /// Charges a frame to its bucket. Over the rate the frame is refused: `Err` with the reason
    /// to give the client, or `Err(None)` once `--rate-abuse-limit` refusals in a row have
    /// closed the connection (1008).
    fn charge(&mut self, bucket: Bucket) -> Result<(), Option<String>> {
        let s = self.settings;
        let (tokens, rate, burst, what) = match bucket {
            Bucket::Messages => (&mut self.bucket, s.rate_per_sec, s.rate_burst, "messages"),
            Bucket::Control => (
                &mut self.control_bucket,
                s.control_rate_per_sec,
                s.control_rate_burst,
                "typing/feed frames",
            ),
            Bucket::Joins => (
                &mut self.joins_bucket,
                s.join_rate_per_sec,
                s.join_rate_burst,
                "joins",
            ),
        };
        if tokens.try_take() {
            self.strikes = 0;
            return Ok(());
        }
        self.metrics.rate_limited.inc();
        self.strikes += 1;
        if self.strikes >= s.rate_abuse_limit {
            self.kick.kick(1008, "rate limit exceeded", true);
            return Err(None);
        }
        Err(Some(format!(
            "more than {rate} {what} per second (burst {burst}); dropped"
        )))
    }

    /// [`charge`](Self::charge), telling the client with a typed `rate_limited` error.
    fn charge_or_reject(&mut self, bucket: Bucket) -> bool {
        match self.charge(bucket) {
            Ok(()) => true,
            Err(reason) => {
                if let Some(reason) = reason {
                    self.reject(ErrorCode::RateLimited, reason);
                }
                false
            }
        }
    }

    /// A nameless session takes the name of its first legacy frame.
    async fn take_name(&mut self, raw: &str) -> bool {
        let name = match Username::parse(raw, self.settings.max_name_chars) {
            Ok(name) => name,
            Err(e) => {
                self.reject(ErrorCode::NameInvalid, format!("name {e}"));
                return false;
            }
        };
        let claimed = match (self.cluster, self.hub.identity(self.session)) {
            (Some(cluster), Some((room, identity))) => {
                // Boxed: a Redis call's state would otherwise enlarge every reader.
                Box::pin(cluster.claim_name(&room, &name, &identity)).await
            }
            _ => Ok(()),
        };
        if claimed
            .and_then(|()| self.hub.claim_name(self.session, name.clone()))
            .is_err()
        {
            self.reject(
                ErrorCode::NameTaken,
                format!("the name \"{name}\" is already in use"),
            );
            return false;
        }
        self.speaker.name = Some(name);
        true
    }

    /// A v2 or plain session's message, to its one room.
    async fn chat_home(&mut self, raw: &str, id: Option<String>) {
        if let Some(room) = self.speaker.home.clone() {
            self.chat(room, raw, id).await;
        }
    }

    /// Hands a message to `room` (joined) to the store, whose commit fans it out. Answered
    /// once committed ([`Self::committed`]; v3 acks and nacks name the command's room).
    async fn chat(&mut self, room: RoomId, raw: &str, id: Option<String>) {
        let Some(name) = self.speaker.name.clone() else {
            return self.reject(
                ErrorCode::NameRequired,
                "connect with ?name= (or send {\"name\",\"msg\"}) before chatting".into(),
            );
        };
        if let Some(id) = &id
            && !shared::valid_client_id(id)
        {
            return self.reject(
                ErrorCode::IdInvalid,
                "message id must be 1 to 64 printable ASCII characters".into(),
            );
        }
        let text = match MessageText::parse(raw, self.settings.max_text_chars) {
            Ok(text) => text,
            Err(e) => return self.reject(ErrorCode::TextInvalid, format!("message {e}")),
        };
        let new = NewMessage {
            room,
            name: name.to_string(),
            text: text.as_str().to_owned(),
            sender: self.speaker.key.clone(),
            client_id: id.clone(),
            ts: unix_millis(),
            key: None,
            origin: Some(self.session),
        };
        let commit = self.store.submit(new).await;
        let room = self.about_room.clone();
        self.in_flight.push_back(Box::pin(async move {
            Committed {
                outcome: commit.await,
                id,
                room,
            }
        }));
    }

    /// Answers a message whose commit landed: an ack (if it had an id), or why it was not
    /// stored.
    fn committed(&self, done: Committed, tx: &outbox::Sender<Outbound>) {
        let Committed { outcome, id, room } = done;
        let about_room = room.as_ref().map(ToString::to_string);
        let reject = |code, reason| self.reject_about(code, reason, room.as_ref());
        match outcome {
            Ok(appended) => {
                if let Some(id) = id {
                    let ack = ServerMsg::Ack {
                        id,
                        seq: appended.seq,
                        ts: appended.ts,
                        room: about_room,
                    };
                    queue_own(tx, self.kick, self.metrics, &ack);
                }
            }
            Err(e) if !e.is_transient() => {
                self.metrics.store_error(e.kind());
                tracing::warn!(error = %e, "message refused for good");
                let reason = format!(
                    "{e}; the message was not stored, and sending it again will not store it"
                );
                match id.filter(|_| !self.plain) {
                    Some(id) => queue_own(
                        tx,
                        self.kick,
                        self.metrics,
                        &ServerMsg::Nack {
                            id,
                            code: ErrorCode::StoreRejected,
                            reason,
                            room: about_room,
                        },
                    ),
                    None => reject(ErrorCode::StoreRejected, reason),
                }
            }
            Err(e) => {
                self.metrics.store_error(e.kind());
                reject(
                    ErrorCode::StoreUnavailable,
                    format!("{e}; the message was not stored, send it again"),
                );
                // Close with 1013 (try again later): the client reconnects with backoff, and its
                // welcome (which needs the store back) makes it resend its whole outbox, this
                // message included; the message id makes a resend that did land harmless.
                self.kick.kick(
                    close_code::TRY_AGAIN_LATER,
                    "history store unavailable",
                    true,
                );
            }
        }
    }

    fn reject(&self, code: ErrorCode, reason: String) {
        self.reject_about(code, reason, self.about_room.as_ref());
    }

    /// [`Self::reject`] for a command about `room` (one answered later than it was read).
    fn reject_about(&self, code: ErrorCode, reason: String, room: Option<&RoomId>) {
        debug!(?code, %reason, "rejected frame");
        (self.send_error)(code, reason, room);
    }
}

/// The next frame a session queues, until the session has ended (`ended`): at a shutdown or a
/// kick that lets frames through, the session still answers the messages it had in flight, a
/// commit later, and a transport takes those answers before its close. `None` once the
/// session has ended (what it queued last is then taken with `try_recv`).
pub(crate) async fn next_before_end(
    rx: &mut outbox::Receiver<Outbound>,
    ended: &CancellationToken,
) -> Option<Outbound> {
    tokio::select! {
        biased;
        item = rx.recv() => item,
        () = ended.cancelled() => None,
    }
}

/// Queues a frame the session owes its own client (an ack, a nack, an error). A full queue
/// means the client is not reading: the slow-consumer policy closes it (4429) and it reconnects
/// and resends what was not acknowledged. Never dropped in silence. (A closed queue is a writer
/// that already ended: nobody is left to tell.)
fn queue_own(tx: &outbox::Sender<Outbound>, kick: &Kick, metrics: &Metrics, msg: &ServerMsg) {
    queue_item(tx, kick, metrics, Outbound::Frame(encode(msg)));
}

/// [`queue_own`] for any queue item.
fn queue_item(tx: &outbox::Sender<Outbound>, kick: &Kick, metrics: &Metrics, item: Outbound) {
    if let Err(outbox::TrySendError::Full(_)) = tx.try_send(item)
        && drop_slow_consumer(kick, metrics)
    {
        tracing::warn!("slow consumer dropped: its own reply did not fit its queue");
    }
}

/// A notice for a plain client, shaped like a chat message (string `name` and `msg`) so that a
/// tutorial page that prints `data.name + ': ' + data.msg` shows it as it is.
fn notice(text: &str) -> Utf8Bytes {
    let notice = serde_json::json!({ "type": "notice", "name": Username::SERVER, "msg": text });
    Utf8Bytes::from(notice.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Application;
    use crate::config::Settings;
    use crate::limits::ConnectionLimiter;
    use shared::Resume;

    /// The session core has no socket: a plain stream of events in, queue items out. This is
    /// what the SSE and long-polling transports will drive.
    #[tokio::test]
    async fn the_session_core_serves_protocol_v3_from_a_stream_of_events_without_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::with_bind("127.0.0.1:0".parse().unwrap());
        settings.db = dir.path().join("core.db");
        let app = Application::build(settings).await.unwrap();
        let state = app.state().clone();
        let ip = "127.0.0.1".parse().unwrap();
        let p = SessionParams {
            hub: state.hub.clone(),
            settings: state.settings.clone(),
            peer: ClientAddr { ip, port: Some(9) },
            room: None,
            name: Some("core".into()),
            token: Some("core-test-token-0001".into()),
            user: None,
            auth: None,
            position: None,
            feed: false,
            store: state.store.clone(),
            cluster: None,
            metrics: state.metrics.clone(),
            kicks: state.kicks.clone(),
            tracker: state.tracker.clone(),
            permit: ConnectionLimiter::new(10, 10).try_acquire(ip).unwrap(),
            protocol: Negotiated::V3,
        };
        let text = |json: &str| Incoming::Text(Utf8Bytes::from(json.to_owned()));
        let mut incoming = futures_util::stream::iter(vec![
            text(r#"{"type":"join","room":"core"}"#),
            Incoming::Alive,
            text(r#"{"type":"chat","room":"core","msg":"no socket","id":"m1"}"#),
            Incoming::Binary,
            Incoming::Left,
        ]);
        let (tx, mut rx) = outbox::channel(64);
        let session = state.hub.next_session_id();
        let end = serve(&p, session, &mut incoming, &tx, &Kick::default()).await;
        assert_eq!(end, End::Left);
        drop(tx);
        let mut frames = Vec::new();
        while let Some(item) = rx.recv().await {
            if let Outbound::Frame(f) | Outbound::Chat(f, _) | Outbound::History(f) = item {
                frames.push(ServerMsg::decode(f.as_str()).unwrap());
            }
        }
        // The reader goes on while a message commits: the message's broadcast and its ack may
        // come before or after the frames that follow it. The rest is in order.
        let chat = frames.iter().position(|m| matches!(m, ServerMsg::Chat(_)));
        let chat = chat.map(|i| frames.remove(i));
        let Some(ServerMsg::Chat(chat)) = chat else {
            panic!("no broadcast of the message: {frames:?}");
        };
        assert_eq!((chat.msg.as_str(), chat.seq), ("no socket", 1));
        let ack = frames
            .iter()
            .position(|m| matches!(m, ServerMsg::Ack { .. }));
        let ack = ack.map(|i| frames.remove(i));
        assert_eq!(
            ack,
            Some(ServerMsg::Ack {
                id: "m1".into(),
                seq: 1,
                ts: chat.ts,
                room: Some("core".into()),
            })
        );
        assert!(matches!(&frames[0], ServerMsg::Hello(h) if h.name.as_deref() == Some("core")));
        assert!(matches!(
            &frames[1],
            ServerMsg::Subscribed(s) if s.room == "core" && s.resume == Resume::Fresh { count: 0 }
        ));
        assert!(matches!(
            &frames[2],
            ServerMsg::Error {
                code: ErrorCode::BinaryNotSupported,
                ..
            }
        ));
        assert_eq!(frames.len(), 3, "{frames:?}");
    }
}
