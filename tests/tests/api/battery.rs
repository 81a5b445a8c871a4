//! Hostile input: over 10,000 malformed, truncated, mistyped and abusive inputs at the JSON,
//! frame and handshake levels, while a canary keeps chatting. The server stays up, answers
//! each abuse with the right error, close code or HTTP status, and its memory stays bounded.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use shared::ServerMsg;
use shared::{ClientMsg, ErrorCode, Inbound, LegacyChat, MessageText};
use switchboard_tests::Endpoint;
use switchboard_tests::process::ServerProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// JSON-level inputs: every prefix of valid frames, random byte mutations, wrong types,
/// unknown kinds, deep nesting, bad escapes.
fn json_inputs() -> Vec<Vec<u8>> {
    let valid = [
        r#"{"type":"chat","msg":"hello there","id":"abc-123"}"#,
        r#"{"type":"chat","msg":"multi\nline ✓ é 李"}"#,
        r#"{"type":"feed","enabled":false}"#,
        r#"{"type":"typing"}"#,
        r#"{"name":"legacy","msg":"tutorial frame"}"#,
    ];
    let mut out: Vec<Vec<u8>> = Vec::new();
    for v in valid {
        for cut in 0..v.len() {
            out.push(v.as_bytes()[..cut].to_vec());
        }
    }
    for bad in [
        r#"{"type":"chat","msg":42}"#,
        r#"{"type":"chat","msg":null}"#,
        r#"{"type":"chat","msg":["a"]}"#,
        r#"{"type":"feed","enabled":"yes"}"#,
        r#"{"type":"nuke"}"#,
        r#"{"type":7}"#,
        r#"{"type":"chat","msg":"x","name":"impostor"}"#,
        r#"{"type":"chat","msg":"\ud800"}"#,
        r#"{"type":"chat","msg":"x","id":""}"#,
        r#"{"type":"chat","msg":"x","id":"😀"}"#,
        r#"[]"#,
        r#"null"#,
        r#"1e999999"#,
        r#""just a string""#,
    ] {
        out.push(bad.as_bytes().to_vec());
    }
    out.push(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes());
    out.push(format!(r#"{{"type":"chat","msg":{}}}"#, "{\"a\":".repeat(10_000)).into_bytes());
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5b);
    while out.len() < 10_500 {
        let mut frame = valid[rng.random_range(0..valid.len())].as_bytes().to_vec();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..frame.len());
            match rng.random_range(0..3) {
                0 => frame[i] = rng.random_range(0x20..0x7f),
                1 => {
                    frame.remove(i);
                }
                _ => frame.insert(i, b"{}[]\",:\\"[rng.random_range(0..8)]),
            }
        }
        out.push(frame);
    }
    out
}

/// Whether the server must answer this input with an error, by the protocol's own rules: it
/// does not decode, or it is a chat whose id or text is invalid (typing and feed switches are
/// never answered; a legacy frame from a named session is a chat with the session's name).
fn refused(input: &str) -> bool {
    let text_invalid = |msg: &str| MessageText::parse(msg, MessageText::DEFAULT_MAX_CHARS).is_err();
    match Inbound::decode(input) {
        Err(_) => true,
        Ok(Inbound::Typed(ClientMsg::Chat { msg, id })) => {
            id.is_some_and(|id| !shared::valid_client_id(&id)) || text_invalid(&msg)
        }
        Ok(Inbound::Typed(_)) => false,
        Ok(Inbound::Legacy(LegacyChat { msg, .. })) => text_invalid(&msg),
    }
}

