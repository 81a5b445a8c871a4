//! Signed user tokens, when the app runs its own users: the page names where to get one with
//! `<meta name="switchboard-token-url" content="/auth/switchboard-token">` (the server writes
//! it with `--jwt-token-url`; a page hosted elsewhere carries it itself). The client fetches a
//! token there (GET, with the browser's cookies) before every connection attempt, so it never
//! reconnects with an expired one, and again when the server says the token is expiring
//! (`token_expiring`), to send it as a `refresh`. The answer is the token as text, or JSON with
//! a `token` (or `access_token`) member.

use std::cell::RefCell;

use gloo_net::http::Request;
use web_sys::RequestCredentials;

thread_local! {
    /// The last token fetched, for the page's other requests to the server (older history).
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The last token fetched, if tokens are in use.
pub fn current() -> Option<String> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Where the page says tokens come from, if it does.
pub fn token_url() -> Option<String> {
    let doc = web_sys::window()?.document()?;
    let meta = doc
        .query_selector("meta[name=switchboard-token-url]")
        .ok()??;
    meta.get_attribute("content")
        .filter(|v| !v.trim().is_empty())
}

/// Why no token came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The app refused (401 or 403): the user is not signed in there. Retrying will not help.
    Refused(u16),
    /// The request failed, or the answer held no token: try again later.
    Unavailable(String),
}

/// Fetches a fresh token from `url`.
pub async fn fetch(url: &str) -> Result<String, TokenError> {
    let response = Request::get(url)
        .credentials(RequestCredentials::Include)
        .send()
        .await
        // gloo-net's errors are not formatted: their Display would bring serde_json's into
        // the bundle.
        .map_err(|_| TokenError::Unavailable("the token URL could not be reached".into()))?;
    match response.status() {
        200 => {}
        status @ (401 | 403) => return Err(TokenError::Refused(status)),
        status => {
            return Err(TokenError::Unavailable(format!(
                "the token URL answered {status}"
            )));
        }
    }
    let body = response
        .text()
        .await
        .map_err(|_| TokenError::Unavailable("the token URL's answer was cut off".into()))?;
    let token = read_token(&body)
        .ok_or_else(|| TokenError::Unavailable("the token URL sent no token".into()))?;
    CURRENT.with(|c| *c.borrow_mut() = Some(token.clone()));
    Ok(token)
}

/// The token in a token URL's answer: plain text, or JSON `{"token": …}` /
/// `{"access_token": …}`.
pub fn read_token(body: &str) -> Option<String> {
    let body = body.trim();
    let token = if body.starts_with('{') {
        let value = shared::json::parse(body).ok()?;
        let object = shared::json::Object::of(&value, "a token answer").ok()?;
        match object.opt_str("token").ok()? {
            Some(token) => token,
            None => object.opt_str("access_token").ok()??,
        }
    } else {
        body.to_owned()
    };
    // A JWT is three base64url parts; anything else (an HTML login page) is not a token.
    let plausible = token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plausible.then_some(token)
}

/// The display name a token carries (its `name` claim, else its `sub`), read without checking
/// the signature: only to show the user who they are before the server's `hello` confirms it.
pub fn name_of(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    // base64url → base64, padded, for the browser's `atob`.
    let mut b64: String = payload
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !b64.len().is_multiple_of(4) {
        b64.push('=');
    }
    let binary = web_sys::window()?.atob(&b64).ok()?;
    // `atob` gives one character per byte; the browser turns the bytes back into UTF-8 text
    // (percent-encoded, then decoded).
    let escaped = String::from(js_sys::escape(&binary));
    let text: String = js_sys::decode_uri_component(&escaped).ok()?.into();
    let value = shared::json::parse(&text).ok()?;
    let claims = shared::json::Object::of(&value, "claims").ok()?;
    match claims.opt_str("name").ok()? {
        Some(name) => Some(name),
        None => claims.opt_str("sub").ok()?,
    }
}
