//! `--invoke`: calling one export instead of the program's entry point, with the argument
//! syntax and result printing of `wasmtime run --invoke`.
//!
//! Components take a WAVE call, `--invoke 'name(arg, …)'`, and print their results in WAVE
//! on one line. Core modules take `--invoke name` followed by one argument per parameter
//! (integers in decimal or `0x` hex, floats), and print each result on its own line.

use anyhow::{Context, Result, bail};
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::wasm_wave::untyped::UntypedFuncCall;
use wasmtime::component::wasm_wave::wasm::{DisplayFuncResults, WasmFunc};
use wasmtime::component::{Component, ComponentExportIndex, Linker, Val};
use wasmtime::{Engine, Store};

/// Calls the export `call` names (e.g. `greet("x")`, `pkg:ns/iface.f(1)`) and returns the
/// results as wasmtime prints them.
pub async fn call_component_export<T: Send + 'static>(
    store: &mut Store<T>,
    linker: &Linker<T>,
    component: &Component,
    call: &str,
) -> Result<String> {
    let parsed = UntypedFuncCall::parse(call).map_err(|error| {
        anyhow::anyhow!(
            "cannot parse --invoke `{call}`: {error} (expected a WAVE call such as \
             `name(1, \"text\", [1, 2], {{field: 3}})`)"
        )
    })?;
    let name = parsed.name().to_string();
    let (index, func_type) = find_component_func(store.engine(), component, &name)?;
    let param_types: Vec<_> = WasmFunc::params(&func_type).collect();
    let params = parsed
        .to_wasm_params::<Val>(&param_types)
        .map_err(|error| anyhow::anyhow!("{error}"))
        .with_context(|| format!("the arguments of --invoke `{call}` do not fit `{name}`"))?;
    let instance = linker
        .instantiate_async(&mut *store, component)
        .await
        .map_err(anyhow::Error::from)?;
    let func = instance
        .get_func(&mut *store, index)
        .with_context(|| format!("the export `{name}` is not a function"))?;
    let mut results = vec![Val::Bool(false); func_type.results().len()];
    func.call_async(&mut *store, &params, &mut results)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(DisplayFuncResults(&results).to_string())
}

/// Finds an exported function by its full name (`f`, `iface.f`, `pkg:ns/iface.f@1.0.0`), or
/// by its bare name inside exactly one exported instance.
fn find_component_func(
    engine: &Engine,
    component: &Component,
    name: &str,
) -> Result<(ComponentExportIndex, ComponentFunc)> {
    let func_at = |index: Option<&ComponentExportIndex>, leaf: &str| match component
        .get_export(index, leaf)
    {
        Some((ComponentItem::ComponentFunc(func), index)) => Some((index, func)),
        _ => None,
    };
    if let Some(found) = func_at(None, name) {
        return Ok(found);
    }
    // wasmtime's item names: `iface.f`, `pkg:ns/iface.f`, `pkg:ns/iface.f@1.0.0` (the
    // version belongs to the instance).
    let (base, version) = match name.split_once('@') {
        Some((base, version)) => (base, Some(version)),
        None => (name, None),
    };
    if let Some((interface, leaf)) = base.rsplit_once('.') {
        let instance = match version {
            Some(version) => format!("{interface}@{version}"),
            None => interface.to_string(),
        };
        return component
            .get_export_index(None, &instance)
            .and_then(|instance| func_at(Some(&instance), leaf))
            .with_context(|| format!("the component exports no function named `{name}`"));
    }
    let mut candidates = Vec::new();
    for (instance_name, item) in component.component_type().exports(engine) {
        let ComponentItem::ComponentInstance(instance_type) = item.ty else {
            continue;
        };
        if instance_type.exports(engine).any(|(leaf, _)| leaf == name) {
            candidates.push(instance_name.to_string());
        }
    }
    match candidates.as_slice() {
        [] => bail!("the component exports no function named `{name}`"),
        [instance_name] => {
            let instance = component.get_export_index(None, instance_name);
            instance
                .and_then(|instance| func_at(Some(&instance), name))
                .with_context(|| format!("`{instance_name}.{name}` is not a function"))
        }
        several => bail!(
            "`{name}` is exported by several instances ({}): name one, as in `{}.{name}(…)`",
            several.join(", "),
            several[0]
        ),
    }
}

