//! Protocol v3 (`switchboard.v3`): one connection, many rooms.
//!
//! The connection says who it is once (`?name=`, `?token=`) and gets [`ServerMsg::Hello`].
//! Each `join` registers one subscription in the hub (a hub session of its own, sharing the
//! connection's queue and kick), answered with [`ServerMsg::Subscribed`] (the room's epoch,
//! resume outcome and members), then that room's replay, then its live frames; every frame the
//! hub sends names its room. Acks, dedup, resume and rate limits work per room exactly as in
//! v2, because they are the same code (the reader's `chat`, `charge`, `replay_range`).

use std::collections::BTreeMap;

use shared::{Command, Hello, PROTOCOL_V3, SUBPROTOCOL_V3, Subscribed};

use super::*;

/// The protocol an upgrade settled on (from the `Sec-WebSocket-Protocol` the client offered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negotiated {
    /// No subprotocol: a plain client (a tutorial page). One room from the query; it gets only
    /// frames it can display (chat messages, and notices shaped like them) and may send plain
    /// text.
    Plain,
    /// `switchboard.v2`: the typed protocol with one room from the query (the stock client
    /// until it moves to v3).
    V2,
    /// `switchboard.v3`.
    V3,
    /// Another `switchboard.v<N>`: answered with `reload` and close 4426.
    Unsupported(String),
}

impl Negotiated {
    /// Picks from the subprotocols a client offered; returns the one to echo, if any.
    pub fn from_offered<'a>(offered: impl IntoIterator<Item = &'a str>) -> (Self, Option<String>) {
        let ours: Vec<&str> = offered
            .into_iter()
            .map(str::trim)
            .filter(|p| p.starts_with(shared::SUBPROTOCOL_PREFIX))
            .collect();
        if ours.contains(&SUBPROTOCOL_V3) {
            (Self::V3, Some(SUBPROTOCOL_V3.to_owned()))
        } else if ours.contains(&shared::SUBPROTOCOL_V2) {
            (Self::V2, Some(shared::SUBPROTOCOL_V2.to_owned()))
        } else if let Some(other) = ours.first() {
            (
                Self::Unsupported((*other).to_owned()),
                Some((*other).to_owned()),
            )
        } else {
            (Self::Plain, None)
        }
    }
}

/// The rooms a v3 connection has joined.
#[derive(Debug)]
pub(super) struct Rooms {
    /// Room → the hub subscription that stands for this connection in it.
    joined: BTreeMap<RoomId, SessionId>,
    identity: Identity,
    name: Option<Username>,
    /// Whether the connection wants the live feed; the hub sends it through one subscription.
    feed: bool,
    feed_sub: Option<SessionId>,
}

/// A v3 connection from `Hello` to its end; returns how it ended.
pub(super) async fn run<F: Fn(ErrorCode, String, Option<&RoomId>)>(
    p: &SessionParams,
    session: SessionId,
    stream: &mut IncomingStream<'_>,
    tx: &outbox::Sender<Outbound>,
    kick: &Kick,
    send_error: &F,
) -> End {
    if let Negotiated::Unsupported(offered) = &p.protocol {
        let reload = ServerMsg::Reload {
            protocol: PROTOCOL_V3,
            reason: format!(
                "this server speaks {SUBPROTOCOL_V3}, not {offered}: reload the page for the \
                 current client"
            ),
        };
        queue_own(tx, kick, &p.metrics, &reload);
        kick.kick(close_code::PROTOCOL_VERSION, "protocol version", true);
        return End::Closing;
    }
    let (name, identity) = match identify(p, session) {
        Ok(who) => who,
        Err((code, close, reason)) => {
            send_error(code, reason, None);
            kick.kick(close, code_reason(code), true);
            return End::Closing;
        }
    };
    // In a block: a `hello` living to the end of the function would be kept in the session's
    // state for as long as the connection is open.
    {
        let hello = ServerMsg::Hello(Hello {
            protocol: PROTOCOL_V3,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            session,
            name: name.as_ref().map(ToString::to_string),
            peer_addr: p.peer.to_string(),
            limits: p.settings.limits(),
            max_rooms: p.settings.max_rooms_per_connection,
        });
        queue_own(tx, kick, &p.metrics, &hello);
    }
    let speaker = Speaker {
        key: identity.key(p.hub.instance()),
        name: name.clone(),
        home: None,
    };
    let rooms = Rooms {
        joined: BTreeMap::new(),
        identity,
        name,
        feed: p.feed,
        feed_sub: None,
    };
    let mut reader = Reader::new(p, session, kick, send_error, speaker, Some(rooms));
    info!(protocol = 3, "connected");
    let end = reader.read_loop(stream, tx).await;
    let joined = reader.rooms.take().map(|r| r.joined).unwrap_or_default();
    for sub in joined.into_values() {
        p.hub.unregister(sub, end == End::Left);
    }
    info!(?end, "disconnected");
    end
}

