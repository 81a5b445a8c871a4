use leptos::html::Div;
use leptos::prelude::*;

use crate::history;
use crate::room::{LineKind, RoomState};

/// Messages loaded per "older" page.
const PAGE: usize = 50;

fn clock(ts_ms: u64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ts_ms as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

/// The room's messages and notices, newest at the bottom; own messages marked "me"; messages
/// still in the outbox shown as pending; who is typing. Scrolling to the top loads older
/// history. Text is rendered as text nodes, never as HTML.
/// - `state`: the room state.
/// - `http`: the server's HTTP base URL.
#[component]
pub fn MessageList(state: RoomState, http: String) -> impl IntoView {
    let scroller = NodeRef::<Div>::new();
    let loading = RwSignal::new(false);
    let load_error = RwSignal::new(None::<String>);
    // Keep the newest line in view when something is appended.
    Effect::new(move |prev: Option<(Option<u64>, usize)>| {
        let key = (
            state.lines.with(|l| l.last().map(|l| l.id)),
            state.outbox.with(Vec::len),
        );
        if prev.as_ref() != Some(&key)
            && let Some(el) = scroller.get()
        {
            el.set_scroll_top(el.scroll_height());
        }
        key
    });
    let load_older = move || {
        if loading.get_untracked() || !state.has_older.get_untracked() {
            return;
        }
        let Some(before) = state.oldest_seq() else {
            return;
        };
        loading.set(true);
        let http = http.clone();
        let room = state.room.get_value().to_string();
        leptos::task::spawn_local(async move {
            let height_before = scroller.get_untracked().map_or(0, |el| el.scroll_height());
            match history::older(&http, &room, before, PAGE).await {
                Ok(page) => {
                    load_error.set(None);
                    state.prepend(page.messages, page.has_more);
                    // Keep the reader's place: the new lines go above.
                    if let Some(el) = scroller.get_untracked() {
                        el.set_scroll_top(el.scroll_height() - height_before);
                    }
                }
                Err(e) => load_error.set(Some(format!("Could not load older messages: {e}"))),
            }
            loading.set(false);
        });
    };
    let load_older_click = load_older.clone();
    let typing_text = move || {
        let names: Vec<String> = state
            .typing
            .with(|t| t.iter().map(|(n, _)| n.clone()).collect());
        match names.as_slice() {
            [] => String::new(),
            [one] => format!("{one} is typing…"),
            [a, b] => format!("{a} and {b} are typing…"),
            _ => "Several people are typing…".to_owned(),
        }
    };
    view! {
        <div class="messages" node_ref=scroller role="log" aria-live="polite" aria-label="Messages"
            on:scroll=move |_| {
                if scroller.get_untracked().is_some_and(|el| el.scroll_top() < 40) {
                    load_older();
                }
            }>
            <Show when=move || state.has_older.get()>
                <button class="link older" on:click={
                    let load = load_older_click.clone();
                    move |_| load()
                } disabled=move || loading.get()>
                    {move || if loading.get() { "Loading…" } else { "Load older messages" }}
                </button>
            </Show>
            <Show when=move || load_error.get().is_some()>
                <p class="form-error">{move || load_error.get()}</p>
            </Show>
            <Show when=move || state.lines.with(Vec::is_empty) && state.outbox.with(Vec::is_empty)>
                <p class="empty">"No messages yet. Say hello!"</p>
            </Show>
            <For each=move || state.lines.get() key=|line| line.id children=move |line| {
                match line.kind {
                    LineKind::Chat { seq, name, text, ts, mine } => view! {
                        <div class=if mine { "msg mine" } else { "msg" } data-seq=seq>
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
            <For each=move || state.outbox.get() key=|p| (p.id.clone(), p.acked) children=move |p| {
                let status = if p.acked.is_some() { "sent" } else { "pending" };
                view! {
                    <div class="msg mine pending" data-status=status>
                        <div class="msg-meta">
                            <span class="msg-name">"me"</span>
                            <span class="msg-time">{if p.acked.is_some() { "sent ✓" } else { "waiting to send…" }}</span>
                        </div>
                        <div class="msg-text">{p.text.clone()}</div>
                    </div>
                }
            } />
        </div>
        <div class="typing" aria-live="polite">{typing_text}</div>
    }
}
