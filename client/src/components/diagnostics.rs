use leptos::prelude::*;

use crate::echo_probe;
use crate::state::Session;

/// Round-trip time to the server's `/echo`, the session's details, and the socket event log
/// (open / message / close / error).
/// - `session`: the session.
/// - `server`: the WebSocket base URL.
#[component]
pub fn Diagnostics(session: Session, server: String) -> impl IntoView {
    let result = RwSignal::new(None::<Result<(f64, f64, f64), String>>);
    let running = RwSignal::new(false);
    let echo_url = format!("{server}/echo");
    let measure = move |_| {
        running.set(true);
        echo_probe::measure(&echo_url, 10, move |outcome| {
            running.set(false);
            result.set(Some(outcome.map(|mut s| crate::numbers::spread(&mut s))));
        });
    };
    let fmt = |ms: f64| format!("{} ms", crate::numbers::tenths(ms));
    view! {
        <section class="panel diagnostics" aria-labelledby="diag-title">
            <h2 id="diag-title">"Diagnostics"</h2>
            <div class="rtt">
                <button class="secondary" on:click=measure disabled=move || running.get()>
                    {move || if running.get() { "Measuring…" } else { "Measure echo round trip" }}
                </button>
                <p class="rtt-result" aria-live="polite">{move || match result.get() {
                    None => "10 round trips to /echo".to_owned(),
                    Some(Ok((min, median, max))) => format!("median {} · min {} · max {}", fmt(median), fmt(min), fmt(max)),
                    Some(Err(e)) => format!("failed: {e}"),
                }}</p>
            </div>
            <dl class="facts">
                <div><dt>"Server"</dt><dd>{server.clone()}</dd></div>
                <div><dt>"Transport"</dt><dd class="transport">{move || session.transport.get().label()}</dd></div>
                <div><dt>"Your address"</dt><dd>{move || session.peer_addr.get().unwrap_or_else(|| "–".into())}</dd></div>
                <div><dt>"Version"</dt><dd>{move || session.server_version.get().map_or("–".into(), |v| format!("{v} · protocol {}", shared::PROTOCOL_V3))}</dd></div>
                <div><dt>"Frames received"</dt><dd>{move || session.received.get()}</dd></div>
            </dl>
            <h3>"Socket events"</h3>
            <ol class="event-log">
                <For each=move || session.log.get() key=|e| e.id children=move |e| {
                    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(e.at_ms));
                    let at = format!("{:02}:{:02}:{:02}", date.get_hours(), date.get_minutes(), date.get_seconds());
                    view! {
                        <li class=format!("ev ev-{}", e.kind)>
                            <time>{at}</time>
                            <span class="ev-kind">{e.kind}</span>
                            <span class="ev-detail">{e.detail}</span>
                        </li>
                    }
                } />
            </ol>
        </section>
    }
}
