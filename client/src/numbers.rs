//! Numbers as text without the float formatter (`{:.1}` or `{}` of an `f64` pulls Rust's float
//! printing, about 10 KB of gzipped bundle, into the WebAssembly build), and the spread of a few
//! samples without the standard sort (another few KB for one use).

/// `v` rounded to one decimal: `12.34` → `"12.3"`, `-0.06` → `"-0.1"`.
pub fn tenths(v: f64) -> String {
    let t = (v * 10.0).round() as i64;
    let sign = if t < 0 { "-" } else { "" };
    let t = t.unsigned_abs();
    format!("{sign}{}.{}", t / 10, t % 10)
}

/// `(min, median, max)` of a few samples (sorted in place by insertion). Empty → zeros.
pub fn spread(samples: &mut [f64]) -> (f64, f64, f64) {
    for i in 1..samples.len() {
        let mut j = i;
        while j > 0 && samples[j - 1] > samples[j] {
            samples.swap(j - 1, j);
            j -= 1;
        }
    }
    match samples {
        [] => (0.0, 0.0, 0.0),
        s => (s[0], s[s.len() / 2], s[s.len() - 1]),
    }
}