/// Opens a WebSocket by hand, for sending frames no client library would.
async fn raw_upgrade(app: &Endpoint, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        app.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

fn frame(first: u8, mask: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![first];
    let m = if mask { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xffff => {
            f.push(m | 126);
            f.extend((n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend((n as u64).to_be_bytes());
        }
    }
    if mask {
        let key = [0x12, 0x34, 0x56, 0x78];
        f.extend(key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend(payload);
    }
    f
}

/// Reads server frames until a close frame; its code, or `None` if the connection just ended.
async fn server_close_code(s: &mut TcpStream) -> Option<u16> {
    let read = async {
        loop {
            let mut h = [0u8; 2];
            s.read_exact(&mut h).await.ok()?;
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    s.read_exact(&mut b).await.ok()?;
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    s.read_exact(&mut b).await.ok()?;
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).await.ok()?;
            if h[0] & 0x0f == 0x8 {
                return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("server answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_survives_more_than_ten_thousand_hostile_inputs_and_answers_each_properly() {
    let args: Vec<String> = [
        "--rate-per-sec",
        "1000000",
        "--rate-burst",
        "1000000",
        // Typing and feed frames stay valid through some mutations: not limited here either.
        "--control-rate-per-sec",
        "1000000",
        "--control-rate-burst",
        "1000000",
        "--max-message-bytes",
        "65536",
    ]
    .map(String::from)
    .to_vec();
    let app = ServerProcess::start("127.0.0.1:0", &args).await;
    let rss_before = app.rss_kib();

    // The canary chats throughout and measures its own round trips.
    let (mut canary, _) = app.join("canary", "battery").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let canary_task = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut rtts = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let start = Instant::now();
                let text = format!("canary {i}");
                canary.chat(&text).await;
                canary
                    .recv_until(|m| matches!(m, ServerMsg::Chat(c) if c.msg == text).then_some(()))
                    .await;
                rtts.push(start.elapsed());
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            rtts
        }
    });

    // 1. JSON: every input the server must refuse gets exactly one error (none skipped, none
    //    extra), every input that stayed valid is served, and the session goes on.
    let inputs: Vec<String> = json_inputs()
        .iter()
        .map(|input| String::from_utf8_lossy(input).into_owned())
        .collect();
    let refusals = inputs.iter().filter(|i| refused(i)).count();
    let (mut abuser, _) = app.join("abuser", "battery-json").await;
    let sent = inputs.len();
    // The abuser reads while it writes, as a browser does: a client that stops reading is
    // dropped as a slow consumer (close 4429), which is not what this part tests.
    let battery = async {
        let (mut sink, mut frames) = (&mut abuser.stream).split();
        let write = async {
            for input in &inputs {
                sink.feed(Message::text(input.clone())).await.unwrap();
            }
            // Acks follow the order sent: once this one's ack and broadcast are in, every
            // earlier answer is.
            let last = r#"{"type":"chat","msg":"still alive","id":"still-alive"}"#;
            sink.feed(Message::text(last)).await.unwrap();
            sink.flush().await.unwrap();
        };
        let read = async {
            let (mut errors, mut heard, mut acked) = (0, false, false);
            while !(heard && acked) {
                let text = match frames.next().await {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => panic!("abuser: expected a text frame, got {other:?}"),
                };
                match ServerMsg::decode(&text).expect("a protocol frame") {
                    ServerMsg::Chat(c) if c.msg == "still alive" => heard = true,
                    ServerMsg::Ack { id, .. } if id == "still-alive" => acked = true,
                    ServerMsg::Error { code, reason, .. } => {
                        assert!(
                            matches!(
                                code,
                                ErrorCode::Malformed
                                    | ErrorCode::InvalidMessage
                                    | ErrorCode::TextInvalid
                                    | ErrorCode::IdInvalid
                            ),
                            "unexpected error {code:?}: {reason}"
                        );
                        errors += 1;
                    }
                    _ => {}
                }
            }
            errors
        };
        futures_util::join!(write, read).1
    };
    let errors = tokio::time::timeout(Duration::from_secs(60), battery)
        .await
        .expect("JSON battery answered");
    assert_eq!(errors, refusals, "one error for each refused input");

    // A typed frame that also claims a `name` is refused as such, not served as the claimed
    // sender.
    abuser
        .send_text(r#"{"type":"chat","msg":"x","name":"impostor"}"#)
        .await;
    match abuser.recv().await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::InvalidMessage),
        other => panic!("expected invalid_message, got {other:?}"),
    }

    // 2. Frames no client library would send, each answered with the right close code.
    let huge_header = {
        let mut f = vec![0x81, 0x80 | 127];
        f.extend((1u64 << 40).to_be_bytes());
        f.extend([1, 2, 3, 4]);
        f
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked client frame", frame(0x81, false, b"{}"), 1002),
        ("reserved bit set", frame(0x81 | 0x40, true, b"{}"), 1002),
        ("reserved opcode", frame(0x83, true, b"{}"), 1002),
        ("fragmented ping", frame(0x09, true, b"ping"), 1002),
        (
            "control frame over 125 bytes",
            frame(0x89, true, &[b'p'; 200]),
            1002,
        ),
        (
            "text that is not UTF-8",
            frame(0x81, true, &[0xff, 0xfe, 0xfd]),
            1007,
        ),
        (
            "close with an invalid code",
            frame(0x88, true, &999u16.to_be_bytes()),
            1002,
        ),
        ("header claiming 1 TiB", huge_header, 1009),
        (
            "oversize message",
            frame(0x81, true, &vec![b'x'; 70_000]),
            1009,
        ),
    ];
    let mut frame_inputs = 0;
    for (what, bytes, expected) in cases {
        let mut s = raw_upgrade(&app, "/ws?feed=0").await;
        s.write_all(&bytes).await.unwrap();
        assert_eq!(server_close_code(&mut s).await, Some(expected), "{what}");
        frame_inputs += 1;
    }

    // 3. A ping flood is answered and harms nobody.
    let (mut pinger, _) = app.join("pinger", "battery-ping").await;
    for i in 0..5_000u32 {
        pinger
            .stream
            .feed(Message::Ping(i.to_be_bytes().to_vec().into()))
            .await
            .unwrap();
    }
    pinger.stream.flush().await.unwrap();
    let mut pongs = 0;
    while pongs < 5_000 {
        match tokio::time::timeout(Duration::from_secs(10), pinger.stream.next())
            .await
            .expect("pongs")
        {
            Some(Ok(Message::Pong(_))) => pongs += 1,
            Some(Ok(_)) => {}
            other => panic!("pinger: {other:?}"),
        }
    }

    // 4. Handshake abuse gets HTTP errors.
    let http = |req: String| {
        let addr = app.addr;
        async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let _ = s.write_all(req.as_bytes()).await;
            let mut resp = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut resp)).await;
            String::from_utf8_lossy(&resp)
                .split(' ')
                .nth(1)
                .unwrap_or("closed")
                .to_owned()
        }
    };
    let base = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n";
    assert_eq!(
        http(format!("{base}Sec-WebSocket-Version: 13\r\n\r\n")).await,
        "400",
        "missing key"
    );
    assert_eq!(
        http(format!(
            "{base}Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ))
        .await,
        "400",
        "wrong version"
    );
    let huge = format!("{base}X-Filler: {}\r\n\r\n", "a".repeat(1 << 20));
    assert_eq!(http(huge).await, "431", "1 MiB of headers");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut rtts = canary_task.await.unwrap();
    rtts.sort();
    let p99 = rtts[rtts.len() * 99 / 100];
    let growth_mib = app.rss_kib().saturating_sub(rss_before) as f64 / 1024.0;
    println!(
        "battery: {sent} JSON ({refusals} refused) + {frame_inputs} frame + 5000 ping + 3 handshake \
         inputs; canary {} round trips, p99 {:.2} ms; server RSS growth {growth_mib:.1} MiB",
        rtts.len(),
        p99.as_secs_f64() * 1e3
    );
    assert!(growth_mib < 32.0, "server RSS grew {growth_mib:.1} MiB");
}
