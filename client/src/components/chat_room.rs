use leptos::prelude::*;
use shared::{ClientMsg, RoomId};

use crate::app::JoinInfo;
use crate::components::{
    composer::Composer, connection_badge::ConnectionBadge, diagnostics::Diagnostics,
    live_panel::LivePanel, member_list::MemberList, message_list::MessageList,
};
use crate::connection::{ConnEvent, ConnState, Connection};
use crate::endpoint;
use crate::identity;
use crate::state::RoomState;
use shared::ServerMsg;

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
    let room = RoomId::parse(&info.room).unwrap_or_else(|_| RoomId::lobby());
    let state = RoomState::new(room.clone(), info.name.clone());
    let token = identity::token();
    let url = {
        let (server, name, room) = (server.clone(), info.name.clone(), room.to_string());
        // Asked before every attempt: a reconnect resumes after the last message seen.
        move || {
            let position = state.position();
            endpoint::chat_url(
                &server,
                &name,
                &room,
                &token,
                position.as_ref().map(|(e, s)| (e.as_str(), *s)),
            )
        }
    };
    let conn = StoredValue::new_local(None::<Connection>);
    let flush_outbox = move || {
        conn.with_value(|c| {
            let Some(c) = c else { return };
            for p in state
                .outbox
                .get_untracked()
                .into_iter()
                .filter(|p| p.acked.is_none())
            {
                if c.send(&ClientMsg::Chat {
                    msg: p.text,
                    id: Some(p.id),
                })
                .is_err()
                {
                    break;
                }
            }
        });
    };
    conn.set_value(Some(Connection::open(url, move |event| {
        let welcomed = matches!(event, ConnEvent::Message(ServerMsg::Welcome(_)));
        state.apply(event);
        if welcomed {
            // Everything still in the outbox goes (again); the server deduplicates by id.
            flush_outbox();
        }
    })));
    on_cleanup(move || {
        conn.with_value(|c| c.as_ref().map(Connection::close))
            .unwrap_or_default()
    });

    // Typing notices expire without a refresh.
    if let Ok(handle) = set_interval_with_handle(
        move || state.expire_typing(js_sys::Date::now()),
        std::time::Duration::from_millis(500),
    ) {
        on_cleanup(move || handle.clear());
    }

    // Sending always goes through the outbox: shown as pending until the server broadcasts it.
    // If the socket is not open it stays there and goes on the next welcome.
    let send = move |text: String| {
        let pending = state.queue(text);
        conn.with_value(|c| {
            c.as_ref().map(|c| {
                c.send(&ClientMsg::Chat {
                    msg: pending.text,
                    id: Some(pending.id),
                })
            })
        });
        Ok(())
    };
    let typing = move || {
        conn.with_value(|c| c.as_ref().map(|c| c.send(&ClientMsg::Typing)));
    };
    let fatal = move || matches!(state.conn.get(), ConnState::Closed { .. });
    let http = endpoint::http_base(&server);
    let room_name = info.room.clone();

    view! {
        <header class="topbar">
            <div class="brand"><span class="logo" aria-hidden="true"></span><span>"Switchboard"</span></div>
            <div class="room-title"><span class="hash">"#"</span>{room_name}</div>
            <ConnectionBadge state=state.conn on_retry=move |_| conn.with_value(|c| c.as_ref().map(Connection::reconnect_now)).unwrap_or_default() />
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
                <MemberList members=state.members my_name=state.my_name.get_value() />
            </aside>
            <section class="conversation" aria-label="Conversation">
                <MessageList state=state http=http />
                <Show when=fatal fallback=move || view! { <Composer state=state.conn limits=state.limits on_send=send on_typing=typing /> }>
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
