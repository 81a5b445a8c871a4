//! The outbox's stored form in `localStorage`, in headless Chromium: what this version writes
//! reads back, and what earlier versions wrote (serde's `"acked":null`) still loads.

use client::identity::{Pending, decode_outbox, encode_outbox};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn an_outbox_reads_back_as_it_was_written() {
    let outbox = [
        Pending {
            id: "a1".into(),
            text: "quote \" backslash \\ newline \n émoji 😀".into(),
            acked: None,
        },
        Pending {
            id: "a2".into(),
            text: String::new(),
            acked: None,
        },
    ];
    let stored = encode_outbox(&outbox.iter().collect::<Vec<_>>());
    assert_eq!(decode_outbox(&stored), Some(outbox.to_vec()));
    assert_eq!(decode_outbox("[]"), Some(Vec::new()));
}

#[wasm_bindgen_test]
fn an_outbox_saved_by_an_earlier_version_still_loads() {
    let earlier = r#"[{"id":"m1","text":"hello","acked":null}]"#;
    assert_eq!(
        decode_outbox(earlier),
        Some(vec![Pending {
            id: "m1".into(),
            text: "hello".into(),
            acked: None,
        }])
    );
}

#[wasm_bindgen_test]
fn anything_else_in_storage_is_not_an_outbox() {
    for bad in [
        "",
        "{",
        "{}",
        r#"[{"id":"m1"}]"#,
        r#"[{"id":1,"text":"x"}]"#,
    ] {
        assert_eq!(decode_outbox(bad), None, "{bad}");
    }
}
