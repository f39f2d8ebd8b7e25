//! Host bindings for `wasi:http` 0.2.12, generated from the vendored WIT, over Weir's own
//! `wasi:io`, `wasi:clocks`, `wasi:random` and `wasi:cli` bindings (so that bodies are Weir
//! streams and pollables are Weir pollables).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "wasi:http/proxy@0.2.12",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "wasi:io": weir::bindings::wasi::io,
        "wasi:clocks": weir::bindings::wasi::clocks,
        "wasi:random": weir::bindings::wasi::random,
        "wasi:cli": weir::bindings::wasi::cli,
        "wasi:http/types.fields": crate::fields::FieldsResource,
        "wasi:http/types.incoming-request": crate::types::IncomingRequestResource,
        "wasi:http/types.outgoing-request": crate::types::OutgoingRequestResource,
        "wasi:http/types.request-options": crate::types::RequestOptionsResource,
        "wasi:http/types.response-outparam": crate::types::ResponseOutparamResource,
        "wasi:http/types.incoming-response": crate::types::IncomingResponseResource,
        "wasi:http/types.incoming-body": crate::body::IncomingBodyResource,
        "wasi:http/types.future-trailers": crate::body::FutureTrailersResource,
        "wasi:http/types.outgoing-response": crate::types::OutgoingResponseResource,
        "wasi:http/types.outgoing-body": crate::body::OutgoingBodyResource,
        "wasi:http/types.future-incoming-response": crate::types::FutureIncomingResponseResource,
    },
});

pub use wasi::http::types::{ErrorCode, HeaderError, Method, Scheme};
