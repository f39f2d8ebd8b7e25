//! `componentize [--proxy] CORE.wasm OUT.wasm`: turns a `wasm32-wasip1` core module into a
//! command component with the preview1 adapter, or with `--proxy` a reactor into a
//! `wasi:http/proxy` component with the proxy adapter (used to build `examples/*.wasm`).
fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let proxy = args.first().is_some_and(|a| a == "--proxy");
    if proxy {
        args.remove(0);
    }
    let [input, output] = args.as_slice() else {
        anyhow::bail!("usage: componentize [--proxy] CORE.wasm OUT.wasm");
    };
    let core = std::fs::read(input).map_err(|e| anyhow::anyhow!("reading {input}: {e}"))?;
    let component = if proxy {
        weir_test_guests::componentize_wasip1_proxy(&core)?
    } else {
        weir_test_guests::componentize_wasip1(&core)?
    };
    std::fs::write(output, component).map_err(|e| anyhow::anyhow!("writing {output}: {e}"))?;
    Ok(())
}
