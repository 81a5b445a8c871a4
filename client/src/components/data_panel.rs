use leptos::prelude::*;

use crate::numbers::tenths;
use crate::room::{DATA_WINDOW_MS, RoomState, Series};

/// The chart's `viewBox` (kept in step with the view below).
const W: f64 = 120.0;
const H: f64 = 28.0;

/// The shortest time a chart spans, so a few first points do not stretch across it.
const MIN_SPAN_MS: f64 = 20_000.0;

/// SVG polyline points for a series, scaled between its smallest and largest value, over the
/// time its points span (at least [`MIN_SPAN_MS`], at most the data window), newest at the
/// right.
fn sparkline(points: &[(f64, f64)]) -> String {
    let (Some(&(oldest, _)), Some(&(newest, _))) = (points.first(), points.last()) else {
        return String::new();
    };
    let width = (newest - oldest).clamp(MIN_SPAN_MS, DATA_WINDOW_MS);
    let (lo, hi) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    points
        .iter()
        .map(|(t, v)| {
            let x = W - (newest - t) / width * W;
            let y = H - 2.0 - (v - lo) / span * (H - 4.0);
            format!("{},{}", tenths(x), tenths(y))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value as shown: JSON text, shortened. (By characters, not by slicing: a slice brings
/// its panic message's formatting into the bundle.)
fn shown(text: &str) -> String {
    const MAX: usize = 60;
    let mut out: String = text.chars().take(MAX).collect();
    if out.len() < text.len() {
        out.push('\u{2026}');
    }
    out
}

/// The room's live data: the latest value per key, and a chart of the last minutes for
/// numeric keys. The app publishes with `POST /api/v1/rooms/{room}/data`.
/// - `room`: the room shown.
#[component]
pub fn DataPanel(room: RoomState) -> impl IntoView {
    let series = room.data;
    view! {
        <section class="panel data" aria-labelledby="data-title">
            <h2 id="data-title">"Room data"</h2>
            <Show when=move || series.with(|s| !s.is_empty())
                fallback=|| view! { <p class="muted data-empty">"No live data in this room yet."</p> }>
                <ul class="data-list">
                    <For each=move || series.get() key=|s: &Series| (s.key.clone(), s.ts, s.points.len()) let:s>
                        <li class="data-item" data-key=s.key.clone()>
                            <span class="data-key">{s.key.clone()}</span>
                            <span class="data-value">{shown(&s.text)}</span>
                            {(s.points.len() > 1).then(|| view! {
                                <svg class="spark" viewBox="0 0 120 28" preserveAspectRatio="none" role="img"
                                    aria-label=format!("{} over the last 5 minutes", s.key)>
                                    <polyline fill="none" points=sparkline(&s.points) />
                                </svg>
                            })}
                        </li>
                    </For>
                </ul>
            </Show>
        </section>
    }
}