/// Parses one command-line argument as a core wasm parameter of type `ty`.
pub fn core_argument(text: &str, ty: &wasmtime::ValType) -> Result<wasmtime::Val> {
    use wasmtime::{Val, ValType};
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
    let bad = || format!("argument `{text}` is not a valid {ty}");
    Ok(match ty {
        ValType::I32 => Val::I32(
            match hex {
                Some(digits) => u32::from_str_radix(digits, 16).map(|v| v as i32),
                None => text
                    .parse::<i32>()
                    .or_else(|_| text.parse::<u32>().map(|v| v as i32)),
            }
            .with_context(bad)?,
        ),
        ValType::I64 => Val::I64(
            match hex {
                Some(digits) => u64::from_str_radix(digits, 16).map(|v| v as i64),
                None => text
                    .parse::<i64>()
                    .or_else(|_| text.parse::<u64>().map(|v| v as i64)),
            }
            .with_context(bad)?,
        ),
        ValType::F32 => Val::F32(text.parse::<f32>().with_context(bad)?.to_bits()),
        ValType::F64 => Val::F64(text.parse::<f64>().with_context(bad)?.to_bits()),
        other => bail!("--invoke: parameters of type {other} cannot be given on the command line"),
    })
}

/// One core wasm result as `wasmtime run --invoke` prints it.
pub fn core_result(value: &wasmtime::Val) -> String {
    use wasmtime::Val;
    match value {
        Val::I32(v) => v.to_string(),
        Val::I64(v) => v.to_string(),
        Val::F32(bits) => f32::from_bits(*bits).to_string(),
        Val::F64(bits) => f64::from_bits(*bits).to_string(),
        Val::V128(v) => v.as_u128().to_string(),
        Val::FuncRef(None) => "<null funcref>".into(),
        Val::FuncRef(Some(_)) => "<funcref>".into(),
        Val::ExternRef(None) => "<null externref>".into(),
        Val::ExternRef(Some(_)) => "<externref>".into(),
        Val::AnyRef(None) => "<null anyref>".into(),
        Val::AnyRef(Some(_)) => "<anyref>".into(),
        Val::ExnRef(None) => "<null exnref>".into(),
        Val::ExnRef(Some(_)) => "<exnref>".into(),
        Val::ContRef(None) => "<null contref>".into(),
        Val::ContRef(Some(_)) => "<contref>".into(),
    }
}

/// Runs a core module as `wasmtime run` does: `_initialize` first if exported, then the
/// function `invoke` names with `args` as its parameters, or else the default export (`""`)
/// or `_start` if there is one. Returns the lines to print for the results.
pub async fn run_core_module<T: Send + 'static>(
    store: &mut Store<T>,
    linker: &wasmtime::Linker<T>,
    module: &wasmtime::Module,
    invoke: Option<&str>,
    args: &[String],
) -> wasmtime::Result<Vec<String>> {
    let instance = linker.instantiate_async(&mut *store, module).await?;
    if let Some(initialize) = instance.get_func(&mut *store, "_initialize") {
        initialize
            .typed::<(), ()>(&*store)?
            .call_async(&mut *store, ())
            .await?;
    }
    let func = match invoke {
        Some(name) => Some(instance.get_func(&mut *store, name).ok_or_else(|| {
            wasmtime::format_err!("the module exports no function named `{name}`")
        })?),
        None => instance
            .get_func(&mut *store, "")
            .or_else(|| instance.get_func(&mut *store, "_start")),
    };
    let Some(func) = func else {
        return Ok(Vec::new());
    };
    let ty = func.ty(&*store);
    let shown = invoke.unwrap_or("_start");
    if ty.params().len() != args.len() {
        wasmtime::bail!(
            "`{shown}` takes {} argument(s) ({}), {} given",
            ty.params().len(),
            ty.params()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            args.len()
        );
    }
    let params = ty
        .params()
        .zip(args)
        .map(|(ty, text)| core_argument(text, &ty))
        .collect::<Result<Vec<_>>>()
        .map_err(wasmtime::Error::from_anyhow)?;
    let mut results = vec![wasmtime::Val::I32(0); ty.results().len()];
    func.call_async(&mut *store, &params, &mut results).await?;
    Ok(results.iter().map(core_result).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Val, ValType};

    #[test]
    fn core_arguments_parse_as_wasmtime_parses_them() {
        let i32_of = |text| match core_argument(text, &ValType::I32) {
            Ok(Val::I32(v)) => Some(v),
            _ => None,
        };
        assert_eq!(i32_of("42"), Some(42));
        assert_eq!(i32_of("-7"), Some(-7));
        assert_eq!(i32_of("0x10"), Some(16));
        assert_eq!(i32_of("0xffffffff"), Some(-1));
        assert_eq!(i32_of("4294967295"), Some(-1));
        assert_eq!(i32_of("x"), None);
        assert!(core_argument("0x1_0000_0000_0", &ValType::I64).is_err());
        let message = core_argument("abc", &ValType::F64).unwrap_err().to_string();
        assert_eq!(message, "argument `abc` is not a valid f64");
        assert_eq!(
            core_result(&core_argument("1.5", &ValType::F32).unwrap()),
            "1.5"
        );
        assert_eq!(core_result(&Val::I64(-3)), "-3");
    }
}
