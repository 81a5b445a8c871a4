//! Numbers as text without the float formatter (`{:.1}` pulls Rust's float printing, about
//! 10 KB of the bundle, into the WebAssembly build).

/// `v` rounded to one decimal: `12.34` → `"12.3"`, `-0.06` → `"-0.1"`.
pub fn tenths(v: f64) -> String {
    let t = (v * 10.0).round() as i64;
    let sign = if t < 0 { "-" } else { "" };
    let t = t.unsigned_abs();
    format!("{sign}{}.{}", t / 10, t % 10)
}
