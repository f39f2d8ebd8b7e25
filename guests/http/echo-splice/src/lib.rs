//! `wasi:http/proxy` handler like `echo`, but the body goes from the request's stream to the
//! response's with `blocking-splice`: the bytes never enter guest memory. For the HTTP bench
//! (`benches/http-bench.sh`), beside the copying `echo`.

#[path = "../../common.rs"]
mod common;

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::StreamError;

struct EchoSplice;

impl wasip2::exports::http::incoming_handler::Guest for EchoSplice {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let headers = Fields::new();
        for value in request.headers().get("content-type") {
            let _ = headers.append("content-type", &value);
        }
        let response = OutgoingResponse::new(headers);
        let outgoing = response.body().expect("the body is taken once");
        ResponseOutparam::set(out, Ok(response));

        let incoming = request.consume().expect("the body is taken once");
        let input = incoming.stream().expect("the stream is taken once");
        let output = outgoing.write().expect("the stream is taken once");
        let spliced = loop {
            match output.blocking_splice(&input, 1 << 20) {
                Ok(_) => {}
                Err(StreamError::Closed) => break common::flush(&output),
                Err(error) => break Err(error),
            }
        };
        drop(input);
        drop(output);
        drop(IncomingBody::finish(incoming));
        if spliced.is_ok() {
            let _ = OutgoingBody::finish(outgoing, None);
        }
    }
}

wasip2::http::proxy::export!(EchoSplice);
