//! Test harness: [`spawn_app`] starts the real server on `127.0.0.1:0` and returns a [`TestApp`];
//! [`WsClient`] is a typed WebSocket client with timeouts. [`Endpoint`] is what a client needs
//! of any server (in this process or another); [`process`] starts the server binary and
//! `redis-server` as processes.

pub mod http;
pub mod process;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use server::{Application, Settings};
use shared::{ClientMsg, ServerMsg, Welcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// How long a test waits for a frame before failing.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits for a connection (TCP and WebSocket handshake) before failing.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A server's address, and how clients talk to it.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub addr: SocketAddr,
}

pub struct TestApp {
    endpoint: Endpoint,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
    /// The server's SQLite database file.
    db: std::path::PathBuf,
    /// Holds the static directory and the database for the server's life.
    _static_dir: tempfile::TempDir,
}

/// A process's resident memory, in KiB (`/proc/<pid>/status`). Figures about the server come
/// from a server running as its own process ([`process::ServerProcess::rss_kib`]), never from
/// the test process, which holds the clients too.
pub fn rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// `pick(msg)`; an `error` or `nack` frame that `pick` does not take fails the test: a wait
/// never skips a refusal in silence.
pub fn pick_or_refuse<T>(
    msg: ServerMsg,
    pick: &mut impl FnMut(ServerMsg) -> Option<T>,
) -> Option<T> {
    let refusal =
        matches!(msg, ServerMsg::Error { .. } | ServerMsg::Nack { .. }).then(|| format!("{msg:?}"));
    let found = pick(msg);
    if let (None, Some(refusal)) = (&found, refusal) {
        panic!("unexpected refusal while waiting: {refusal}");
    }
    found
}

/// Starts a server with default settings on an ephemeral port.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server with settings adjusted by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let static_dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::with_bind("127.0.0.1:0".parse().unwrap());
    settings.static_dir = static_dir.path().to_owned();
    settings.db = static_dir.path().join("switchboard.db");
    configure(&mut settings);
    let db = settings.db.clone();
    let app = Application::build(settings).await.expect("server starts");
    let addr = app.local_addr();
    let shutdown = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        endpoint: Endpoint { addr },
        shutdown,
        handle,
        db,
        _static_dir: static_dir,
    }
}

impl std::ops::Deref for TestApp {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Endpoint {
    pub fn url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    /// Joins `room` as `name` with the live feed off; returns the client and its welcome.
    pub async fn join(&self, name: &str, room: &str) -> (WsClient, Welcome) {
        let mut client = self
            .connect(&format!("/ws?name={name}&room={room}&feed=0"))
            .await
            .expect("connects");
        let welcome = client.welcome().await;
        (client, welcome)
    }

    /// Opens a protocol v3 connection (`Sec-WebSocket-Protocol: switchboard.v3`) with this
    /// query (`?name=…&token=…`); returns the client and its `hello`.
    pub async fn connect_v3(&self, query: &str) -> (WsClient, shared::Hello) {
        self.connect_v3_with_window(query, None).await
    }

    /// [`connect_v3`](Self::connect_v3) over a socket whose receive buffer is fixed at
    /// [`SMALL_WINDOW`] (no autotuning): when this client stops reading, the server's writes
    /// stall after about that much, whatever the machine's `tcp_rmem` (up to 32 MiB here,
    /// enough to swallow a whole replay).
    pub async fn connect_v3_small_window(&self, query: &str) -> (WsClient, shared::Hello) {
        self.connect_v3_with_window(query, Some(SMALL_WINDOW)).await
    }

