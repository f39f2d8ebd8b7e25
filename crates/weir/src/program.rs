//! Loading what a user hands to a WASI host: a component or a core module, as binary,
//! WAT text or Wasmtime-precompiled code (`.cwasm`), told apart by its contents, with a
//! one-line error for anything else.
//!
//! ```no_run
//! # fn main() -> wasmtime::Result<()> {
//! let engine = wasmtime::Engine::default();
//! match weir::program::Program::from_file(&engine, "examples/hello-p1.wasm".as_ref(), false)? {
//!     weir::program::Program::Component(_) => println!("a component"),
//!     weir::program::Program::Module(_) => println!("a core module (WASI preview1)"),
//! }
//! # Ok(()) }
//! ```

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::{CodeBuilder, CodeHint, Engine, Module, Precompiled};

/// A loaded program.
#[derive(Clone)]
pub enum Program {
    /// A component (run through `wasi:cli/run` or an export).
    Component(Component),
    /// A core module (run through `_start`, with WASI preview1).
    Module(Module),
}

impl Program {
    /// Loads the file at `path`: binary or WAT, a component or a core module. Precompiled
    /// code (from [`Program::serialize`] or `wasmtime compile`) is loaded only when
    /// `allow_precompiled` is set: such files are native code that Wasmtime trusts without
    /// validation, so only files the user vouches for may be run.
    pub fn from_file(
        engine: &Engine,
        path: &Path,
        allow_precompiled: bool,
    ) -> wasmtime::Result<Program> {
        let shown = path.display();
        if path.is_dir() {
            wasmtime::bail!(
                "`{shown}` is a directory: expected a WebAssembly component or module file"
            );
        }
        let bytes = std::fs::read(path)
            .map_err(|error| wasmtime::format_err!("cannot read `{shown}`: {error}"))?;
        Self::from_bytes(engine, &bytes, &shown.to_string(), allow_precompiled)
    }

    /// Loads `bytes` (see [`Program::from_file`]); `name` names them in errors.
    pub fn from_bytes(
        engine: &Engine,
        bytes: &[u8],
        name: &str,
        allow_precompiled: bool,
    ) -> wasmtime::Result<Program> {
        if let Some(kind) = Engine::detect_precompiled(bytes) {
            if !allow_precompiled {
                wasmtime::bail!(
                    "`{name}` is precompiled code: running it requires the \
                     `--allow-precompiled` flag (only run precompiled files you trust)"
                );
            }
            let loaded = match kind {
                Precompiled::Module => {
                    crate::sys::deserialize_module(engine, bytes).map(Self::Module)
                }
                Precompiled::Component => {
                    crate::sys::deserialize_component(engine, bytes).map(Self::Component)
                }
            };
            return loaded.map_err(|error| {
                error.context(format!(
                    "cannot load precompiled `{name}` (it must come from this version of \
                     Wasmtime with the same engine options)"
                ))
            });
        }
        check_is_webassembly(bytes, name)?;
        let mut code = CodeBuilder::new(engine);
        code.wasm_binary_or_text(bytes, Some(Path::new(name)))
            .map_err(|error| error.context(format!("`{name}` is not valid WebAssembly text")))?;
        match code.hint() {
            Some(CodeHint::Component) => code
                .compile_component()
                .map(Self::Component)
                .map_err(|error| error.context(format!("cannot load component `{name}`"))),
            Some(CodeHint::Module) | None => code
                .compile_module()
                .map(Self::Module)
                .map_err(|error| error.context(format!("cannot load module `{name}`"))),
        }
    }

    /// The compiled native code, for [`Program::from_bytes`] with `allow_precompiled` on an
    /// engine configured the same way (what `weir compile` writes).
    pub fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        match self {
            Program::Component(component) => component.serialize(),
            Program::Module(module) => module.serialize(),
        }
    }
}

/// A one-line refusal of bytes that are neither a WebAssembly binary nor text that could be
/// WAT (which starts with `(` after whitespace and comments).
fn check_is_webassembly(bytes: &[u8], name: &str) -> wasmtime::Result<()> {
    const EXPECTED: &str = "expected a WebAssembly component or module (binary, or WAT text)";
    if bytes.is_empty() {
        wasmtime::bail!("`{name}` is empty: {EXPECTED}");
    }
    if bytes.starts_with(b"\0asm") {
        return Ok(());
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        wasmtime::bail!("`{name}` is not WebAssembly (no `\\0asm` header): {EXPECTED}");
    };
    if !starts_like_wat(text) {
        wasmtime::bail!("`{name}` is text but not WAT (it does not start with `(`): {EXPECTED}");
    }
    Ok(())
}

/// Whether `text` begins, after whitespace and `;;`/`(; ;)` comments, with `(`.
fn starts_like_wat(mut text: &str) -> bool {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix(";;") {
            text = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = text.strip_prefix("(;") {
            match rest.split_once(";)") {
                Some((_, after)) => text = after,
                None => return false,
            }
        } else {
            return text.starts_with('(');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(bytes: &[u8]) -> String {
        match Program::from_bytes(&Engine::default(), bytes, "x.wasm", false) {
            Ok(_) => panic!("loaded"),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn non_webassembly_gets_one_line_errors() {
        assert_eq!(
            error_of(b""),
            "`x.wasm` is empty: expected a WebAssembly component or module (binary, or WAT text)"
        );
        assert!(error_of(b"hello world\n").starts_with("`x.wasm` is text but not WAT"));
        assert!(
            error_of(b"\x7fELF\x02\x01\x01\0\0\xff").starts_with("`x.wasm` is not WebAssembly")
        );
        for message in [error_of(b""), error_of(b"hello"), error_of(b"\x7fELF\xff")] {
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn wat_text_is_told_apart() {
        let engine = Engine::default();
        let module = ";; a comment\n(; block ;) (module)";
        assert!(matches!(
            Program::from_bytes(&engine, module.as_bytes(), "m.wat", false),
            Ok(Program::Module(_))
        ));
        assert!(matches!(
            Program::from_bytes(&engine, b"(component)", "c.wat", false),
            Ok(Program::Component(_))
        ));
        assert!(error_of(b"(module (func $f (result i32)))").contains("cannot load module"));
    }

    #[test]
    fn precompiled_code_needs_consent_and_round_trips() -> wasmtime::Result<()> {
        let engine = Engine::default();
        for source in ["(module (func (export \"f\")))", "(component)"] {
            let compiled =
                Program::from_bytes(&engine, source.as_bytes(), "p", false)?.serialize()?;
            let refused = Program::from_bytes(&engine, &compiled, "p.cwasm", false)
                .err()
                .map(|error| error.to_string());
            assert!(refused.is_some_and(|m| m.contains("--allow-precompiled")));
            let loaded = Program::from_bytes(&engine, &compiled, "p.cwasm", true)?;
            assert_eq!(
                matches!(loaded, Program::Component(_)),
                source.starts_with("(component")
            );
        }
        Ok(())
    }

    #[test]
    fn precompiled_code_for_another_configuration_is_refused() -> wasmtime::Result<()> {
        let compiled =
            Program::from_bytes(&Engine::default(), b"(module)", "p", false)?.serialize()?;
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config)?;
        let message = Program::from_bytes(&other, &compiled, "p.cwasm", true)
            .err()
            .map(|error| format!("{error:#}"));
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("cannot load precompiled `p.cwasm`")),
            "{message:?}"
        );
        Ok(())
    }
}
