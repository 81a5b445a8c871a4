//! Clients of the HTTP transports, over raw HTTP/1.1 as a browser's `EventSource` and `fetch`
//! would speak it: [`SseClient`] reads `/v3/sse` (chunked, event by event), [`PollClient`]
//! long-polls `/v3/poll`, and both send with `POST /v3/send`.

use anyhow::{Context, bail};
use shared::{Command, ServerMsg};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::{CONNECT_TIMEOUT, Endpoint, RECV_TIMEOUT};

/// One item of an SSE stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SseItem {
    /// A frame, with its event id (`<secret>:<n>`).
    Frame { id: String, msg: Box<ServerMsg> },
    /// The session ended: the WebSocket close code and reason it stands for.
    Close { code: u16, reason: String },
    /// A comment line.
    Comment(String),
    /// A heartbeat: the server's heartbeat interval, in milliseconds.
    Ping(u64),
}

/// A streamed response's head, then its body chunk by chunk.
struct Streamed {
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// Decoded body bytes not yet consumed.
    buf: Vec<u8>,
    ended: bool,
}

impl Streamed {
    /// Reads more of the body into `buf`; `false` at its end.
    async fn fill(&mut self) -> anyhow::Result<bool> {
        if self.ended {
            return Ok(false);
        }
        if !self.chunked {
            let mut chunk = [0u8; 4096];
            let n = self.reader.read(&mut chunk).await?;
            self.buf.extend_from_slice(&chunk[..n]);
            self.ended = n == 0;
            return Ok(n > 0);
        }
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let size = usize::from_str_radix(line.trim(), 16)
            .with_context(|| format!("bad chunk size line {line:?}"))?;
        if size == 0 {
            self.ended = true;
            return Ok(false);
        }
        let mut chunk = vec![0u8; size + 2];
        self.reader.read_exact(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..size]);
        Ok(true)
    }
}

/// Sends a request and reads the response head. Returns the status, the head, and the body
/// reader.
async fn request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String, Streamed)> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint.addr))
        .await
        .context("TCP connect timed out")??;
    let mut reader = BufReader::new(tcp);
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        endpoint.addr,
        body.len()
    );
    reader.get_mut().write_all(req.as_bytes()).await?;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if tokio::time::timeout(RECV_TIMEOUT, reader.read_line(&mut line))
            .await
            .context("timed out waiting for the response head")??
            == 0
        {
            bail!("connection closed in the response head: {head:?}");
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split(' ')
        .nth(1)
        .context("no status")?
        .parse()
        .context("bad status")?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        head,
        Streamed {
            reader,
            chunked,
            buf: Vec::new(),
            ended: false,
        },
    ))
}

/// Sends a request with a body and reads the whole response: (status, head, body).
pub async fn http_request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String, String)> {
    let (status, head, mut body_reader) = request(endpoint, method, path, headers, body).await?;
    let read_all = async {
        while body_reader.fill().await? {}
        anyhow::Ok(())
    };
    // A long poll may wait a heartbeat interval before it answers.
    tokio::time::timeout(RECV_TIMEOUT * 8, read_all)
        .await
        .context("timed out reading the response body")??;
    Ok((
        status,
        head,
        String::from_utf8(body_reader.buf).context("body is not UTF-8")?,
    ))
}

/// A server API call (`/api/v1`) with the key as a bearer token, if any, and a JSON body:
/// the status and the parsed JSON answer.
pub async fn api_call(
    app: &Endpoint,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    let (status, _, body) = http_request(app, method, path, &headers, body)
        .await
        .unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, json)
}

/// `POST /v3/send` with these frames. Returns the status and body.
pub async fn send_frames(
    endpoint: &Endpoint,
    session: &str,
    frames: &[String],
    headers: &[(&str, &str)],
) -> (u16, String) {
    let body = format!(
        "{{\"session\":{},\"frames\":[{}]}}",
        serde_json::to_string(session).unwrap(),
        frames.join(",")
    );
    let (status, _, body) = http_request(endpoint, "POST", "/v3/send", headers, &body)
        .await
        .expect("POST /v3/send");
    (status, body)
}

/// A client reading `/v3/sse`.
pub struct SseClient {
    endpoint: Endpoint,
    body: Streamed,
    /// The last event id seen (`<secret>:<n>`).
    pub last_event_id: Option<String>,
    pub head: String,
}

