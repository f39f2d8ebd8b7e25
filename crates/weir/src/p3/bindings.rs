//! Host bindings for WASI 0.3.0, generated from the vendored WIT (`wit/p3`).
//!
//! Functions that hand out or take `stream`/`future` values get the store (`store`);
//! `async func`s of the WIT are async host functions. The 0.3 resources of `wasi:cli` are
//! Weir's (the same `TerminalInput`/`TerminalOutput` as 0.2).

wasmtime::component::bindgen!({
    path: "../../wit/p3",
    world: "weir:host-p3/command",
    require_store_data_send: true,
    imports: {
        "wasi:cli/stdin": store | trappable,
        "wasi:cli/stdout": store | trappable,
        "wasi:cli/stderr": store | trappable,
        "wasi:sockets/types.[method]tcp-socket.listen": store | trappable,
        "wasi:sockets/types.[method]tcp-socket.send": store | trappable,
        "wasi:sockets/types.[method]tcp-socket.receive": store | trappable,
        "wasi:filesystem/types.[method]descriptor.read-via-stream": store | trappable,
        "wasi:filesystem/types.[method]descriptor.write-via-stream": store | trappable,
        "wasi:filesystem/types.[method]descriptor.append-via-stream": store | trappable,
        "wasi:filesystem/types.[method]descriptor.read-directory": store | trappable,
        default: trappable,
    },
    exports: { default: async | store },
    with: {
        "wasi:cli/terminal-input.terminal-input": crate::cli::TerminalInput,
        "wasi:cli/terminal-output.terminal-output": crate::cli::TerminalOutput,
        "wasi:sockets/types.udp-socket": crate::p3::sockets::UdpSocket,
        "wasi:sockets/types.tcp-socket": crate::p3::sockets::TcpSocket,
        // The same descriptors as 0.2's: one table entry type, one set of capability checks.
        "wasi:filesystem/types.descriptor": crate::filesystem::Descriptor,
    },
});
