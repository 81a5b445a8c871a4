//! Where the server is. By default the page's own host; for a static deployment elsewhere,
//! `?server=https://chat.example.com` in the page URL or
//! `<meta name="switchboard-server" content="https://chat.example.com">` in `index.html`.

/// The server's base URL for WebSockets, e.g. `ws://127.0.0.1:3000` (no trailing slash).
pub fn ws_base() -> String {
    let configured = query_param("server").or_else(meta_server);
    let base = configured.unwrap_or_else(page_origin);
    to_ws(&base)
}

/// Turns `http(s)://host` into `ws(s)://host`; `ws(s)://` and bare hosts are accepted too.
pub fn to_ws(base: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        format!("ws://{base}")
    }
}

/// A parameter of the page's query string.
pub fn query_param(key: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    let params = web_sys::UrlSearchParams::new_with_str(&search).ok()?;
    params.get(key).filter(|v| !v.trim().is_empty())
}

fn meta_server() -> Option<String> {
    let doc = web_sys::window()?.document()?;
    let meta = doc.query_selector("meta[name=switchboard-server]").ok()??;
    meta.get_attribute("content")
        .filter(|v| !v.trim().is_empty())
}

fn page_origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_else(|| "http://127.0.0.1:3000".into())
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    String::from(js_sys::encode_uri_component(value))
}

/// The chat socket URL (protocol v3) for `name`, held by `token`. Rooms are joined over the
/// connection, each with its own history position.
pub fn chat_url(base: &str, name: &str, token: &str) -> String {
    format!("{base}/ws?name={}&token={}", encode(name), encode(token))
}

/// The HTTP base matching a WebSocket base (`ws://h` → `http://h`).
pub fn http_base(ws_base: &str) -> String {
    if let Some(rest) = ws_base.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = ws_base.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        ws_base.to_owned()
    }
}
