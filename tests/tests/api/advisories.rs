//! Known advisories, checked offline against `Cargo.lock`: every version of these crates in the
//! lockfile must be at or above the fixed release.

use std::collections::BTreeMap;

/// (crate, advisory, fixed versions: a version is fine if it is >= one with the same major,
/// or above them all).
const RULES: &[(&str, &str, &[&str])] = &[
    (
        "tungstenite",
        "RUSTSEC-2023-0065 (unbounded header parsing, DoS)",
        &["0.20.1"],
    ),
    (
        "h2",
        "RUSTSEC-2023-0034 (reset flood, resource exhaustion)",
        &["0.3.17"],
    ),
    (
        "h2",
        "RUSTSEC-2024-0003 (resource exhaustion)",
        &["0.3.24", "0.4.2"],
    ),
    (
        "h2",
        "RUSTSEC-2024-0332 (CONTINUATION flood)",
        &["0.3.26", "0.4.4"],
    ),
    (
        "hyper",
        "RUSTSEC-2021-0078 / RUSTSEC-2021-0079 (request smuggling, chunk overflow)",
        &["0.14.10"],
    ),
];

fn parse(v: &str) -> Vec<u64> {
    v.split(['.', '-', '+'])
        .map_while(|p| p.parse().ok())
        .collect()
}

fn locked() -> BTreeMap<String, Vec<String>> {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .expect("Cargo.lock");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_owned());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            out.entry(n)
                .or_default()
                .push(v.trim_matches('"').to_owned());
        }
    }
    out
}

fn is_fixed(version: &str, fixed: &[&str]) -> bool {
    let v = parse(version);
    let fixed: Vec<Vec<u64>> = fixed.iter().map(|f| parse(f)).collect();
    let same_line = fixed
        .iter()
        .find(|f| (f[0] > 0 && f[0] == v[0]) || (f[0] == 0 && v[0] == 0 && f[1] == v[1]));
    match same_line {
        Some(f) => v >= *f,
        None => fixed.iter().all(|f| v > *f),
    }
}

#[test]
fn locked_versions_are_past_known_advisories() {
    let locked = locked();
    assert!(locked.contains_key("tungstenite"), "lockfile not read");
    let mut checked = 0;
    for (krate, advisory, fixed) in RULES {
        for version in locked.get(*krate).into_iter().flatten() {
            assert!(
                is_fixed(version, fixed),
                "{krate} {version} is affected by {advisory}"
            );
            checked += 1;
        }
    }
    println!(
        "advisories: {checked} locked crate versions checked against {} rules",
        RULES.len()
    );
}

#[test]
fn the_version_rule_itself_works() {
    assert!(!is_fixed("0.20.0", &["0.20.1"]));
    assert!(is_fixed("0.29.0", &["0.20.1"]));
    assert!(!is_fixed("0.3.20", &["0.3.24", "0.4.2"]));
    assert!(!is_fixed("0.4.1", &["0.3.24", "0.4.2"]));
    assert!(is_fixed("0.4.12", &["0.3.24", "0.4.2"]));
    assert!(is_fixed("1.12.0", &["0.14.10"]));
    assert!(!is_fixed("0.14.9", &["0.14.10"]));
}