impl SseClient {
    /// Opens `/v3/sse{query}` with extra headers; fails unless the answer is a 200 stream.
    pub async fn open(
        endpoint: &Endpoint,
        query: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut all = vec![("Accept", "text/event-stream")];
        all.extend_from_slice(headers);
        let (status, head, body) =
            request(endpoint, "GET", &format!("/v3/sse{query}"), &all, "").await?;
        if status != 200 {
            bail!("/v3/sse answered {status}: {head}");
        }
        Ok(Self {
            endpoint: *endpoint,
            body,
            last_event_id: None,
            head,
        })
    }

    /// The session's secret (from the event ids).
    pub fn secret(&self) -> String {
        let id = self.last_event_id.as_deref().expect("an event id seen");
        id.split_once(':').expect("<secret>:<n>").0.to_owned()
    }

    /// The next item; fails on timeout or the end of the stream.
    pub async fn next_item(&mut self) -> anyhow::Result<SseItem> {
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        loop {
            if let Some(end) = self.body.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.body.buf.drain(..end + 2).collect();
                let block = String::from_utf8(block).context("event is not UTF-8")?;
                if let Some(item) = self.parse(block.trim_end_matches('\n'))? {
                    return Ok(item);
                }
                continue;
            }
            let more = tokio::time::timeout_at(deadline, self.body.fill())
                .await
                .context("timed out waiting for an event")??;
            if !more {
                bail!("the stream ended");
            }
        }
    }

    fn parse(&mut self, block: &str) -> anyhow::Result<Option<SseItem>> {
        let (mut id, mut event, mut data, mut comment) = (None, None, None, None);
        for line in block.lines() {
            if let Some(c) = line.strip_prefix(':') {
                comment = Some(c.trim().to_owned());
            } else if let Some((field, value)) = line.split_once(": ") {
                match field {
                    "id" => id = Some(value.to_owned()),
                    "event" => event = Some(value.to_owned()),
                    "data" => data = Some(value.to_owned()),
                    "retry" => {}
                    other => bail!("unknown SSE field {other:?}"),
                }
            }
        }
        if let Some(id) = &id {
            self.last_event_id = Some(id.clone());
        }
        Ok(match (event.as_deref(), data) {
            (Some("close"), Some(data)) => {
                let v: serde_json::Value = serde_json::from_str(&data)?;
                Some(SseItem::Close {
                    code: v["code"].as_u64().context("close code")? as u16,
                    reason: v["reason"].as_str().context("close reason")?.to_owned(),
                })
            }
            (Some("ping"), Some(data)) => Some(SseItem::Ping(
                data.parse()
                    .with_context(|| format!("ping data {data:?}"))?,
            )),
            (None, Some(data)) => Some(SseItem::Frame {
                id: id.context("a frame without an id")?,
                msg: Box::new(
                    serde_json::from_str(&data)
                        .with_context(|| format!("not a server frame: {data}"))?,
                ),
            }),
            (Some(other), _) => bail!("unknown SSE event {other:?}"),
            (None, None) => comment.map(SseItem::Comment),
        })
    }

    /// The next server message, skipping heartbeats; fails the test on a close or timeout.
    pub async fn recv(&mut self) -> ServerMsg {
        loop {
            match self.next_item().await.expect("an SSE event") {
                SseItem::Frame { msg, .. } => return *msg,
                SseItem::Comment(_) | SseItem::Ping(_) => continue,
                close @ SseItem::Close { .. } => panic!("expected a frame, got {close:?}"),
            }
        }
    }

    /// Skips messages until one matches `pick`; an error or nack on the way fails the test.
    pub async fn recv_until<T>(&mut self, mut pick: impl FnMut(ServerMsg) -> Option<T>) -> T {
        loop {
            if let Some(found) = crate::pick_or_refuse(self.recv().await, &mut pick) {
                return found;
            }
        }
    }

    /// Reads until the close event and returns its code; frames before it are skipped.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            match self.next_item().await {
                Ok(SseItem::Close { code, .. }) => return code,
                Ok(_) => {}
                Err(e) => panic!("no close event: {e}"),
            }
        }
    }

    /// Sends commands with `POST /v3/send`; panics unless the answer is 204.
    pub async fn send(&self, commands: &[Command]) {
        let frames: Vec<String> = commands.iter().map(Command::encode).collect();
        let (status, body) = send_frames(&self.endpoint, &self.secret(), &frames, &[]).await;
        assert_eq!(status, 204, "POST /v3/send: {body}");
    }
}

