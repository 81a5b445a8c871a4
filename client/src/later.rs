//! Dropping JavaScript callbacks safely.

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

/// Drops `value` on a zero-delay timer. Closures must outlive the event that is running them,
/// so a callback that ends its socket's (or stream's) life hands the closures here instead of
/// dropping them.
pub(crate) fn drop_later<T: 'static>(value: T) {
    let cb = Closure::once_into_js(move || drop(value));
    if let Some(window) = web_sys::window() {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), 0);
    }
}
