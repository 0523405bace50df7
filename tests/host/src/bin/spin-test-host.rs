//! Runs a component like `spin up`:
//! `spin-test-host [--component PATH] --origin URL [--listen ADDR] [--var name=value]... [--kv-max-value BYTES|none]`
//! Variables also come from `SPIN_VARIABLE_<NAME>`; `--origin` sets the `origin`
//! variable and allows outbound requests to it.

use spin_test_host::{build, engine, load, start, HostConfig};

#[tokio::main]
async fn main() -> wasmtime::Result<()> {
    let mut config = HostConfig::default();
    let mut component = None;
    for (name, value) in std::env::vars() {
        if let Some(var) = name.strip_prefix("SPIN_VARIABLE_") {
            config.variables.insert(var.to_ascii_lowercase(), value);
        }
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| wasmtime::format_err!("{arg} needs a value"));
        match arg.as_str() {
            "--component" => component = Some(std::path::PathBuf::from(value()?)),
            "--origin" => {
                config.variables.insert("origin".into(), value()?);
            }
            "--listen" => config.listen = value()?.parse()?,
            "--var" => {
                let v = value()?;
                let (k, v) = v.split_once('=').ok_or_else(|| wasmtime::format_err!("--var takes name=value"))?;
                config.variables.insert(k.into(), v.into());
            }
            // Hosted Spin's 1 MB by default; `none` for a store without a cap.
            "--kv-max-value" => {
                config.kv_max_value_bytes = match value()?.as_str() {
                    "none" => None,
                    bytes => Some(bytes.parse()?),
                }
            }
            other => wasmtime::bail!("unknown argument {other}"),
        }
    }
    if let Some(origin) = config.variables.get("origin") {
        config.allowed_outbound_hosts.push(origin.clone());
    }
    let component = match component {
        Some(c) => c,
        None => build::component("post-cache")?,
    };
    let engine = engine()?;
    let host = start(&engine, &load(&engine, &component)?, config).await?;
    println!("serving {} on http://{}", component.display(), host.addr);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
