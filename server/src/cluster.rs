//! Several nodes sharing rooms through Redis (`--redis-url`), with no sticky sessions.
//!
//! - History lives in Redis ([`RedisStore`]): every node appends to the same streams and the
//!   append script publishes each message on [`CHAT_CHANNEL`]. A node fans out only what it
//!   receives there, its own messages included, so every node delivers the same `seq` order and
//!   none delivers a message twice.
//! - Pub/sub loses what is published while a node is not subscribed. So a node reads the
//!   stream on from each room's floor (the oldest last `seq` among its live sessions) whenever
//!   it (re)subscribes, and before any message that is more than one past that floor. Sessions
//!   skip `seq`s they already have, so over-reading is harmless.
//! - Presence: every `ttl / 3` a node writes the members it holds to `sb:node:{id}` with a TTL
//!   and reads the other nodes' entries; a node that dies simply stops refreshing, and its
//!   members leave everywhere within the TTL. Names are claimed in Redis
//!   (`sb:name:{room}:{name}` → holder, refreshed with the presence, released by compare and
//!   delete), so a name is held across nodes.
//! - Typing notices go over [`TYPING_CHANNEL`]; they are never stored.
//! - HTTP sessions (SSE, long-polling) live on the node that opened them, whose id starts the
//!   session's secret. A POST or a poll that reaches another node is forwarded on the holding
//!   node's own channel ([`keys::node_channel`]); the answer (the HTTP status and body) comes
//!   back on the asking node's channel.
//! - Everything between nodes is a [`NodeMsg`] in JSON; the keys are listed in
//!   [`crate::redis_keys`].
//!
//! While Redis is unreachable a node keeps its sessions and the last presence it saw, retries
//! appends (see [`RedisStore`]), reports itself not ready on `/readyz`, and resubscribes with
//! backoff, catching up as above.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use shared::{ChatMsg, RoomId, Username};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::{Backplane, Hub, Identity, NameTaken, RemoteMembers};
use crate::metrics::op;
use crate::redis_keys::{
    self as keys, CHAT_CHANNEL, DATA_CHANNEL, NODES, TYPING_CHANNEL, USERS_CHANNEL,
};
use crate::store::redis::{RedisStore, unavailable, with_epoch};
use crate::store::{Range, StoreError};

/// A node's presence entry (`sb:node:{node}`): room → name → connections on that node.
type NodeMembers = BTreeMap<RoomId, BTreeMap<Username, u32>>;

/// What nodes tell each other over pub/sub, as JSON: typed, never a joined string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeMsg {
    /// A stored message, published by the append script in [`RedisStore`] on [`CHAT_CHANNEL`].
    Chat {
        room: RoomId,
        seq: u64,
        ts: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        name: String,
        msg: String,
        /// A durable data point's key (then `msg` is its JSON).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// A `latest` or `volatile` data point published on `node` (on [`DATA_CHANNEL`]): the
    /// other nodes deliver it to their members of the room.
    Data { node: String, data: shared::DataMsg },
    /// A member of `room` held on `node` is typing (on [`TYPING_CHANNEL`]).
    Typing {
        node: String,
        room: RoomId,
        name: Username,
    },
    /// Frames POSTed to another node for an HTTP session the receiving node holds (on its own
    /// channel, [`keys::node_channel`]); answered with [`NodeMsg::Answer`] on `reply_to`'s.
    SessionInput {
        session: String,
        frames: Vec<String>,
        leave: bool,
        reply_to: String,
        request: u64,
    },
    /// A poll that reached another node, for an HTTP session the receiving node holds; answered
    /// with [`NodeMsg::Answer`] on `reply_to`'s channel.
    Poll {
        session: String,
        last: u64,
        reply_to: String,
        request: u64,
    },
    /// The user `sub` was signed out at `at` (on [`USERS_CHANNEL`]; the server API's
    /// `POST /api/v1/users/{sub}/disconnect`): close its connections, refuse its older tokens.
    DisconnectUser { sub: String, at: u64 },
    /// The answer to a forwarded request: the HTTP status and body to give the client.
    Answer {
        request: u64,
        status: u16,
        body: String,
    },
}

/// Who asked, for a forwarded request's answer.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    pub node: String,
    pub request: u64,
}

