#!/usr/bin/env bash
# Builds the browser pages' wasm: examples/web compiled for wasm32-unknown-unknown in release,
# then wasm-bindgen's JavaScript glue for ES modules (`--target web`, no bundler) into
# examples/web/pkg/ (git-ignored). Used by tools/web-demo.sh and tools/web-test.sh.
#
# Needs the wasm32 target (`rustup target add wasm32-unknown-unknown`) and the wasm-bindgen
# CLI at exactly the version of the wasm-bindgen crate in examples/web/Cargo.lock (the glue
# and the module must agree): `cargo install wasm-bindgen-cli --version <that version>`.
set -euo pipefail
cd "$(dirname "$0")/.."
web=examples/web

# The version the crate was built against, from the lock file.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$web/Cargo.lock")
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
    echo "web-build: need the wasm-bindgen CLI $want (found: ${have:-none});" \
        "install it with: cargo install wasm-bindgen-cli --version $want" >&2
    exit 1
fi

echo "web-build: cargo build --release --target wasm32-unknown-unknown (in $web)" >&2
(cd "$web" && cargo build --release --target wasm32-unknown-unknown --quiet)
wasm-bindgen --target web --no-typescript --out-dir "$web/pkg" \
    "$web/target/wasm32-unknown-unknown/release/nfnet_web.wasm"
echo "web-build: wrote $web/pkg/ ($(du -sh "$web/pkg" | cut -f1))" >&2
