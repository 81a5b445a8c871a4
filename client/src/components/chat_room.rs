use leptos::prelude::*;
use shared::ClientMsg;

use crate::app::JoinInfo;
use crate::components::{
    composer::Composer, connection_badge::ConnectionBadge, diagnostics::Diagnostics,
    live_panel::LivePanel, member_list::MemberList, message_list::MessageList,
};
use crate::connection::{ConnState, Connection, SendError};
use crate::endpoint;
use crate::state::RoomState;

/// A joined room: owns the connection for as long as it is shown.
/// - `info`: name and room.
/// - `server`: the WebSocket base URL.
/// - `on_leave`: back to the join screen.
#[component]
pub fn ChatRoom(
    info: JoinInfo,
    server: String,
    #[prop(into)] on_leave: Callback<()>,
) -> impl IntoView {
    let state = RoomState::new();
    let url = endpoint::chat_url(&server, &info.name, &info.room);
    let conn = StoredValue::new_local(Connection::open(url, move |event| state.apply(event)));
    on_cleanup(move || conn.with_value(Connection::close));

    let send = move |text: String| {
        conn.with_value(|c| c.send(&ClientMsg::Chat { msg: text }))
            .map_err(|SendError::NotOpen| "Not connected: the message was not sent.".to_owned())
    };
    let fatal = move || matches!(state.conn.get(), ConnState::Closed { .. });
    let room = info.room.clone();

    view! {
        <header class="topbar">
            <div class="brand"><span class="logo" aria-hidden="true"></span><span>"Switchboard"</span></div>
            <div class="room-title"><span class="hash">"#"</span>{room}</div>
            <ConnectionBadge state=state.conn on_retry=move |_| conn.with_value(Connection::reconnect_now) />
            <button class="link leave" on:click=move |_| on_leave.run(())>"Leave"</button>
        </header>
        <Show when=move || state.problem.get().is_some()>
            <div class="problem" role="alert">
                <strong>{move || state.problem.get().map(|p| p.title)}</strong>
                <span>{move || state.problem.get().map(|p| p.detail)}</span>
                <button class="link" aria-label="Dismiss" on:click=move |_| state.problem.set(None)>"Dismiss"</button>
            </div>
        </Show>
        <main class="room">
            <aside class="sidebar">
                <MemberList members=state.members me=state.me />
            </aside>
            <section class="conversation" aria-label="Conversation">
                <MessageList lines=state.lines />
                <Show when=fatal fallback=move || view! { <Composer state=state.conn limits=state.limits on_send=send /> }>
                    <div class="closed-bar">
                        "This session has ended. "
                        <button class="primary" on:click=move |_| on_leave.run(())>"Choose another name or room"</button>
                    </div>
                </Show>
            </section>
            <aside class="insights">
                <LivePanel stats=state.stats />
                <Diagnostics state=state server=server />
            </aside>
        </main>
    }
}