/// What other nodes forwarded for the HTTP sessions this node holds (the HTTP transport
/// serves them: see `session::http::serve_forwarded`).
#[derive(Debug)]
pub enum Forwarded {
    Input {
        session: String,
        frames: Vec<String>,
        leave: bool,
        reply_to: ReplyTo,
    },
    Poll {
        session: String,
        last: u64,
        reply_to: ReplyTo,
    },
}
/// RFC 6455 "service restart": clients reconnect.
const SERVICE_RESTART: u16 = 1012;
/// Messages read from a stream per request while catching up.
const CATCH_UP_PAGE: usize = 500;
/// Messages handed to the hub at once while catching up.
const CATCH_UP_CHUNK: usize = 32;
/// How long a catch-up waits for a full session queue to drain.
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(1);
/// How often the subscription is checked with a ping.
const SUBSCRIPTION_PING: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Takes a name for a holder, or refreshes it, unless someone else holds it.
/// KEYS: name keys. ARGV[1]: TTL in ms; ARGV[1 + i]: the holder for KEYS[i].
/// Returns how many were held by someone else.
const CLAIM: &str = r"
local taken = 0
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder and holder ~= ARGV[i + 1] then
    taken = taken + 1
  else
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
  end
end
return taken
";

/// Deletes a name key if it is still held by the given holder.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// What the hub asks the cluster to tell the other nodes.
#[derive(Debug)]
enum Event {
    Released {
        room: RoomId,
        name: Username,
        holder: String,
    },
    Typing {
        room: RoomId,
        name: Username,
    },
}

/// The hub's side of the backplane: it only queues events (the hub never waits on Redis).
#[derive(Debug)]
struct Outbox {
    events: mpsc::UnboundedSender<Event>,
}

/// What the cluster reads of what its hub tells the other nodes.
#[derive(Debug)]
pub struct Events(mpsc::UnboundedReceiver<Event>);

/// A backplane for a clustered hub (give it to [`Hub::new`]), and its other end (give it to
/// [`Cluster::start`]).
pub fn backplane() -> (Arc<dyn Backplane>, Events) {
    let (events, rx) = mpsc::unbounded_channel();
    (Arc::new(Outbox { events }), Events(rx))
}

impl Backplane for Outbox {
    fn released(&self, room: &RoomId, name: &Username, holder: String) {
        let _ = self.events.send(Event::Released {
            room: room.clone(),
            name: name.clone(),
            holder,
        });
    }

    fn typing(&self, room: &RoomId, name: &Username) {
        let _ = self.events.send(Event::Typing {
            room: room.clone(),
            name: name.clone(),
        });
    }
}

pub struct Cluster {
    node: String,
    store: Arc<RedisStore>,
    hub: Arc<Hub>,
    conn: ConnectionManager,
    ttl: Duration,
    claim: Script,
    release: Script,
    subscribed: AtomicBool,
    presence_ok: AtomicBool,
    /// Where requests forwarded to this node's HTTP sessions go.
    forwarded: mpsc::UnboundedSender<Forwarded>,
    /// Requests (polls, POSTs) this node forwarded, waiting for their answers.
    pending_polls: Mutex<HashMap<u64, oneshot::Sender<(u16, String)>>>,
    next_request: AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).finish()
    }
}

/// When Redis lost its data (a new epoch), sessions' positions belong to the old history:
/// every client is made to reconnect, resume, and be told (`gap{epoch_changed}`).
async fn close_all_on_new_epoch(
    mut epochs: watch::Receiver<String>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = epochs.changed() => {
                if changed.is_err() {
                    return;
                }
                hub.close_all(SERVICE_RESTART, "history restarted");
            }
            () = shutdown.cancelled() => return,
        }
    }
}

impl Cluster {
    /// Joins the cluster: starts the subscription, the presence heartbeat, the publisher of
    /// the hub's `events` (made with the hub's backplane by [`backplane`]) and the watch on
    /// the history's epoch, which run until `shutdown`.
    pub fn start(
        store: Arc<RedisStore>,
        hub: Arc<Hub>,
        Events(rx): Events,
        ttl: Duration,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
        forwarded: mpsc::UnboundedSender<Forwarded>,
    ) -> Arc<Self> {
        let node = hub.instance().to_owned();
        tracker.spawn(close_all_on_new_epoch(
            store.epoch_changes(),
            hub.clone(),
            shutdown.clone(),
        ));
        let cluster = Arc::new(Self {
            conn: store.connection(),
            node,
            store,
            hub,
            ttl,
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            subscribed: AtomicBool::new(false),
            presence_ok: AtomicBool::new(false),
            forwarded,
            pending_polls: Mutex::default(),
            next_request: AtomicU64::new(1),
        });
        tracing::info!(node = %cluster.node, "joining the cluster");
        tracker.spawn(cluster.clone().subscribe_loop(shutdown.clone()));
        tracker.spawn(cluster.clone().heartbeat_loop(shutdown.clone()));
        tracker.spawn(cluster.clone().event_loop(rx, shutdown));
        cluster
    }

