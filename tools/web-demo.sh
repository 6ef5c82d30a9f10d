#!/usr/bin/env bash
# The browser demo: builds examples/web (tools/web-build.sh) and serves it on 127.0.0.1 until
# Ctrl-C. Open the printed URL in a browser with WebGPU (Chrome or Edge 113+, Safari 26,
# Firefox 141+ on Windows): the page trains the `nano` NFNet in the tab, draws the loss and
# accuracy, then classifies what you draw or drop on it. test.html on the same server is the
# browser test (tools/web-test.sh runs it headless against native fixtures).
#
#   tools/web-demo.sh [PORT]        (default 8000; NFNET_WEB_NO_BUILD=1 serves the last build)
set -euo pipefail
cd "$(dirname "$0")/.."
port="${1:-8000}"
if [ -z "${NFNET_WEB_NO_BUILD:-}" ]; then
    tools/web-build.sh
fi
echo "web-demo: open http://127.0.0.1:$port/ (the demo) or http://127.0.0.1:$port/index.html?epochs=2 (shorter); Ctrl-C stops"
exec python3 tools/web-serve.py --root examples/web --port "$port"