    async fn connect_v3_with_window(
        &self,
        query: &str,
        window: Option<u32>,
    ) -> (WsClient, shared::Hello) {
        let mut request = self
            .url(&format!("/ws{query}"))
            .into_client_request()
            .unwrap();
        request.headers_mut().append(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(shared::SUBPROTOCOL_V3),
        );
        let mut client = self
            .open_with_window(request, window)
            .await
            .expect("connects with switchboard.v3");
        let hello = client.hello().await;
        (client, hello)
    }
}

/// The receive buffer of [`Endpoint::connect_v3_small_window`].
pub const SMALL_WINDOW: u32 = 64 * 1024;

impl WsClient {
    /// Reads the `hello` a v3 connection starts with.
    async fn hello(&mut self) -> shared::Hello {
        match self.recv().await {
            ServerMsg::Hello(hello) => hello,
            other => panic!("expected hello, got {other:?}"),
        }
    }
}

impl Endpoint {
    /// Joins `room` as `name`, holding the name with `token`, resuming after `position`.
    pub async fn join_as(
        &self,
        name: &str,
        room: &str,
        token: &str,
        position: Option<(&str, u64)>,
    ) -> (WsClient, Welcome) {
        let mut query = format!("/ws?name={name}&room={room}&feed=0&token={token}");
        if let Some((epoch, seq)) = position {
            query.push_str(&format!("&epoch={epoch}&seq={seq}"));
        }
        let mut client = self.connect(&query).await.expect("connects");
        let welcome = client.welcome().await;
        (client, welcome)
    }

    /// A page of `GET /api/rooms/{room}/messages`.
    pub async fn history(&self, room: &str, query: &str) -> shared::HistoryPage {
        let (status, _, body) = self
            .http_get(&format!("/api/rooms/{room}/messages?{query}"))
            .await
            .expect("history");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("history JSON")
    }

    /// Opens a WebSocket to `path_and_query` with no Origin header.
    pub async fn connect(&self, path_and_query: &str) -> Result<WsClient, tungstenite::Error> {
        self.connect_with_origin(path_and_query, None).await
    }

    pub async fn connect_with_origin(
        &self,
        path_and_query: &str,
        origin: Option<&str>,
    ) -> Result<WsClient, tungstenite::Error> {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
        self.connect_with_headers(path_and_query, &headers).await
    }

    /// Opens a WebSocket with extra request headers (`Origin`, `X-Forwarded-For`, …). A
    /// connection to `/ws` asks for the typed protocol v2 (`switchboard.v2`) unless the headers
    /// name another subprotocol.
    pub async fn connect_with_headers(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<WsClient, tungstenite::Error> {
        let names_one = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-protocol"));
        let mut request = if names_one {
            self.url(path_and_query).into_client_request()?
        } else {
            v2_request(&self.url(path_and_query))
        };
        for (name, value) in headers {
            request.headers_mut().append(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        self.open(request).await
    }

    /// Opens a WebSocket as a tutorial page does: no subprotocol (a plain client).
    pub async fn connect_plain(
        &self,
        path_and_query: &str,
    ) -> Result<WsClient, tungstenite::Error> {
        let request = self.url(path_and_query).into_client_request()?;
        self.open(request).await
    }

    async fn open(
        &self,
        request: tungstenite::handshake::client::Request,
    ) -> Result<WsClient, tungstenite::Error> {
        self.open_with_window(request, None).await
    }

    /// Connects to this endpoint (with the socket's receive buffer fixed at `window`, if given)
    /// and makes the WebSocket handshake.
    async fn open_with_window(
        &self,
        request: tungstenite::handshake::client::Request,
        window: Option<u32>,
    ) -> Result<WsClient, tungstenite::Error> {
        let socket = if self.addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(window) = window {
            socket.set_recv_buffer_size(window)?;
        }
        let handshake = async {
            let tcp = socket.connect(self.addr).await?;
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp)).await
        };
        let (stream, _) = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .unwrap_or_else(|_| panic!("no WebSocket handshake within {CONNECT_TIMEOUT:?}"))?;
        Ok(WsClient { stream })
    }

    /// Sends a raw HTTP/1.1 GET and returns (status, head, body).
    pub async fn http_get(&self, path: &str) -> anyhow::Result<(u16, String, String)> {
        self.http_get_with(path, &[]).await
    }

    /// Sends a raw HTTP/1.1 GET with extra headers and returns (status, head, body).
    pub async fn http_get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, String, String)> {
        let mut tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .context("TCP connect timed out")??;
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{extra}Connection: close\r\n\r\n",
            self.addr
        );
        tcp.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        tokio::time::timeout(RECV_TIMEOUT, tcp.read_to_end(&mut raw)).await??;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
        let status = head.split(' ').nth(1).context("no status")?.parse()?;
        Ok((status, head.to_owned(), body.to_owned()))
    }
}

impl TestApp {
    /// The server's SQLite database file.
    pub fn db_path(&self) -> &std::path::Path {
        &self.db
    }

