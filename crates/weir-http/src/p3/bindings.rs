//! Host bindings for `wasi:http@0.3.0` (the `service` world), generated from the vendored
//! WIT (`wit/p3`), over Weir's own WASI 0.3 bindings.

wasmtime::component::bindgen!({
    path: "../../wit/p3",
    world: "wasi:http/service",
    require_store_data_send: true,
    imports: {
        "wasi:http/types.[drop]request": store | trappable,
        "wasi:http/types.[drop]response": store | trappable,
        "wasi:http/types.[static]request.new": store | trappable,
        "wasi:http/types.[static]request.consume-body": store | trappable,
        "wasi:http/types.[static]response.new": store | trappable,
        "wasi:http/types.[static]response.consume-body": store | trappable,
        "wasi:http/client.send": async | store | trappable,
        default: trappable,
    },
    exports: { default: async | store },
    with: {
        "wasi:cli": weir::p3::bindings::wasi::cli,
        "wasi:clocks": weir::p3::bindings::wasi::clocks,
        "wasi:random": weir::p3::bindings::wasi::random,
        "wasi:http/types.fields": crate::fields::FieldsResource,
        "wasi:http/types.request": crate::p3::Request,
        "wasi:http/types.response": crate::p3::Response,
        "wasi:http/types.request-options": crate::p3::RequestOptions,
    },
});
