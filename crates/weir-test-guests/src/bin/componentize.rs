//! `componentize CORE.wasm OUT.wasm`: turns a `wasm32-wasip1` core module into a command
//! component with the preview1 adapter (used to build `examples/*.wasm`).
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        anyhow::bail!("usage: componentize CORE.wasm OUT.wasm");
    };
    let core = std::fs::read(input).map_err(|e| anyhow::anyhow!("reading {input}: {e}"))?;
    let component = weir_test_guests::componentize_wasip1(&core)?;
    std::fs::write(output, component).map_err(|e| anyhow::anyhow!("writing {output}: {e}"))?;
    Ok(())
}