    /// Stops the server as SIGTERM would and waits for it to finish.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("server stops within its grace period")
            .expect("server task")
            .expect("server result");
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Makes every message insert in the SQLite file at `db` take milliseconds (a trigger that
/// counts a million-row join), so that messages stay in flight for a while.
pub fn slow_commits(db: &std::path::Path) {
    let mut slow = String::from("CREATE TABLE slow (x); INSERT INTO slow VALUES (1);");
    for _ in 0..10 {
        slow.push_str("INSERT INTO slow SELECT x FROM slow;"); // 1,024 rows
    }
    slow.push_str(
        "CREATE TRIGGER crawl BEFORE INSERT ON messages
         BEGIN SELECT count(*) FROM slow a, slow b; END;",
    );
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(&slow)
        .unwrap();
}

/// How many messages `room` holds in the SQLite file at `db`, once the count has stayed the
/// same for a second: the store's writer goes on committing what it was handed after the
/// session that handed it ended.
pub async fn settled_count(db: &std::path::Path, room: &str) -> usize {
    let count = || -> usize {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM messages WHERE room = ?1",
                [room],
                |row| row.get(0),
            )
            .unwrap()
    };
    let mut stored = count();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = count();
        if now == stored {
            return stored;
        }
        stored = now;
    }
}

/// Each client in turn sends its text with the same message `id` and waits for its ack; returns
/// the acknowledged seqs, in order.
pub async fn send_each_with_id<const N: usize>(
    senders: [(&mut WsClient, &str); N],
    id: &str,
) -> Vec<u64> {
    let mut acked = Vec::with_capacity(N);
    for (client, text) in senders {
        client.chat_with_id(text, id).await;
        acked.push(client.ack(id).await);
    }
    acked
}

/// The upgrade request for `url`, asking for the typed protocol v2 when it is the chat socket
/// (`/ws`); without a subprotocol a connection there is a plain tutorial client.
pub fn v2_request(url: &str) -> tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().expect("a WebSocket URL");
    if request.uri().path() == "/ws" {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(shared::SUBPROTOCOL_V2),
        );
    }
    request
}

/// The code of a close frame; a connection that ended without one fails the test.
fn close_frame_code(frame: Option<CloseFrame>) -> u16 {
    match frame {
        Some(frame) => frame.code.into(),
        None => panic!("the connection ended without a close frame"),
    }
}

/// A typed WebSocket client.
pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a client saw next.
#[derive(Debug)]
pub enum Event {
    Msg(ServerMsg),
    Close(Option<CloseFrame>),
    /// A frame that is not a JSON text (the echo endpoint).
    Other(Message),
}

impl WsClient {
    pub async fn send(&mut self, msg: &ClientMsg) {
        let text = serde_json::to_string(msg).unwrap();
        self.send_text(&text).await;
    }

    /// Sends a protocol v3 command.
    pub async fn command(&mut self, command: &shared::Command) {
        let text = serde_json::to_string(command).unwrap();
        self.send_text(&text).await;
    }

    /// v3: joins `room` (resuming after `position`) and returns its `subscribed` answer.
    pub async fn join_room(
        &mut self,
        room: &str,
        position: Option<(&str, u64)>,
    ) -> shared::Subscribed {
        self.command(&shared::Command::Join {
            room: shared::RoomId::parse(room).unwrap(),
            epoch: position.map(|(epoch, _)| epoch.to_owned()),
            seq: position.map(|(_, seq)| seq),
        })
        .await;
        match self.recv().await {
            ServerMsg::Subscribed(subscribed) => subscribed,
            other => panic!("expected subscribed to {room}, got {other:?}"),
        }
    }

