//! `wasi:http/proxy` handler like `echo`, but the body goes from the request's stream to the
//! response's with `blocking-splice`: the bytes never enter guest memory. For the HTTP bench
//! (`benches/http-bench.sh`), beside the copying `echo`.

#[path = "../../common.rs"]
mod common;

use wasip2::http::types::{IncomingRequest, ResponseOutparam};
use wasip2::io::streams::StreamError;

struct EchoSplice;

impl wasip2::exports::http::incoming_handler::Guest for EchoSplice {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        common::echo(request, out, |input, output| loop {
            match output.blocking_splice(input, 1 << 20) {
                Ok(_) => {}
                Err(StreamError::Closed) => break common::flush(output),
                Err(error) => break Err(error),
            }
        });
    }
}

wasip2::http::proxy::export!(EchoSplice);
