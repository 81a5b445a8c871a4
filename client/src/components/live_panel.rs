use std::collections::VecDeque;

use leptos::prelude::*;
use shared::Stats;

use crate::numbers::tenths;
use crate::state::CHART_POINTS;

/// The chart's `viewBox` (kept in step with the view below).
const W: f64 = 300.0;
const H: f64 = 90.0;

/// SVG polyline points for `values`, scaled to the chart, right-aligned (newest at the right).
fn polyline(values: &[f64], max: f64) -> String {
    let step = W / (CHART_POINTS - 1) as f64;
    let offset = CHART_POINTS.saturating_sub(values.len()) as f64 * step;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{},{}",
                tenths(offset + i as f64 * step),
                tenths(H - (v / max) * (H - 6.0) - 3.0)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn nice_max(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(0.0, f64::max);
    if max <= 5.0 { 5.0 } else { (max * 1.2).ceil() }
}

/// The axis maximum as text (a whole number).
fn max_label(values: &[f64]) -> String {
    (nice_max(values) as u64).to_string()
}

fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// The live feed: current figures and a one-minute chart of messages/s and connections.
/// - `stats`: the feed's recent points, oldest first.
#[component]
pub fn LivePanel(stats: RwSignal<VecDeque<Stats>>) -> impl IntoView {
    let latest = move || stats.with(|s| s.back().cloned());
    let series = move |f: fn(&Stats) -> f64| stats.with(|s| s.iter().map(f).collect::<Vec<f64>>());
    let rate = move || series(|s| s.messages_per_sec as f64);
    let conns = move || series(|s| s.connections as f64);
    let figure =
        move |f: fn(&Stats) -> String| move || latest().map_or("–".to_owned(), |s| f(&s));
    view! {
        <section class="panel live" aria-labelledby="live-title">
            <h2 id="live-title">"Live" <span class="pulse" aria-hidden="true"></span></h2>
            <dl class="figures">
                <div><dt>"Messages/s"</dt><dd class="fig-rate">{figure(|s| s.messages_per_sec.to_string())}</dd></div>
                <div><dt>"Connections"</dt><dd class="fig-conns">{figure(|s| s.connections.to_string())}</dd></div>
                <div><dt>"Rooms"</dt><dd>{figure(|s| s.rooms.to_string())}</dd></div>
                <div><dt>"Uptime"</dt><dd>{figure(|s| uptime(s.uptime_secs))}</dd></div>
            </dl>
            <svg class="chart" viewBox="0 0 300 90" preserveAspectRatio="none" role="img"
                aria-label="Messages per second and connections over the last minute">
                <line class="grid" x1="0" y1="45" x2="300" y2="45" />
                <line class="grid" x1="0" y1="89" x2="300" y2="89" />
                <polyline class="series-conns" fill="none"
                    points=move || { let v = conns(); polyline(&v, nice_max(&v)) } />
                <polyline class="series-rate" fill="none"
                    points=move || { let v = rate(); polyline(&v, nice_max(&v)) } />
            </svg>
            <div class="legend">
                <span class="key key-rate">"messages/s (max " {move || max_label(&rate())} ")"</span>
                <span class="key key-conns">"connections (max " {move || max_label(&conns())} ")"</span>
                <span class="muted">"last 60 s"</span>
            </div>
        </section>
    }
}
