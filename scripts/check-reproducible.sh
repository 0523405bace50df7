#!/usr/bin/env bash
# scripts/check-reproducible.sh [OUT_DIR]: two releases of the committed HEAD from
# two fresh clones at different paths (each with its own target directory, sharing
# cargo's download cache) must be the same bytes. With OUT_DIR, the first release
# is copied there (for the template test: POST_CACHE_RELEASE_DIR=OUT_DIR).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd -P)
keep=${1:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Paths of different lengths, so that a path left in the output changes the bytes
# even where the grep in release.sh would not look.
first=$work/a/post-cache
second=$work/a-longer-path/b/post-cache
for dir in "$first" "$second"; do
  git clone -q --no-hardlinks "$root" "$dir"
  start=$SECONDS
  "$dir"/scripts/release.sh "$dir/dist" 2>&1 | grep -v '^info:\|unchanged - rustc\|^$'
  echo "release from $dir: $((SECONDS - start)) s"
done
for dir in "$first" "$second"; do
  echo "digest from $dir: $(cut -d ' ' -f 1 "$dir/dist/post_cache.wasm.sha256")"
done
if ! diff -r "$first/dist" "$second/dist"; then
  echo "check-reproducible: the two releases differ" >&2
  exit 1
fi
echo "check-reproducible: the same bytes from both checkouts"
if [ -n "$keep" ]; then
  mkdir -p "$keep"
  cp -R "$first/dist/." "$keep/"
fi
