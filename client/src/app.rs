//! The top level: a join screen, then the workspace (one connection, many rooms).

use leptos::prelude::*;
use shared::RoomId;

use crate::components::{join_form::JoinForm, workspace::Workspace};
use crate::endpoint;
use crate::identity::storage;
use crate::state::{JoinInfo, Session, parse_rooms};

const NAME_KEY: &str = "switchboard.name";

fn remembered_name() -> Option<String> {
    storage()?.get_item(NAME_KEY).ok()?
}

#[component]
pub fn App() -> impl IntoView {
    // `?name=` joins at once, like the tutorial page did; `?room=a,b` names the rooms (deep
    // link), the first one shown.
    let query_rooms = endpoint::query_param("room");
    let from_query = endpoint::query_param("name").map(|name| JoinInfo {
        name,
        rooms: query_rooms
            .as_deref()
            .and_then(|r| parse_rooms(r).ok())
            .unwrap_or_else(|| vec![RoomId::lobby()]),
    });
    let joined = RwSignal::new(from_query);
    let server = endpoint::ws_base();

    let on_join = move |info: JoinInfo| {
        if let Some(s) = storage() {
            let _ = s.set_item(NAME_KEY, &info.name);
        }
        joined.set(Some(info));
    };
    let on_sign_out = move |()| joined.set(None);
    let default_rooms = move || {
        query_rooms
            .clone()
            .or_else(Session::remembered_rooms)
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| RoomId::DEFAULT.into())
    };

    view! {
        <div class="shell">
            {move || match joined.get() {
                Some(info) => view! { <Workspace info=info server=server.clone() on_sign_out=on_sign_out /> }.into_any(),
                None => view! {
                    <JoinForm
                        name=remembered_name().unwrap_or_default()
                        rooms=default_rooms()
                        on_join=on_join
                    />
                }.into_any(),
            }}
        </div>
    }
}
