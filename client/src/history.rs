//! Older history over HTTP: `GET /api/rooms/{room}/messages?before=&limit=`.

use shared::HistoryPage;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::endpoint::encode;

/// Fetches up to `limit` messages before `before` (oldest first).
pub async fn older(
    http_base: &str,
    room: &str,
    before: u64,
    limit: usize,
) -> Result<HistoryPage, String> {
    let url = format!(
        "{http_base}/api/rooms/{}/messages?before={before}&limit={limit}",
        encode(room)
    );
    let window = web_sys::window().ok_or("no window")?;
    let resp = JsFuture::from(window.fetch_with_str(&url))
        .await
        .map_err(|_| "network error".to_owned())?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "not a response".to_owned())?;
    if !resp.ok() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let text = JsFuture::from(resp.text().map_err(|_| "unreadable body".to_owned())?)
        .await
        .map_err(|_| "unreadable body".to_owned())?;
    serde_json::from_str(&text.as_string().unwrap_or_default()).map_err(|e| e.to_string())
}
