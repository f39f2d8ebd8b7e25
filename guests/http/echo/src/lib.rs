//! Example `wasi:http/proxy` handler: streams the request body back as the response body,
//! with the request's `content-type`, never holding more than one 64 KiB read.
//!
//! `weir serve examples/http-echo.wasm`, then `curl --data-binary @FILE http://127.0.0.1:8080/`.

#[path = "../../common.rs"]
mod common;

use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Echo;

impl wasip2::exports::http::incoming_handler::Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        common::echo(request, out, |input, output| {
            common::copy(input, output).and_then(|_| common::flush(output))
        });
    }
}

wasip2::http::proxy::export!(Echo);
