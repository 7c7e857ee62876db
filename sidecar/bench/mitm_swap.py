"""mitmproxy addon for the benchmark: the same header-slot swap the sidecar does."""
import os

SEALED = os.environ["SEALPOD_BENCH_SEALED"]
REAL = os.environ["SEALPOD_BENCH_REAL"]


def request(flow):
    if flow.request.headers.get("x-api-key") == SEALED:
        flow.request.headers["x-api-key"] = REAL
