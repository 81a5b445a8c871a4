//! What the client's browser tests share: the test server's address and a sleep.

use wasm_bindgen::JsCast;

/// The `ws://` base URL of the server the test script started, from `SWITCHBOARD_TEST_SERVER`
/// at build time. A run-time failure, not `env!`: the host build (`cargo clippy --workspace`)
/// compiles the tests without a server.
#[allow(clippy::option_env_unwrap)]
pub fn server() -> String {
    option_env!("SWITCHBOARD_TEST_SERVER")
        .expect("SWITCHBOARD_TEST_SERVER must name a running server (scripts/test.sh sets it)")
        .to_owned()
}

pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(resolve.unchecked_ref(), ms)
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}
