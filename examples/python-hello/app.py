"""python-hello: a small HTTP service used by deployer's examples, tests and benchmarks."""

import os
import signal
import sys

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def hello() -> tuple[str, int, dict[str, str]]:
    return "hello from python-hello\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify(status="ok")


def main() -> None:
    """Serve on $PORT (default 8080) with waitress; exit cleanly on SIGTERM (Kubernetes)."""
    from waitress import serve

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = int(os.environ.get("PORT", "8080"))
    print(f"python-hello listening on port {port}", flush=True)
    serve(app, host="0.0.0.0", port=port)


if __name__ == "__main__":
    main()
