use leptos::html::Div;
use leptos::prelude::*;

use crate::state::{Line, LineKind};

fn clock(ts_ms: u64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ts_ms as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

/// The room's messages and notices, newest at the bottom; own messages marked "me".
/// Text is rendered as text nodes, never as HTML.
/// - `lines`: what to show.
#[component]
pub fn MessageList(lines: RwSignal<Vec<Line>>) -> impl IntoView {
    let scroller = NodeRef::<Div>::new();
    // Keep the newest line in view.
    Effect::new(move |_| {
        lines.track();
        if let Some(el) = scroller.get() {
            el.set_scroll_top(el.scroll_height());
        }
    });
    view! {
        <div class="messages" node_ref=scroller role="log" aria-live="polite" aria-label="Messages">
            <Show when=move || lines.with(Vec::is_empty)>
                <p class="empty">"No messages yet. Say hello!"</p>
            </Show>
            <For each=move || lines.get() key=|line| line.id children=move |line| {
                match line.kind {
                    LineKind::Chat { name, text, ts, mine } => view! {
                        <div class=if mine { "msg mine" } else { "msg" }>
                            <div class="msg-meta">
                                <span class="msg-name">{if mine { "me".to_owned() } else { name }}</span>
                                <time class="msg-time">{clock(ts)}</time>
                            </div>
                            <div class="msg-text">{text}</div>
                        </div>
                    }.into_any(),
                    LineKind::Notice(text) => view! { <div class="notice">{text}</div> }.into_any(),
                }
            } />
        </div>
    }
}