    /// Subscribed, presence current, and the last store request reached Redis.
    pub fn ready(&self) -> Result<(), &'static str> {
        if !self.subscribed.load(Ordering::Relaxed) {
            return Err("not subscribed to Redis");
        }
        if !self.store.healthy() {
            return Err("Redis unreachable");
        }
        if !self.presence_ok.load(Ordering::Relaxed) {
            return Err("presence not refreshed");
        }
        Ok(())
    }

    /// Claims a name across the cluster. While Redis is unreachable, only this node's own
    /// holders are checked (by the hub), so sessions keep working.
    pub async fn claim_name(
        &self,
        room: &RoomId,
        name: &Username,
        identity: &Identity,
    ) -> Result<(), NameTaken> {
        let reply: redis::RedisResult<u32> = self
            .claim
            .key(keys::name(room, name))
            .arg(self.ttl.as_millis() as u64)
            .arg(identity.key(&self.node))
            .invoke_async(&mut self.conn.clone())
            .await;
        match reply {
            Ok(0) => Ok(()),
            Ok(_) => Err(NameTaken),
            Err(e) => {
                self.failed("claim", &e);
                tracing::warn!("name claim not checked in Redis; only this node's holders count");
                Ok(())
            }
        }
    }

    /// Gives back a claim Redis granted that this node could not use (its hub refused the name:
    /// a local holder the cluster had lost track of). Compare-and-delete: another holder's
    /// claim is never touched.
    pub async fn release_name(&self, room: &RoomId, name: &Username, identity: &Identity) {
        let reply: redis::RedisResult<u32> = self
            .release
            .key(keys::name(room, name))
            .arg(identity.key(&self.node))
            .invoke_async(&mut self.conn.clone())
            .await;
        if let Err(e) = reply {
            self.failed("release", &e);
        }
    }

    async fn subscribe_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        while !shutdown.is_cancelled() {
            match self.subscribe_once(&shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    self.subscribed.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in = ?backoff, "Redis subscription lost");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One subscription's life: subscribe, catch up, then relay until it breaks (`Err`) or the
    /// server stops (`Ok`).
    async fn subscribe_once(&self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        let pubsub = self
            .store
            .client()
            .get_async_pubsub()
            .await
            .map_err(unavailable)?;
        let (mut sink, mut stream) = pubsub.split();
        sink.subscribe(&[
            CHAT_CHANNEL,
            TYPING_CHANNEL,
            USERS_CHANNEL,
            DATA_CHANNEL,
            &keys::node_channel(&self.node),
        ])
        .await
        .map_err(unavailable)?;
        // Whatever is published from here on waits in `stream`; the catch-up reads what was
        // published before, while this node was not listening.
        for (room, floor) in self.hub.room_floors() {
            self.fill(&room, floor, u64::MAX).await?;
        }
        self.subscribed.store(true, Ordering::Relaxed);
        tracing::info!("subscribed to Redis");
        let mut ping = tokio::time::interval(SUBSCRIPTION_PING);
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let msg = msg.ok_or_else(|| unavailable("subscription closed"))?;
                    self.relay(&msg).await?;
                }
                _ = ping.tick() => {
                    tokio::time::timeout(SUBSCRIPTION_PING, sink.ping::<redis::Value>())
                        .await
                        .map_err(|_| unavailable("ping timed out"))?
                        .map_err(unavailable)?;
                }
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    async fn relay(&self, msg: &redis::Msg) -> Result<(), StoreError> {
        let payload: String = msg.get_payload().map_err(unavailable)?;
        let event = match serde_json::from_str::<NodeMsg>(&payload) {
            Ok(event) => event,
            Err(e) => {
                // A node of another release, or a stray publisher: a chat message lost here is
                // read from the stream at the next one (its seq shows the gap).
                self.count_failure("decode");
                tracing::warn!(channel = msg.get_channel_name(), error = %e, "undecodable node message");
                return Ok(());
            }
        };
        match event {
            NodeMsg::Chat {
                room,
                seq,
                ts,
                id,
                name,
                msg,
                key,
            } => {
                if let Some(floor) = self.hub.room_floor(&room)
                    && seq > floor + 1
                {
                    self.fill(&room, floor, seq - 1).await?;
                }
                self.hub.publish_committed(vec![ChatMsg {
                    room: room.to_string(),
                    seq,
                    name,
                    msg,
                    id,
                    ts,
                    key,
                }]);
            }
            NodeMsg::Data { node, data } => {
                if node != self.node {
                    self.hub.publish_data(data);
                }
            }
            NodeMsg::DisconnectUser { sub, at } => {
                self.hub.users.sign_out(&sub, at);
            }
            NodeMsg::Typing { node, room, name } => {
                if node != self.node {
                    self.hub.remote_typing(&room, &name);
                }
            }
            NodeMsg::SessionInput {
                session,
                frames,
                leave,
                reply_to,
                request,
            } => {
                let _ = self.forwarded.send(Forwarded::Input {
                    session,
                    frames,
                    leave,
                    reply_to: ReplyTo {
                        node: reply_to,
                        request,
                    },
                });
            }
            NodeMsg::Poll {
                session,
                last,
                reply_to,
                request,
            } => {
                let _ = self.forwarded.send(Forwarded::Poll {
                    session,
                    last,
                    reply_to: ReplyTo {
                        node: reply_to,
                        request,
                    },
                });
            }
            NodeMsg::Answer {
                request,
                status,
                body,
            } => {
                let waiting = self
                    .pending_polls
                    .lock()
                    .expect("polls lock")
                    .remove(&request);
                if let Some(waiting) = waiting {
                    let _ = waiting.send((status, body));
                }
            }
        }
        Ok(())
    }

    /// This node's id; an HTTP session's secret starts with its node's.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Publishes `msg` on `node`'s own channel. `Ok(false)`: no node listens there (it is gone).
    async fn tell_node(&self, node: &str, msg: &NodeMsg) -> Result<bool, StoreError> {
        let json = serde_json::to_string(msg).expect("NodeMsg serializes");
        let receivers: u64 = self
            .conn
            .clone()
            .publish(keys::node_channel(node), json)
            .await
            .map_err(unavailable)?;
        Ok(receivers > 0)
    }

    /// Forwards frames POSTed here to the node holding their HTTP session, and waits up to
    /// `wait` for its answer (status and body). `Ok(None)`: that node is gone, or did not
    /// answer in time.
    pub async fn forward_input(
        &self,
        owner: &str,
        session: String,
        frames: Vec<String>,
        leave: bool,
        wait: Duration,
    ) -> Result<Option<(u16, String)>, StoreError> {
        self.ask(owner, wait, |reply_to, request| NodeMsg::SessionInput {
            session,
            frames,
            leave,
            reply_to,
            request,
        })
        .await
    }

    /// Forwards a poll to the node holding its HTTP session and waits up to `wait` for the
    /// answer. `Ok(None)`: that node is gone, or did not answer in time.
    pub async fn forward_poll(
        &self,
        owner: &str,
        session: String,
        last: u64,
        wait: Duration,
    ) -> Result<Option<(u16, String)>, StoreError> {
        self.ask(owner, wait, |reply_to, request| NodeMsg::Poll {
            session,
            last,
            reply_to,
            request,
        })
        .await
    }

    /// Sends `owner` the request `msg(reply_to, request)` makes and waits for its answer.
    /// `Ok(None)`: no node listens on `owner`'s channel (it is gone); no answer within `wait`
    /// is an error (the node is there but busy, or Redis lost the answer).
    async fn ask(
        &self,
        owner: &str,
        wait: Duration,
        msg: impl FnOnce(String, u64) -> NodeMsg,
    ) -> Result<Option<(u16, String)>, StoreError> {
        /// Takes the request out of the waiting list however the wait ends (an answer, a
        /// timeout, or the client's request being dropped).
        struct Waiting<'a>(&'a Cluster, u64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0
                    .pending_polls
                    .lock()
                    .expect("requests lock")
                    .remove(&self.1);
            }
        }
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending_polls
            .lock()
            .expect("requests lock")
            .insert(request, tx);
        let _waiting = Waiting(self, request);
        if !self
            .tell_node(owner, &msg(self.node.clone(), request))
            .await?
        {
            return Ok(None);
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(answer)) => Ok(Some(answer)),
            _ => Err(unavailable(
                "the node holding the session did not answer in time",
            )),
        }
    }

    /// Tells the other nodes of a `latest` or `volatile` data point (this node delivered it to
    /// its own members already).
    pub async fn publish_data(&self, data: shared::DataMsg) -> Result<(), StoreError> {
        let msg = NodeMsg::Data {
            node: self.node.clone(),
            data,
        };
        let json = serde_json::to_string(&msg).expect("a node message serializes");
        let _: u64 = self
            .conn
            .clone()
            .publish(DATA_CHANNEL, json)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Tells every node that the user `sub` was signed out at `at`: they close its
    /// connections and refuse its tokens issued until then.
    pub async fn disconnect_user(&self, sub: &str, at: u64) -> Result<(), StoreError> {
        let json = serde_json::to_string(&NodeMsg::DisconnectUser {
            sub: sub.to_owned(),
            at,
        })
        .expect("a node message serializes");
        let _: u64 = self
            .conn
            .clone()
            .publish(USERS_CHANNEL, json)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Answers a request another node forwarded here.
    pub async fn answer(&self, reply_to: &ReplyTo, status: u16, body: String) {
        let msg = NodeMsg::Answer {
            request: reply_to.request,
            status,
            body,
        };
        if let Err(e) = self.tell_node(&reply_to.node, &msg).await {
            tracing::warn!(error = %e, "a forwarded request could not be answered");
        }
    }

    /// Delivers a room's stored messages with `after < seq <= upto` (sessions skip those they
    /// have).
    async fn fill(&self, room: &RoomId, after: u64, upto: u64) -> Result<(), StoreError> {
        let mut range = Range::new(room.clone(), after, upto);
        while let Some(page) = range.next_page(self.store.as_ref(), CATCH_UP_PAGE).await? {
            for chunk in page.chunks(CATCH_UP_CHUNK) {
                self.await_headroom(room, chunk.len()).await;
                self.hub.publish_recovered(chunk.to_vec());
            }
        }
        Ok(())
    }

    /// Paces a catch-up to the room's sessions: a backlog of hundreds of messages would
    /// otherwise overflow every queue at once. A session that stays full past the deadline is
    /// left to the slow-consumer policy.
    async fn await_headroom(&self, room: &RoomId, wanted: usize) {
        let deadline = tokio::time::Instant::now() + CATCH_UP_PATIENCE;
        while self
            .hub
            .room_headroom(room)
            .is_some_and(|free| free < wanted)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn heartbeat_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            let ok = match self.heartbeat().await {
                Ok(()) => true,
                Err(e) => {
                    self.count_failure("heartbeat");
                    tracing::warn!(error = %e, "presence heartbeat failed");
                    false
                }
            };
            self.presence_ok.store(ok, Ordering::Relaxed);
        }
        // Leaving on purpose: the others drop this node's members at their next heartbeat
        // instead of waiting for the TTL.
        let mut conn = self.conn.clone();
        let left: redis::RedisResult<()> = redis::pipe()
            .del(keys::node(&self.node))
            .srem(NODES, &self.node)
            .query_async(&mut conn)
            .await;
        if let Err(e) = left {
            // The entry expires with its TTL; the others see this node's members leave late.
            self.failed("leave", &e);
        }
    }

    /// Logs and counts a failed Redis request that nothing waits for.
    fn failed(&self, what: &'static str, e: &redis::RedisError) {
        self.count_failure(what);
        tracing::warn!(op = what, error = %e, "Redis request failed");
    }

    /// Counts a failed backplane operation (`switchboard_backplane_errors_total{op}`).
    fn count_failure(&self, what: &'static str) {
        self.hub
            .metrics()
            .backplane_errors
            .get_or_create(&op(what))
            .inc();
    }

    /// Publishes this node's members, refreshes its names, and reads everyone else's members.
    async fn heartbeat(&self) -> Result<(), StoreError> {
        let names = self.hub.local_names();
        let mut mine = NodeMembers::new();
        for (room, name, _, connections) in &names {
            mine.entry(room.clone())
                .or_default()
                .insert(name.clone(), *connections);
        }
        let ttl_ms = self.ttl.as_millis() as u64;
        let mut conn = self.conn.clone();
        let payload = serde_json::to_string(&mine).map_err(unavailable)?;
        let (epoch, nodes): (String, Vec<String>) = with_epoch(&mut redis::pipe())
            .cmd("SET")
            .arg(keys::node(&self.node))
            .arg(payload)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .sadd(NODES, &self.node)
            .ignore()
            .smembers(NODES)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        self.store.note_epoch(epoch);
        if !names.is_empty() {
            let mut claim = self.claim.prepare_invoke();
            claim.arg(ttl_ms);
            for (room, name, identity, _) in &names {
                claim
                    .key(keys::name(room, name))
                    .arg(identity.key(&self.node));
            }
            let taken: u32 = claim.invoke_async(&mut conn).await.map_err(unavailable)?;
            if taken > 0 {
                tracing::warn!(taken, "names held here are held by others in Redis");
            }
        }
        let others: Vec<&String> = nodes.iter().filter(|n| **n != self.node).collect();
        let mut remote = RemoteMembers::new();
        if !others.is_empty() {
            let keys: Vec<String> = others.iter().map(|n| keys::node(n)).collect();
            let entries: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let mut gone = Vec::new();
            for (node, entry) in others.iter().zip(entries) {
                let Some(entry) = entry else {
                    gone.push(node.as_str());
                    continue;
                };
                // Rooms and names are validated as they are read (their serde is `try_from`).
                let rooms: NodeMembers = match serde_json::from_str(&entry) {
                    Ok(rooms) => rooms,
                    Err(e) => {
                        self.count_failure("decode");
                        tracing::warn!(node = %node, error = %e, "undecodable presence entry");
                        continue;
                    }
                };
                for (room, members) in rooms {
                    let merged = remote.entry(room).or_default();
                    for (name, connections) in members {
                        *merged.entry(name).or_default() += connections;
                    }
                }
            }
            if !gone.is_empty() {
                let _: () = conn.srem(NODES, gone).await.map_err(unavailable)?;
            }
        }
        self.hub.set_remote(remote);
        Ok(())
    }

    async fn event_loop(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<Event>,
        shutdown: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                event = events.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
                () = shutdown.cancelled() => return,
            };
            let mut conn = self.conn.clone();
            let (what, result): (_, redis::RedisResult<()>) = match event {
                Event::Released { room, name, holder } => (
                    "release",
                    self.release
                        .key(keys::name(&room, &name))
                        .arg(holder)
                        .invoke_async(&mut conn)
                        .await
                        .map(|_: u32| ()),
                ),
                Event::Typing { room, name } => {
                    let notice = NodeMsg::Typing {
                        node: self.node.clone(),
                        room,
                        name,
                    };
                    let json = serde_json::to_string(&notice).expect("NodeMsg serializes");
                    ("typing", conn.publish(TYPING_CHANNEL, json).await)
                }
            };
            if let Err(e) = result {
                // A name not released expires with its TTL; a lost typing notice is harmless.
                self.failed(what, &e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_messages_are_typed_json_and_the_append_scripts_form_decodes() {
        // What the Lua script's `cjson.encode` gives: escaped slashes, any key order, no `id`
        // for a message without one.
        let from_lua = r#"{"msg":"a\/b \u00e9 \n two lines","seq":7,"name":"ada","ts":1764045275123,"type":"chat","room":"hall"}"#;
        assert_eq!(
            serde_json::from_str::<NodeMsg>(from_lua).unwrap(),
            NodeMsg::Chat {
                room: RoomId::parse("hall").unwrap(),
                seq: 7,
                ts: 1_764_045_275_123,
                id: None,
                name: "ada".into(),
                msg: "a/b é \n two lines".into(),
                key: None,
            }
        );
        let typing = NodeMsg::Typing {
            node: "n1".into(),
            room: RoomId::parse("hall").unwrap(),
            name: Username::parse("bob", 32).unwrap(),
        };
        let json = serde_json::to_string(&typing).unwrap();
        assert_eq!(
            json,
            r#"{"type":"typing","node":"n1","room":"hall","name":"bob"}"#
        );
        assert_eq!(serde_json::from_str::<NodeMsg>(&json).unwrap(), typing);
        // An invalid room or name from another node is refused, not taken in.
        let forged = r#"{"type":"typing","node":"n2","room":"Not A Room","name":"eve"}"#;
        assert!(serde_json::from_str::<NodeMsg>(forged).is_err());
    }
}
