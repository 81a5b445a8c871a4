//! The top level: a join screen, then the workspace (one connection, many rooms).

use leptos::prelude::*;
use shared::RoomId;

use crate::components::{join_form::JoinForm, workspace::Workspace};
use crate::endpoint;
use crate::identity::storage;
use crate::state::{JoinInfo, Session, parse_rooms};
use crate::token::{self, TokenError};

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
    // Signed user tokens: the app knows who the user is. No name to pick: the first token
    // names them, and the workspace opens at once.
    let token_url = token::token_url();
    let signing_in = RwSignal::new(None::<String>);
    if let (Some(url), None) = (token_url.clone(), joined.get_untracked()) {
        signing_in.set(Some("Signing in\u{2026}".into()));
        let rooms = query_rooms
            .clone()
            .or_else(Session::remembered_rooms)
            .and_then(|r| parse_rooms(&r).ok())
            .unwrap_or_else(|| vec![RoomId::lobby()]);
        wasm_bindgen_futures::spawn_local(async move {
            match token::fetch(&url).await {
                Ok(t) => match token::name_of(&t) {
                    Some(name) => {
                        signing_in.set(None);
                        joined.set(Some(JoinInfo { name, rooms }));
                    }
                    None => signing_in.set(Some("The sign-in token names nobody.".into())),
                },
                Err(TokenError::Refused(status)) => signing_in.set(Some(format!(
                    "You are not signed in ({status}). Sign in to the app, then reload this page."
                ))),
                Err(TokenError::Unavailable(why)) => {
                    signing_in.set(Some(format!("Cannot sign in: {why}. Reload to try again.")));
                }
            }
        });
    }

    let on_join = move |info: JoinInfo| {
        if let Some(s) = storage() {
            let _ = s.set_item(NAME_KEY, &info.name);
        }
        joined.set(Some(info));
    };
    let signed_in_by_app = token_url.is_some();
    let on_sign_out = move |()| {
        if signed_in_by_app {
            signing_in.set(Some("You left every room. Reload to come back.".into()));
        }
        joined.set(None);
    };
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
                None if signed_in_by_app => view! {
                    <main class="join">
                        <div class="card join-card">
                            <div class="brand brand-large">
                                <span class="logo" aria-hidden="true"></span>
                                <span>"Switchboard"</span>
                            </div>
                            <p class="lede signin-status" role="status">{move || signing_in.get()}</p>
                        </div>
                    </main>
                }.into_any(),
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