impl<F: Fn(ErrorCode, String, Option<&RoomId>)> Reader<'_, F> {
    fn rooms(&mut self) -> &mut Rooms {
        self.rooms.as_mut().expect("a v3 reader has rooms")
    }

    /// Decodes a v3 command, charges it to its bucket, and carries it out. Its errors name its
    /// room while it is handled, and only then.
    pub(super) async fn on_command(&mut self, text: &str, tx: &outbox::Sender<Outbound>) {
        let command = Command::decode(text);
        self.about_room = command.as_ref().ok().and_then(Command::room).cloned();
        self.handle_command(command, tx).await;
        self.about_room = None;
    }

    async fn handle_command(
        &mut self,
        command: Result<Command, shared::DecodeError>,
        tx: &outbox::Sender<Outbound>,
    ) {
        self.metrics
            .frames_in
            .get_or_create(&kind(match &command {
                Ok(Command::Join { .. }) => "join",
                Ok(Command::Leave { .. }) => "leave",
                Ok(Command::Chat { .. }) => "chat",
                Ok(Command::Typing { .. }) => "typing",
                Ok(Command::Feed { .. }) => "feed",
                Ok(Command::Refresh { .. }) => "refresh",
                Ok(Command::Members { .. }) => "members",
                Err(_) => "invalid",
            }))
            .inc();
        // Joins and leaves are charged in `join` and `leave`, once it is known what they do.
        let bucket = match &command {
            Ok(
                Command::Typing { .. }
                | Command::Feed { .. }
                | Command::Refresh { .. }
                | Command::Members { .. },
            ) => Some(Bucket::Control),
            Ok(Command::Join { .. } | Command::Leave { .. }) => None,
            _ => Some(Bucket::Messages),
        };
        if let Some(bucket) = bucket
            && !self.charge_or_reject(bucket)
        {
            return;
        }
        match command {
            Err(e) => self.reject(e.code(), e.to_string()),
            Ok(Command::Join { room, epoch, seq }) => {
                let position = epoch.map(|epoch| (epoch, seq.unwrap_or(0)));
                // Boxed: a join's state (store and Redis calls) would otherwise enlarge every
                // connection's reader for its whole life.
                Box::pin(self.join(room, position, tx)).await;
            }
            Ok(Command::Leave { room }) => self.leave(&room, tx),
            Ok(Command::Chat { room, msg, id }) => {
                if self.subscription(&room).is_some() {
                    self.chat(room, &msg, id).await;
                }
            }
            Ok(Command::Typing { room }) => {
                if let Some(sub) = self.subscription(&room) {
                    self.hub.typing(sub);
                }
            }
            Ok(Command::Feed { enabled }) => {
                self.rooms().feed = enabled;
                self.place_feed();
            }
            Ok(Command::Refresh { token }) => self.refresh(&token, tx),
            Ok(Command::Members { room, after }) => {
                if self.subscription(&room).is_some() {
                    let (members, online, next) = self.hub.members_page(&room, after.as_deref());
                    let page = ServerMsg::Members {
                        room: room.to_string(),
                        members,
                        online,
                        next,
                    };
                    queue_own(tx, self.kick, self.metrics, &page);
                }
            }
        }
    }

    /// The subscription for a joined room; a typed `not_joined` error otherwise.
    fn subscription(&mut self, room: &RoomId) -> Option<SessionId> {
        let sub = self.rooms().joined.get(room).copied();
        if sub.is_none() {
            self.reject(
                ErrorCode::NotJoined,
                format!("join room \"{room}\" before sending to it"),
            );
        }
        sub
    }

    fn refuse_join(
        &self,
        room: &RoomId,
        code: ErrorCode,
        reason: String,
        tx: &outbox::Sender<Outbound>,
    ) {
        debug!(?code, %reason, room = %room, "join refused");
        let refused = ServerMsg::JoinRefused {
            room: room.to_string(),
            code,
            reason,
        };
        queue_own(tx, self.kick, self.metrics, &refused);
    }

    async fn join(
        &mut self,
        room: RoomId,
        position: Option<(String, u64)>,
        tx: &outbox::Sender<Outbound>,
    ) {
        let max = self.settings.max_rooms_per_connection;
        let allowed = self.allowed(&room);
        let rooms = self.rooms();
        // A join refused outright costs a control token, so a client cannot loop refusals
        // for free; one that passes the room checks is charged to the joins' own bucket.
        let refusal = if rooms.joined.contains_key(&room) {
            Some((
                ErrorCode::AlreadyJoined,
                format!("room \"{room}\" is joined already"),
            ))
        } else if !allowed {
            Some((
                ErrorCode::RoomForbidden,
                format!("your token does not allow room \"{room}\" (its `rooms` claim)"),
            ))
        } else if rooms.joined.len() >= max {
            Some((
                ErrorCode::TooManyRooms,
                format!(
                    "a connection may join at most {max} rooms (--max-rooms-per-connection); leave one first"
                ),
            ))
        } else {
            None
        };
        if let Some((code, reason)) = refusal {
            if self.charge_or_reject(Bucket::Control) {
                self.refuse_join(&room, code, reason, tx);
            }
            return;
        }
        // Over the join rate: refused as a join, so the client knows which room to ask for
        // again (and a strike towards 1008, as any frame over its rate).
        match self.charge(Bucket::Joins) {
            Ok(()) => {}
            Err(Some(reason)) => {
                return self.refuse_join(&room, ErrorCode::RateLimited, reason, tx);
            }
            Err(None) => return,
        }
        let rooms = self.rooms();
        let (identity, name) = (rooms.identity.clone(), rooms.name.clone());
        let name_taken =
            |name: &Username| format!("the name \"{name}\" is already in use in room \"{room}\"");
        if let (Some(cluster), Some(wanted)) = (self.cluster, &name)
            && cluster.claim_name(&room, wanted, &identity).await.is_err()
        {
            return self.refuse_join(&room, ErrorCode::NameTaken, name_taken(wanted), tx);
        }
        let sub = self.hub.next_session_id();
        let registration = Registration {
            connection: self.session,
            room: room.clone(),
            name: name.clone(),
            identity: identity.clone(),
            tx: tx.clone(),
            kick: self.kick.clone(),
            feed: false,
            batches: true,
        };
        let snapshot = match self.hub.register(sub, registration) {
            Ok(snapshot) => snapshot,
            Err(NameTaken) => {
                // Redis may have granted the name (it had lost track of the holder here):
                // give that claim back.
                if let (Some(cluster), Some(wanted)) = (self.cluster, &name) {
                    cluster.release_name(&room, wanted, &identity).await;
                }
                let reason = name.as_ref().map(name_taken).unwrap_or_default();
                return self.refuse_join(&room, ErrorCode::NameTaken, reason, tx);
            }
        };
        self.rooms().joined.insert(room.clone(), sub);
        let subscribed = self
            .subscribe(
                sub,
                &room,
                position,
                (snapshot.members, snapshot.online),
                tx,
            )
            .await;
        if let Err((subscribed, e)) = subscribed {
            self.rooms().joined.remove(&room);
            // Not a member after all: the name goes at once, not after the grace period.
            self.hub.unregister(sub, true);
            self.metrics.store_error(e.kind());
            if !subscribed {
                return self.refuse_join(&room, ErrorCode::StoreUnavailable, e.to_string(), tx);
            }
            // Part of the replay went out already: the room is left, and the client told why.
            self.reject(ErrorCode::StoreUnavailable, format!("room \"{room}\": {e}"));
            let left = ServerMsg::Unsubscribed {
                room: room.to_string(),
            };
            return queue_own(tx, self.kick, self.metrics, &left);
        }
        info!(room = %room, "joined");
        self.place_feed();
    }

    /// Sends `subscribed`, then exactly what the client missed in the room, then lets the
    /// room's live frames through (the hub held them back meanwhile). A failure says whether
    /// `subscribed` had gone out.
    async fn subscribe(
        &self,
        sub: SessionId,
        room: &RoomId,
        position: Option<(String, u64)>,
        (members, online): (Vec<shared::Member>, u32),
        tx: &outbox::Sender<Outbound>,
    ) -> Result<(), (bool, StoreError)> {
        let bounds = self.store.bounds(room).await.map_err(|e| (false, e))?;
        let epoch = self.store.epoch();
        let (resume, after) = resume_plan(
            &epoch,
            position.as_ref(),
            bounds,
            self.settings.history_on_join,
        );
        let subscribed = ServerMsg::Subscribed(Subscribed {
            room: room.to_string(),
            epoch,
            resume,
            members,
            online,
        });
        if tx.send(Outbound::Frame(encode(&subscribed))).await.is_err() {
            return Ok(());
        }
        let dead_after = self.settings.heartbeat_interval() + self.settings.heartbeat_timeout();
        let stall = (self.kick, self.metrics, dead_after);
        if replay_range(self.store, room, (after, bounds.last), tx, stall)
            .await
            .map_err(|e| (true, e))?
        {
            self.hub.go_live(sub, bounds.last);
            self.send_latest(room, tx).await;
        }
        Ok(())
    }

    /// Sends the latest value of each of the room's data keys (`latest` publications). Live
    /// ones may overtake them: a client keeps the newest by `ts`. A store that cannot say is
    /// logged; the join stands.
    async fn send_latest(&self, room: &RoomId, tx: &outbox::Sender<Outbound>) {
        let latest = match self.store.latest(room).await {
            Ok(latest) => latest,
            Err(e) => {
                self.metrics.store_error(e.kind());
                tracing::warn!(room = %room, error = %e, "latest data values not sent");
                return;
            }
        };
        for l in latest {
            let data = ServerMsg::Data(shared::DataMsg {
                room: room.to_string(),
                key: l.key,
                data: shared::RawJson::from_trusted(l.data),
                delivery: shared::Delivery::Latest,
                seq: None,
                ts: l.ts,
            });
            // As a replay: half the queue stays free for live frames and the connection's own
            // replies (a room with many keys must not overflow it), and a client that takes
            // nothing for the heartbeat deadline is a slow consumer.
            let deadline = self.settings.heartbeat_interval() + self.settings.heartbeat_timeout();
            if !wait_for_room(tx, deadline).await {
                if !tx.is_closed() {
                    drop_slow_consumer(self.kick, self.metrics);
                }
                return;
            }
            let _ = tx.try_send(Outbound::Data(encode(&data)));
        }
    }

    fn leave(&mut self, room: &RoomId, tx: &outbox::Sender<Outbound>) {
        let Some(sub) = self.rooms().joined.remove(room) else {
            // Leaving a joined room is never limited (it only lightens the load); a leave
            // refused outright costs a control token, like a refused join.
            if !self.charge_or_reject(Bucket::Control) {
                return;
            }
            return self.reject(
                ErrorCode::NotJoined,
                format!("room \"{room}\" is not joined"),
            );
        };
        // A leave on purpose: the name is released at once.
        self.hub.unregister(sub, true);
        if self.rooms().feed_sub == Some(sub) {
            self.rooms().feed_sub = None;
            self.place_feed();
        }
        info!(room = %room, "left");
        let left = ServerMsg::Unsubscribed {
            room: room.to_string(),
        };
        queue_own(tx, self.kick, self.metrics, &left);
    }

    /// Leaves the joined rooms the connection's (refreshed) token no longer allows, telling
    /// the client why for each.
    pub(super) fn leave_forbidden_rooms(&mut self, tx: &outbox::Sender<Outbound>) {
        let joined = self.rooms.as_ref().map(|r| &r.joined);
        let forbidden: Vec<RoomId> = joined
            .into_iter()
            .flat_map(BTreeMap::keys)
            .filter(|room| !self.allowed(room))
            .cloned()
            .collect();
        for room in forbidden {
            self.about_room = Some(room.clone());
            self.reject(
                ErrorCode::RoomForbidden,
                format!("your new token does not allow room \"{room}\": it was left"),
            );
            self.about_room = None;
            self.leave(&room, tx);
        }
    }

    /// The hub sends the live feed through one subscription: the connection gets it once,
    /// whatever the number of rooms.
    fn place_feed(&mut self) {
        let hub = self.hub;
        let rooms = self.rooms();
        match (rooms.feed, rooms.feed_sub) {
            (true, None) => {
                if let Some(&sub) = rooms.joined.values().next() {
                    hub.set_feed(sub, true);
                    rooms.feed_sub = Some(sub);
                }
            }
            (false, Some(sub)) => {
                hub.set_feed(sub, false);
                rooms.feed_sub = None;
            }
            _ => {}
        }
    }
}
