//! What the browser remembers: a random secret token (the name is held by it across reconnects
//! and tabs) and the outbox of messages not yet acknowledged, both in `localStorage`.

use shared::{RoomId, json};

const TOKEN_KEY: &str = "switchboard.token";

/// The browser's `localStorage`, if it has one.
pub(crate) fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// `n` random bytes as hex, from the browser's CSPRNG.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// This browser's token, made once.
pub fn token() -> String {
    if let Some(t) = storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten())
        && t.len() >= 16
    {
        return t;
    }
    let token = random_hex(16);
    if let Some(s) = storage() {
        let _ = s.set_item(TOKEN_KEY, &token);
    }
    token
}

/// A message typed but not yet acknowledged by the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: String,
    pub text: String,
    /// Set when the server acknowledged it (durably stored); the broadcast follows.
    pub acked: Option<u64>,
}

/// The stored form of an outbox: `[{"id","text"}, …]` (entries saved by earlier versions also
/// carry `"acked":null`).
pub fn encode_outbox(outbox: &[&Pending]) -> String {
    let mut out = String::from("[");
    for (i, p) in outbox.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let entry = json::Writer::object()
            .str("id", &p.id)
            .str("text", &p.text)
            .opt_u64("acked", p.acked);
        out.push_str(&entry.finish());
    }
    out.push(']');
    out
}

/// Reads a stored outbox; `None` if it is not one.
pub fn decode_outbox(text: &str) -> Option<Vec<Pending>> {
    let json::Value::Array(entries) = json::parse(text).ok()? else {
        return None;
    };
    entries
        .iter()
        .map(|entry| {
            let f = json::Object::of(entry, "an outbox entry").ok()?;
            Some(Pending {
                id: f.str("id").ok()?,
                text: f.str("text").ok()?,
                acked: f.opt_u64("acked").ok()?,
            })
        })
        .collect()
}

fn outbox_key(room: &RoomId, name: &str) -> String {
    format!("switchboard.outbox.{room}.{name}")
}

/// The stored outbox of `name` in `room` (unacknowledged messages only).
pub fn load_outbox(room: &RoomId, name: &str) -> Vec<Pending> {
    storage()
        .and_then(|s| s.get_item(&outbox_key(room, name)).ok().flatten())
        .and_then(|stored| decode_outbox(&stored))
        .unwrap_or_default()
}

/// Stores the unacknowledged part of `outbox`.
pub fn save_outbox(room: &RoomId, name: &str, outbox: &[Pending]) {
    let Some(s) = storage() else { return };
    let unacked: Vec<&Pending> = outbox.iter().filter(|p| p.acked.is_none()).collect();
    if unacked.is_empty() {
        let _ = s.remove_item(&outbox_key(room, name));
    } else {
        let _ = s.set_item(&outbox_key(room, name), &encode_outbox(&unacked));
    }
}
