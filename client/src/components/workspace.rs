use leptos::prelude::*;

use crate::components::{
    composer::Composer, connection_badge::ConnectionBadge, data_panel::DataPanel,
    diagnostics::Diagnostics, live_panel::LivePanel, member_list::MemberList,
    message_list::MessageList, room_list::RoomList,
};
use crate::connection::ConnState;
use crate::endpoint;
use crate::room::RoomStatus;
use crate::state::{JoinInfo, Session};

/// The signed-in screen: one connection, the room list, the room shown, the live panel.
/// Owns the session for as long as it is shown.
/// - `info`: name and the rooms to join.
/// - `server`: the WebSocket base URL.
/// - `on_sign_out`: back to the join screen.
#[component]
pub fn Workspace(
    info: JoinInfo,
    server: String,
    #[prop(into)] on_sign_out: Callback<()>,
) -> impl IntoView {
    let session = Session::start(&server, info.name.clone(), info.rooms);
    on_cleanup(move || session.close());

    // Typing notices expire without a refresh.
    if let Ok(handle) = set_interval_with_handle(
        move || session.expire_typing(js_sys::Date::now()),
        std::time::Duration::from_millis(500),
    ) {
        on_cleanup(move || handle.clear());
    }

    // The room shown changes only when another room is selected, not on every list change.
    let shown = Memo::new(move |_| session.active.get());
    let shown_room = move || shown.get().and_then(|id| session.room(id.as_str()));
    let fatal = move || matches!(session.conn.get(), ConnState::Closed { .. });
    let http = endpoint::http_base(&server);
    let my_name = info.name;

    view! {
        <header class="topbar">
            <div class="brand"><span class="logo" aria-hidden="true"></span><span>"Switchboard"</span></div>
            <div class="room-title">
                {move || shown.get().map(|room| view! { <span class="hash">"#"</span>{room.to_string()} })}
            </div>
            <ConnectionBadge state=session.conn transport=session.transport on_retry=move |_| session.reconnect_now() />
            <span class="whoami" title="Your name">{my_name.clone()}</span>
            <button class="link sign-out" on:click=move |_| on_sign_out.run(())>"Sign out"</button>
        </header>
        <Show when=move || session.problem.get().is_some()>
            <div class="problem" role="alert">
                <strong>{move || session.problem.get().map(|p| p.title)}</strong>
                <span>{move || session.problem.get().map(|p| p.detail)}</span>
                <button class="link" aria-label="Dismiss" on:click=move |_| session.problem.set(None)>"Dismiss"</button>
            </div>
        </Show>
        <main class="room">
            <aside class="sidebar">
                <RoomList session=session />
                {move || shown_room().map(|room| view! {
                    <MemberList members=room.members online=room.online my_name=my_name.clone()
                        on_more=move |_| session.more_members(&room) />
                })}
            </aside>
            <section class="conversation" aria-label="Conversation">
                {move || match shown_room() {
                    Some(room) => {
                        let refused = move || match room.status.get() {
                            RoomStatus::Refused(reason) => Some(reason),
                            _ => None,
                        };
                        view! {
                            <Show when=move || refused().is_some()>
                                <div class="room-refused" role="alert">
                                    <span>{move || refused().unwrap_or_default()}</span>
                                    <button class="secondary" on:click=move |_| session.retry(&room.id())>"Try again"</button>
                                    <button class="link" on:click=move |_| session.leave(&room.id())>"Leave room"</button>
                                </div>
                            </Show>
                            <MessageList state=room http=http.clone() />
                        }.into_any()
                    }
                    None => view! {
                        <div class="no-room">
                            <p>"You are not in any room."</p>
                            <p class="muted">"Join one from the room list to start chatting."</p>
                        </div>
                    }.into_any(),
                }}
                <Show when=fatal fallback=move || view! {
                    <Composer state=session.conn limits=session.limits
                        enabled=Signal::derive(move || shown.get().is_some())
                        on_send=move |text| session.send_chat(text)
                        on_typing=move |_| session.typing() />
                }>
                    <div class="closed-bar">
                        "This session has ended. "
                        <button class="primary" on:click=move |_| on_sign_out.run(())>"Choose another name"</button>
                    </div>
                </Show>
            </section>
            <aside class="insights">
                {move || shown_room().map(|room| view! { <DataPanel room=room /> })}
                <LivePanel stats=session.stats />
                <Diagnostics session=session server=server />
            </aside>
        </main>
    }
}