    /// v3: a chat message with an id to a joined room.
    pub async fn chat_in(&mut self, room: &str, text: &str, id: &str) {
        self.command(&shared::Command::Chat {
            room: shared::RoomId::parse(room).unwrap(),
            msg: text.to_owned(),
            id: Some(id.to_owned()),
        })
        .await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    pub async fn chat(&mut self, text: &str) {
        self.send(&ClientMsg::Chat {
            msg: text.to_owned(),
            id: None,
        })
        .await;
    }

    /// Sends a chat message with a client id (the server acknowledges it).
    pub async fn chat_with_id(&mut self, text: &str, id: &str) {
        self.send(&ClientMsg::Chat {
            msg: text.to_owned(),
            id: Some(id.to_owned()),
        })
        .await;
    }

    /// Sends `count` chat messages (`"<n> <padding>"`, ids `"<n>"`) and waits for each one's
    /// ack, a batch at a time: the room's history is filled (every message committed) without
    /// this client ever falling behind its own echoes and being dropped as a slow consumer.
    pub async fn fill_history(&mut self, count: usize, padding: &str) {
        // Two frames a message (echo and ack): 32 queued at most, within any outbound queue the
        // tests use.
        const BATCH: usize = 16;
        for start in (0..count).step_by(BATCH) {
            let end = (start + BATCH).min(count);
            for n in start..end {
                self.chat_with_id(&format!("{n} {padding}"), &n.to_string())
                    .await;
            }
            for n in start..end {
                self.ack(&n.to_string()).await;
            }
        }
    }

    /// Skips frames until the ack for `id`; returns its seq.
    pub async fn ack(&mut self, id: &str) -> u64 {
        self.recv_until(|m| match m {
            ServerMsg::Ack { id: got, seq, .. } if got == id => Some(seq),
            _ => None,
        })
        .await
    }

    /// The next event, skipping pings/pongs. Fails the test after [`RECV_TIMEOUT`].
    pub async fn next_event(&mut self) -> anyhow::Result<Event> {
        // One deadline for the event: the server's pings do not extend it.
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .context("timed out waiting for a frame")?;
            return Ok(match frame {
                None => Event::Close(None),
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => Event::Close(None),
                Some(Err(e)) => bail!("websocket error: {e}"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => Event::Close(frame),
                Some(Ok(Message::Text(text))) => match serde_json::from_str(&text) {
                    Ok(msg) => Event::Msg(msg),
                    Err(_) => Event::Other(Message::Text(text)),
                },
                Some(Ok(other)) => Event::Other(other),
            });
        }
    }

    /// The next text frame, raw.
    pub async fn next_text(&mut self) -> String {
        loop {
            let frame = tokio::time::timeout(RECV_TIMEOUT, self.stream.next())
                .await
                .expect("timed out waiting for a frame");
            match frame {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next server message; panics on close or timeout.
    pub async fn recv(&mut self) -> ServerMsg {
        match self.next_event().await.expect("event") {
            Event::Msg(msg) => msg,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The next `n` chat messages, skipping presence, typing, acks and the feed. An `error`
    /// or `nack` frame on the way fails the test: it is never skipped in silence.
    pub async fn chats(&mut self, n: usize) -> Vec<shared::ChatMsg> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.recv().await {
                ServerMsg::Chat(c) => out.push(c),
                refused @ (ServerMsg::Error { .. } | ServerMsg::Nack { .. }) => {
                    panic!("expected chat messages, got {refused:?}")
                }
                _ => {}
            }
        }
        out
    }

    /// Skips messages until one matches `pick`. An `error` or `nack` frame that `pick` does not
    /// take fails the test: it is never skipped in silence.
    pub async fn recv_until<T>(&mut self, mut pick: impl FnMut(ServerMsg) -> Option<T>) -> T {
        loop {
            if let Some(found) = pick_or_refuse(self.recv().await, &mut pick) {
                return found;
            }
        }
    }

    pub async fn welcome(&mut self) -> Welcome {
        match self.recv().await {
            ServerMsg::Welcome(w) => w,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// Reads out a backlog: counts the chat messages until the server's close frame, and
    /// returns them with its code. A connection that ends without a close frame, a timeout or a
    /// socket error fails the test: none of them is a close code.
    pub async fn drain_to_close(&mut self) -> (usize, u16) {
        let mut chats = 0;
        loop {
            match self.next_event().await {
                Ok(Event::Msg(ServerMsg::Chat(_))) => chats += 1,
                Ok(Event::Close(frame)) => return (chats, close_frame_code(frame)),
                Ok(_) => {}
                Err(e) => panic!("no close frame after {chats} chat messages: {e}"),
            }
        }
    }

    /// Reads until the server's close frame and returns its code. Frames before it are
    /// skipped; a connection that ends without a close frame, a timeout or a socket error
    /// fails the test.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            match self.next_event().await {
                Ok(Event::Close(frame)) => return close_frame_code(frame),
                Ok(_) => {}
                Err(e) => panic!("no close frame: {e}"),
            }
        }
    }
}
