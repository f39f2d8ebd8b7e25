//! A WASI 0.3 command: writes a greeting through `wasi:cli/stdout@0.3.0`'s
//! `write-via-stream` (`examples/p3-hello.wasm`; `weir run` and `wasmtime run` 48 run it).

struct Hello;

impl wasip3::exports::cli::run::Guest for Hello {
    async fn run() -> Result<(), ()> {
        let (mut writer, reader) = wasip3::wit_stream::new();
        let done = wasip3::cli::stdout::write_via_stream(reader);
        let unwritten = writer
            .write_all(b"Hello from a WASI 0.3 component\n".to_vec())
            .await;
        drop(writer);
        let result = done.await;
        if unwritten.is_empty() && result.is_ok() {
            Ok(())
        } else {
            Err(())
        }
    }
}

wasip3::cli::command::export!(Hello);