/// The answer to one poll.
#[derive(Debug)]
pub struct PollAnswer {
    pub status: u16,
    pub frames: Vec<ServerMsg>,
    pub close: Option<(u16, String)>,
    pub body: String,
}

/// A client long-polling `/v3/poll`.
pub struct PollClient {
    endpoint: Endpoint,
    pub session: String,
    /// The last frame number received (acknowledged by the next poll).
    pub last: u64,
}

impl PollClient {
    /// Opens a session (`POST /v3/poll{query}`, empty body); returns the client and the
    /// frames of the first answer (the hello).
    pub async fn open(endpoint: &Endpoint, query: &str) -> (Self, PollAnswer) {
        let (status, _, body) =
            http_request(endpoint, "POST", &format!("/v3/poll{query}"), &[], "")
                .await
                .expect("POST /v3/poll");
        let answer = parse_poll(status, &body);
        let v: serde_json::Value = serde_json::from_str(&body).expect("poll answer JSON");
        let client = Self {
            endpoint: *endpoint,
            session: v["session"].as_str().expect("session").to_owned(),
            last: v["last"].as_u64().expect("last"),
        };
        (client, answer)
    }

    /// One poll from `self.last`; moves `last` on.
    pub async fn poll(&mut self) -> PollAnswer {
        let body = format!(
            "{{\"session\":{},\"last\":{}}}",
            serde_json::to_string(&self.session).unwrap(),
            self.last
        );
        let (status, _, body) = http_request(&self.endpoint, "POST", "/v3/poll", &[], &body)
            .await
            .expect("POST /v3/poll");
        if status == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).expect("poll answer JSON");
            self.last = v["last"].as_u64().expect("last");
        }
        parse_poll(status, &body)
    }

    /// Polls until a message matches `pick`; an error or nack on the way fails the test.
    pub async fn recv_until<T>(&mut self, mut pick: impl FnMut(&ServerMsg) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT * 8;
        while tokio::time::Instant::now() < deadline {
            let answer = self.poll().await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            for msg in &answer.frames {
                if let Some(found) = pick(msg) {
                    return found;
                }
                if matches!(msg, ServerMsg::Error { .. } | ServerMsg::Nack { .. }) {
                    panic!("unexpected refusal while waiting: {msg:?}");
                }
            }
            if let Some(close) = answer.close {
                panic!("the session closed while waiting: {close:?}");
            }
        }
        panic!("nothing matched within {:?}", RECV_TIMEOUT * 8);
    }

    pub async fn send(&self, commands: &[Command]) {
        let frames: Vec<String> = commands.iter().map(Command::encode).collect();
        let (status, body) = send_frames(&self.endpoint, &self.session, &frames, &[]).await;
        assert_eq!(status, 204, "POST /v3/send: {body}");
    }
}

fn parse_poll(status: u16, body: &str) -> PollAnswer {
    if status != 200 {
        return PollAnswer {
            status,
            frames: Vec::new(),
            close: None,
            body: body.to_owned(),
        };
    }
    let v: serde_json::Value = serde_json::from_str(body).expect("poll answer JSON");
    let frames = v["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| serde_json::from_value(f.clone()).expect("a server frame"))
        .collect();
    let close = v.get("close").map(|c| {
        (
            c["code"].as_u64().expect("close code") as u16,
            c["reason"].as_str().expect("close reason").to_owned(),
        )
    });
    PollAnswer {
        status,
        frames,
        close,
        body: body.to_owned(),
    }
}

/// A TCP balancer in front of several servers: each new connection goes to the next one in
/// turn (round-robin, no stickiness). The HTTP clients here send one request per connection,
/// so every request may land on another node.
pub struct RoundRobin {
    pub endpoint: Endpoint,
    task: tokio::task::JoinHandle<()>,
}

impl RoundRobin {
    pub async fn start(upstreams: Vec<std::net::SocketAddr>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut next = 0;
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstreams[next % upstreams.len()];
                next += 1;
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            endpoint: Endpoint { addr },
            task,
        }
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
