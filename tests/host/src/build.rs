//! Builds the wasm components the tests and benchmarks run, once per process.

use wasmtime::error::Context;
use wasmtime::{bail, Result};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The workspace root (this crate lives in tests/host).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Runs `cargo build --target wasm32-wasip2 --release -p <package>` (a no-op when
/// fresh) and returns the path of the component. The release profile is the one
/// `spin build` uses, so the tests run exactly what would be deployed.
pub fn component(package: &str) -> Result<PathBuf> {
    let file = package.replace('-', "_") + ".wasm";
    let root = workspace_root().canonicalize().unwrap_or_else(|_| workspace_root());
    let path = root.join("target/wasm32-wasip2/release").join(file);
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|p| p == package) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "--target", "wasm32-wasip2", "--release", "-p", package])
            .status()
            .context("running cargo to build the component")?;
        if !status.success() {
            bail!("building {package} for wasm32-wasip2 failed");
        }
        built.push(package.to_string());
    }
    Ok(path)
}
