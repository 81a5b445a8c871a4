//! Everything the server does with an untrusted client frame before it trusts it: decode the
//! JSON (typed or legacy), then validate names, rooms, texts and ids. None of it may panic, and
//! a frame that decodes must re-encode to the same message. Also the browser client's own
//! reader (`shared::json`, `ServerMsg::decode`): it must never panic, and wherever serde_json
//! takes a server frame, it must read the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::{ClientMsg, Inbound, MessageText, RoomId, ServerMsg, Username, valid_client_id};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Username::parse(text, 32);
    let _ = RoomId::parse(text);
    let _ = MessageText::parse(text, 4000);
    let _ = valid_client_id(text);
    let _ = shared::json::parse(text);
    if let (Ok(ours), Ok(serde)) = (
        ServerMsg::decode(text),
        serde_json::from_str::<ServerMsg>(text),
    ) {
        match (ours, serde) {
            // A data frame's `data` is any JSON, kept as text: each reader writes it its own
            // way (member order, number spelling), so the values are compared.
            (ServerMsg::Data(mut ours), ServerMsg::Data(serde)) => {
                let value = |raw: &shared::RawJson| {
                    serde_json::from_str::<serde_json::Value>(raw.as_str()).expect("valid JSON")
                };
                assert_eq!(value(&ours.data), value(&serde.data));
                ours.data = serde.data.clone();
                assert_eq!(ours, serde);
            }
            (ours, serde) => assert_eq!(ours, serde),
        }
    }
    match Inbound::decode(text) {
        Ok(Inbound::Typed(msg)) => {
            if let ClientMsg::Chat { msg: body, id } = &msg {
                let _ = MessageText::parse(body, 4000);
                let _ = id.as_deref().map(valid_client_id);
            }
            let again = serde_json::to_string(&msg).expect("re-encodes");
            assert_eq!(Inbound::decode(&again), Ok(Inbound::Typed(msg)));
        }
        Ok(Inbound::Legacy(legacy)) => {
            let _ = Username::parse(&legacy.name, 32);
            let _ = MessageText::parse(&legacy.msg, 4000);
        }
        Err(e) => {
            let _ = e.code();
        }
    }
});
