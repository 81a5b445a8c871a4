//! Measures WebSocket round-trip time against the server's `/echo` endpoint: opens a socket,
//! sends `count` timestamps one after another, and reports each round trip in milliseconds.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{MessageEvent, WebSocket};

type Done = Box<dyn FnOnce(Result<Vec<f64>, String>)>;

struct Probe {
    socket: WebSocket,
    remaining: u32,
    sent_at: f64,
    samples: Vec<f64>,
    done: Option<Done>,
    /// The socket's callbacks; they hold the probe, so they are released when it finishes.
    callbacks: Vec<Closure<dyn FnMut(wasm_bindgen::JsValue)>>,
}

fn now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

impl Probe {
    fn send_next(&mut self) {
        self.sent_at = now();
        // Numbered by the round trips left (an integer: no float formatting in the bundle).
        let _ = self
            .socket
            .send_with_str(&format!("rtt {}", self.remaining));
    }

    fn finish(&mut self, result: Result<Vec<f64>, String>) {
        if let Some(done) = self.done.take() {
            crate::connection::detach(&self.socket);
            let _ = self.socket.close();
            crate::later::drop_later(std::mem::take(&mut self.callbacks));
            done(result);
        }
    }
}

/// Runs the probe; `done` is called once with the samples or an error.
pub fn measure(url: &str, count: u32, done: impl FnOnce(Result<Vec<f64>, String>) + 'static) {
    let socket = match WebSocket::new(url) {
        Ok(s) => s,
        Err(_) => return done(Err(format!("cannot open {url}"))),
    };
    let probe = Rc::new(RefCell::new(None::<Probe>));
    let on_open = Closure::<dyn FnMut(wasm_bindgen::JsValue)>::new({
        let probe = probe.clone();
        move |_| {
            if let Some(p) = probe.borrow_mut().as_mut() {
                p.send_next();
            }
        }
    });
    let on_message = Closure::<dyn FnMut(wasm_bindgen::JsValue)>::new({
        let probe = probe.clone();
        move |e: wasm_bindgen::JsValue| {
            let mut slot = probe.borrow_mut();
            let Some(p) = slot.as_mut() else { return };
            let expected = format!("rtt {}", p.remaining);
            if e.unchecked_into::<MessageEvent>()
                .data()
                .as_string()
                .as_deref()
                != Some(&expected)
            {
                return p.finish(Err("echo returned a different frame".into()));
            }
            p.samples.push(now() - p.sent_at);
            p.remaining -= 1;
            if p.remaining == 0 {
                let samples = std::mem::take(&mut p.samples);
                p.finish(Ok(samples));
            } else {
                p.send_next();
            }
        }
    });
    let on_close = Closure::<dyn FnMut(wasm_bindgen::JsValue)>::new({
        let probe = probe.clone();
        move |_| {
            if let Some(p) = probe.borrow_mut().as_mut() {
                p.finish(Err("the echo socket closed".into()));
            }
        }
    });
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    *probe.borrow_mut() = Some(Probe {
        socket,
        remaining: count.max(1),
        sent_at: 0.0,
        samples: Vec::new(),
        done: Some(Box::new(done)),
        callbacks: vec![on_open, on_message, on_close],
    });
}
