#!/usr/bin/env python3
"""Serves the browser pages of examples/web on 127.0.0.1 (used by tools/web-demo.sh and
tools/web-test.sh).

GET serves files from --root, and /fixtures/... from --fixtures when given (what the browser
test compares with). Nothing is cached, so a reload after a rebuild gets the new wasm.

The pages talk back with two POSTs, because a headless browser gives a script no other way to
learn what a page found once its GPU work is done:
  POST /log     one line of the page's report: printed at once, prefixed with "page: ";
  POST /result  the final JSON report ({"ok": bool, "lines": [...]}): written to --result.

http://127.0.0.1 is a secure context, which WebGPU requires; the server listens nowhere else.
"""

import argparse
import http.server
import os
import sys
import threading


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="the folder with index.html")
    parser.add_argument("--fixtures", help="a folder served under /fixtures/")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--result", help="write the body of POST /result here")
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    fixtures = os.path.abspath(args.fixtures) if args.fixtures else None
    lock = threading.Lock()

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {
            **http.server.SimpleHTTPRequestHandler.extensions_map,
            ".wasm": "application/wasm",
            ".js": "text/javascript",
            ".json": "application/json",
            ".safetensors": "application/octet-stream",
        }

        def __init__(self, *a, **kw):
            super().__init__(*a, directory=root, **kw)

        def translate_path(self, path):
            if fixtures and path.startswith("/fixtures/"):
                rest = path[len("/fixtures/"):].split("?", 1)[0].split("#", 1)[0]
                name = os.path.basename(rest)  # a flat folder: no sub-paths, no "..".
                return os.path.join(fixtures, name)
            return super().translate_path(path)

        def end_headers(self):
            self.send_header("Cache-Control", "no-store")
            super().end_headers()

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("utf-8", "replace")
            if self.path == "/log":
                with lock:
                    for line in body.splitlines() or [""]:
                        print(f"page: {line}", flush=True)
            elif self.path == "/result" and args.result:
                with lock:
                    tmp = args.result + ".tmp"
                    with open(tmp, "w") as f:
                        f.write(body)
                    os.replace(tmp, args.result)  # the waiting script never reads half a file
            else:
                self.send_error(404)
                return
            self.send_response(204)
            self.end_headers()

        def log_message(self, format, *a):
            # Errors only: a page load is dozens of GETs.
            if len(a) > 1 and str(a[1]).startswith(("4", "5")):
                sys.stderr.write("web-serve: %s %s\n" % (self.address_string(), format % a))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"serving {root} on http://127.0.0.1:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
