use leptos::prelude::*;
use shared::Member;

/// Who is online in the room, with how many connections each has; a member whose connections
/// all dropped is shown as reconnecting until the grace period ends.
/// In a room too large for the server to list, the count of everyone online and the members
/// paged so far, with a button for the next page.
/// - `members`: the room's members (or the pages of them loaded).
/// - `online`: how many members the room has.
/// - `my_name`: this page's name, marked "you".
/// - `on_more`: asks for the next page.
#[component]
pub fn MemberList(
    members: RwSignal<Vec<Member>>,
    online: RwSignal<u32>,
    my_name: String,
    #[prop(into)] on_more: Callback<()>,
) -> impl IntoView {
    let paged = move || members.with(Vec::len) < online.get() as usize;
    view! {
        <section class="panel members" aria-labelledby="members-title">
            <h2 id="members-title"><span class="count">{move || grouped(online.get())}</span>" online"</h2>
            <ul>
                <For each=move || members.get() key=|m| (m.name.clone(), m.connections) children=move |m| {
                    let mine = m.name == my_name;
                    // Upper-cased by the stylesheet (`text-transform`): Rust's case tables would cost the
                    // bundle about 14 KB.
                    let initial = m.name.chars().next().map(String::from).unwrap_or_default();
                    let detail = match m.connections {
                        0 => Some("reconnecting…".to_owned()),
                        1 => None,
                        n => Some(format!("{n} tabs")),
                    };
                    view! {
                        <li class=if m.connections == 0 { "member away" } else { "member" }>
                            <span class="avatar" aria-hidden="true">{initial}</span>
                            <span class="member-name">{m.name.clone()}</span>
                            {mine.then(|| view! { <span class="you">"you"</span> })}
                            {detail.map(|d| view! { <span class="member-detail">{d}</span> })}
                        </li>
                    }
                } />
            </ul>
            <Show when=paged>
                <p class="members-more muted">
                    {move || format!("Showing {} of {}", grouped(members.with(Vec::len) as u32), grouped(online.get()))}
                    " "
                    <button class="link" on:click=move |_| on_more.run(())>"Show more"</button>
                </p>
            </Show>
        </section>
    }
}

/// A count with thousands separators: 1234 → "1,234".
fn grouped(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
