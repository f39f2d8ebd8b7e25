//! Example `wasi:http/proxy` handler: streams the request body back as the response body,
//! with the request's `content-type`, never holding more than one 64 KiB read.
//!
//! `weir serve examples/http-echo.wasm`, then `curl --data-binary @FILE http://127.0.0.1:8080/`.

#[path = "../../common.rs"]
mod common;

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Echo;

impl wasip2::exports::http::incoming_handler::Guest for Echo {
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
        let copied = common::copy(&input, &output).and_then(|_| common::flush(&output));
        drop(input);
        drop(output);
        drop(IncomingBody::finish(incoming));
        if copied.is_ok() {
            let _ = OutgoingBody::finish(outgoing, None);
        }
    }
}

wasip2::http::proxy::export!(Echo);
