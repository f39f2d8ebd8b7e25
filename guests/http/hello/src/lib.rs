//! Example `wasi:http/proxy` handler: answers every request with a greeting.
//!
//! `weir serve examples/http-hello.wasm`, then `curl http://127.0.0.1:8080/`.

#[path = "../../common.rs"]
mod common;

use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        common::respond(
            out,
            200,
            &[("content-type", b"text/plain")],
            b"Hello from a wasi:http component on Weir\n",
        );
    }
}

wasip2::http::proxy::export!(Hello);
