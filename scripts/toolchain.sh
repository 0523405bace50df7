#!/usr/bin/env bash
# Makes sure rustup has the toolchain and wasm32-wasip2 target pinned in
# rust-toolchain.toml (no-ops when already there), and prints the toolchain.
# Used by .ci/run and scripts/release.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "cargo not found: this project needs rustup (https://rustup.rs)" >&2
  exit 1
fi
toolchain=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
rustup toolchain install "$toolchain" --profile minimal --target wasm32-wasip2 >&2
rustup target add --toolchain "$toolchain" wasm32-wasip2 >&2
echo "$toolchain"
