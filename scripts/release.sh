#!/usr/bin/env bash
# scripts/release.sh [OUT_DIR]: the release, for people who will not compile Rust.
#
# Builds the component with the toolchain pinned in rust-toolchain.toml and the
# locked dependencies, so that the same commit gives the same bytes on any machine
# and from any checkout path (scripts/check-reproducible.sh holds it to that), and
# writes into OUT_DIR (default: dist/ in the checkout):
#
#   post_cache.wasm, post_cache.wasm.sha256   the Spin flavor
#   post_cache.spin.toml                      a spin.toml fragment: the component by
#                                             url + digest, every variable passed
#   templates/post-cache/                     the Spin template, url + digest filled in
#   post-cache-template.tar.gz                the same, for `spin templates install --tar`
#
# The wasm's URL is RELEASE_BASE_URL/post_cache.wasm; RELEASE_BASE_URL defaults to
# a GitHub release of this version with OWNER standing for the account.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd -P)
out=${1:-$root/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
cd "$root"

toolchain=$(scripts/toolchain.sh)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
base_url=${RELEASE_BASE_URL:-https://github.com/OWNER/post-cache/releases/download/v$version}
base_url=${base_url%/}

# Paths rustc would otherwise write into the wasm (panic locations name source
# files): the checkout and cargo's registry become relative names. The standard
# library's paths are already /rustc/<commit>/ in the toolchain.
cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)
remap="\"--remap-path-prefix=$cargo_home=cargo\", \"--remap-path-prefix=$root=post-cache\""
# A target directory of its own: these flags differ from the tests' build, and
# sharing theirs would rebuild everything each time one follows the other.
target_dir=$root/target/release-build

# build PACKAGE FILE [CARGO_ARGS...]: builds a flavor and copies FILE into OUT_DIR
# with its .sha256 beside it. `--config` adds to .cargo/config.toml's rustflags
# for the target (the stack size) rather than replacing them, as RUSTFLAGS would.
build() {
  local package=$1 file=$2
  shift 2
  cargo +"$toolchain" build --quiet --locked --release --target wasm32-wasip2 \
    --target-dir "$target_dir" -p "$package" \
    --config "target.wasm32-wasip2.rustflags = [$remap]" "$@"
  cp "$target_dir/wasm32-wasip2/release/$file" "$out/$file"
  # No absolute path from this machine may be left in the output.
  local path
  for path in "$root" "$cargo_home" "$HOME"; do
    if grep -a -q -F "$path" "$out/$file"; then
      echo "release: $file contains the path $path" >&2
      exit 1
    fi
  done
  (cd "$out" && sha256sum "$file" >"$file.sha256")
  echo "$file  $(wc -c <"$out/$file") bytes  sha256:$(cut -d ' ' -f 1 "$out/$file.sha256")"
}

echo "post-cache $version, rustc $toolchain, into $out"
build post-cache post_cache.wasm
# The standard-WASI flavor (wasi:keyvalue, wasi:config) is built here, with the
# same flags and `build`, once it exists (issue 20, item 3).
echo "post_cache_wasi.wasm  skipped: the standard-WASI flavor does not exist yet"

digest=sha256:$(cut -d ' ' -f 1 "$out/post_cache.wasm.sha256")
source_line="source = { url = \"$base_url/post_cache.wasm\", digest = \"$digest\" }"

# The spin.toml fragment: this repository's spin.toml from [variables] to the
# component's variables (its single list of variables), with the source replaced
# and the build section (for building from source) left out.
{
  echo "# post-cache $version. Merge [variables] into your app's [variables], set the route,"
  echo "# and give \`origin\` a value (spin.toml, SPIN_VARIABLE_ORIGIN or --variable origin=...)."
  echo
  awk -v source="$source_line" '
    /^\[variables\]/ { on = 1 }
    /^\[component\.post-cache\.build\]/ { exit }
    on && /^source = / { print source; next }
    on { print }
  ' spin.toml
} >"$out/post_cache.spin.toml"
grep -q -F "$digest" "$out/post_cache.spin.toml" || {
  echo "release: spin.toml has no [component.post-cache] source line to fill" >&2
  exit 1
}
echo "post_cache.spin.toml  the component by url + digest, $(grep -c '= "{{ ' "$out/post_cache.spin.toml") variables passed"

# The template, with every `source = ...` line (the new app's and the snippet's)
# naming this release.
rm -rf "$out/templates/post-cache"
mkdir -p "$out/templates"
cp -R templates/post-cache "$out/templates/post-cache"
escaped=$(printf '%s' "$source_line" | sed 's/[&|\\]/\\&/g')
for file in content/spin.toml metadata/snippets/component.txt; do
  sed -i "s|^source = .*|$escaped|" "$out/templates/post-cache/$file"
  grep -q -F "$digest" "$out/templates/post-cache/$file" || {
    echo "release: templates/post-cache/$file has no source line to fill" >&2
    exit 1
  }
done
# Names sorted, times, owners and gzip's header fixed: the same bytes every run.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=u+rwX,go+rX,go-w \
  -C "$out" -cf - templates/post-cache | gzip -n -9 >"$out/post-cache-template.tar.gz"
echo "templates/post-cache, post-cache-template.tar.gz  source: $base_url/post_cache.wasm"
