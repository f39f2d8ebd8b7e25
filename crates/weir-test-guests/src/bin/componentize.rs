//! `componentize [--proxy|--reactor] CORE.wasm OUT.wasm`: turns a `wasm32-wasip1` core
//! module into a command component with the preview1 adapter; with `--proxy` a reactor into
//! a `wasi:http/proxy` component (proxy adapter); with `--reactor` a reactor whose exports
//! come from its own bindings (reactor adapter). Used to build `examples/*.wasm`.
fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some(flag @ ("--proxy" | "--reactor")) => {
            let flag = flag.to_string();
            args.remove(0);
            flag
        }
        _ => String::new(),
    };
    let [input, output] = args.as_slice() else {
        anyhow::bail!("usage: componentize [--proxy|--reactor] CORE.wasm OUT.wasm");
    };
    let core = std::fs::read(input).map_err(|e| anyhow::anyhow!("reading {input}: {e}"))?;
    let component = match mode.as_str() {
        "--proxy" => weir_test_guests::componentize_wasip1_proxy(&core)?,
        "--reactor" => weir_test_guests::componentize_wasip1_reactor(&core)?,
        _ => weir_test_guests::componentize_wasip1(&core)?,
    };
    std::fs::write(output, component).map_err(|e| anyhow::anyhow!("writing {output}: {e}"))?;
    Ok(())
}
