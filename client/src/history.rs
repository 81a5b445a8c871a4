//! Older history over HTTP (`gloo-net`): `GET /api/rooms/{room}/messages?before=&limit=`.

use gloo_net::http::Request;
use shared::HistoryPage;

use crate::endpoint::encode;

/// Fetches up to `limit` messages before `before` (oldest first).
pub async fn older(
    http_base: &str,
    room: &str,
    before: u64,
    limit: usize,
) -> Result<HistoryPage, String> {
    let mut url = format!(
        "{http_base}/api/rooms/{}/messages?before={before}&limit={limit}",
        encode(room)
    );
    // With signed user tokens, history is for the users who may join the room.
    if let Some(token) = crate::token::current() {
        url.push_str("&access_token=");
        url.push_str(&encode(&token));
    }
    let resp = Request::get(&url)
        .send()
        .await
        .map_err(|_| "network error".to_owned())?;
    if !resp.ok() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let body = resp.text().await.map_err(|_| "network error".to_owned())?;
    HistoryPage::decode(&body).map_err(|e| e.to_string())
}
