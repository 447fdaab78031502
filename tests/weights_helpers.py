"""Helpers for the weights/models tests: a loopback HTTP server with Range support and stalls, tiny wheels, a
private registry holding test entries (never the internet), and a tiny model family with its converter."""
from __future__ import annotations

import hashlib
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mattecli import registry
from mattecli.backends.base import Converter, Prediction, TorchBackend
from mattecli.backends.checkpoint import KeyTaker
from mattecli.errors import ConverterError
from mattecli.registry import ModelEntry, Weights, WeightSource  # noqa: F401 (re-exported for tests)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Route:
    def __init__(self, data: bytes = b"", status: int = 200, ranges: bool = True, stall_after: int | None = None,
                 ctype: str = "application/octet-stream", chunk_delay: float = 0.0):
        self.data, self.status, self.ranges = data, status, ranges
        self.stall_after, self.ctype, self.chunk_delay = stall_after, ctype, chunk_delay


class LoopbackServer:
    """http://127.0.0.1:PORT/<name> serving Routes; records every request (path, Range header)."""

    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.hits: list[tuple[str, str | None]] = []
        self.bytes_sent: dict[str, int] = {}
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):  # noqa: N802
                rng = self.headers.get("Range")
                server.hits.append((self.path, rng))
                route = server.routes.get(self.path)
                if route is None or route.status == 404:
                    self.send_error(404, "Not Found")
                    return
                if route.status != 200:
                    self.send_error(route.status)
                    return
                data, start, code = route.data, 0, 200
                if rng and route.ranges and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    code = 206
                body = data[start:]
                self.send_response(code)
                self.send_header("Content-Type", route.ctype)
                self.send_header("Content-Length", str(len(body)))
                if code == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                if route.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                sent = 0
                try:
                    for i in range(0, len(body), 4096):
                        if route.stall_after is not None and sent >= route.stall_after:
                            self.wfile.flush()
                            server.release.wait(20)  # hold the connection open, send nothing
                            return
                        piece = body[i:i + 4096]
                        self.wfile.write(piece)
                        sent += len(piece)
                        if route.chunk_delay:
                            time.sleep(route.chunk_delay)
                finally:
                    server.bytes_sent[self.path] = server.bytes_sent.get(self.path, 0) + sent

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{name}"

    def gets(self, path: str) -> list:
        return [h for h in self.hits if h[0] == path]

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class StalledServer:
    """http://127.0.0.1:PORT/ that accepts connections and never answers (a package index that hangs)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.conns: list = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                continue

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def stalled_server():
    s = StalledServer()
    yield s
    s.close()


@pytest.fixture
def server():
    s = LoopbackServer()
    yield s
    s.close()


@pytest.fixture
def online_home(tmp_path, monkeypatch):
    """A private MATTECLI_HOME with network sources allowed (the loopback server only)."""
    home = tmp_path / "home"
    monkeypatch.setenv("MATTECLI_HOME", str(home))
    monkeypatch.delenv("MATTECLI_OFFLINE", raising=False)
    monkeypatch.delenv("MATTECLI_PIP_ARGS", raising=False)
    return home


@pytest.fixture
def private_registry(monkeypatch):
    """An empty registry; tests add their own entries with add_entry()."""
    monkeypatch.setattr(registry, "_ENTRIES", {})
    monkeypatch.setattr(registry, "_ALIASES", {})
    monkeypatch.setattr(registry, "_LOADED", True)
    return registry


def make_entry(name: str = "toy", sources=(), data: bytes | None = None, filename: str = "toy_weights.bin",
               fmt: str = "raw", license: str = "MIT", family: str = "toyfamily", adapter: str = "",
               implemented: bool = False, size: bool = True, sha256: str | None = None, extra_sets=(),
               **kw) -> ModelEntry:
    w = Weights(tag="default", filename=filename, sources=tuple(sources), format=fmt,
                sha256=(sha256 or None) if sha256 is not None else (sha(data) if data is not None else None),
                size=len(data) if (data is not None and size) else None, license=license,
                trained_on="toy data", metrics={"SAD": 1.5})
    return ModelEntry(name=name, family=family, summary=f"{name} test entry", weights=(w,) + tuple(extra_sets),
                      adapter=adapter, implemented=implemented, **kw)


def add_entry(entry: ModelEntry) -> ModelEntry:
    registry.register(entry)
    return entry


def build_wheel(folder: Path, dist: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal valid wheel (pure python) holding ``members``."""
    mod = dist.replace("-", "_")
    folder.mkdir(parents=True, exist_ok=True)
    whl = folder / f"{mod}-{version}-py3-none-any.whl"
    info = f"{mod}-{version}.dist-info"
    files = {f"{mod}/__init__.py": b"", **members,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: mattecli-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{k},,\n" for k in files) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    with zipfile.ZipFile(whl, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in files.items():
            z.writestr(k, v)
    return whl


def cache_listing(home: Path) -> list[str]:
    w = home / "weights"
    if not w.exists():
        return []
    return sorted(str(p.relative_to(w)) for p in w.rglob("*") if p.is_file())


# -- a tiny model family: y = Wx + b, official keys fc.weight / fc.bias, ours weight / bias ------------------------
def tiny_wb():
    import torch

    return torch.arange(6, dtype=torch.float32).reshape(2, 3), torch.tensor([0.5, -0.5])


class TinyConverter(Converter):
    def to_ours(self, official, spec):
        kt = KeyTaker(official, "tiny checkpoint")
        ours = {"weight": kt.take("fc.weight"), "bias": kt.take("fc.bias")}
        kt.finish()
        return ours

    def to_official(self, ours, spec):
        return {"fc.weight": ours["weight"], "fc.bias": ours["bias"]}


class TinyAdapter(TorchBackend):
    converter = TinyConverter()

    def build_net(self, state_dict):
        from torch import nn

        return nn.Linear(3, 2)

    def encode(self, batch):
        return (batch.float_image().mean(dim=(2, 3)),), None

    def decode(self, y, batch, ctx):
        return Prediction(alpha=y[:, :1, None, None].expand(-1, 1, *batch.size).clamp(0, 1))


CONVERT_CALLS: list = []


class TinyNpzConverter(TinyConverter):
    """The official format is an .npz (think: ONNX): read without torch.load."""

    def read(self, path, spec):
        import numpy as np
        import torch

        CONVERT_CALLS.append((str(path), spec.entry.name))
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: torch.from_numpy(z[k]) for k in z.files}
        except (ValueError, OSError) as e:
            raise ConverterError(f"not an npz file ({e})") from None

    def convert_file(self, path, spec):
        return self.to_ours(self.read(path, spec), spec), {"converter": "npz"}


class TinyNpzAdapter(TinyAdapter):
    converter = TinyNpzConverter()


def official_pth(path: Path) -> Path:
    """The tiny model's official checkpoint: a DataParallel state dict under 'state_dict'."""
    import torch

    w, b = tiny_wb()
    torch.save({"state_dict": {"module.fc.weight": w, "module.fc.bias": b}}, path)
    return path


def official_npz(path: Path) -> Path:
    import numpy as np

    w, b = tiny_wb()
    with open(path, "wb") as f:
        np.savez(f, **{"fc.weight": w.numpy(), "fc.bias": b.numpy()})
    return path


def flip_byte_in_largest_tensor(pt: Path) -> str:
    """Flip one byte in the middle of the largest tensor's storage inside a torch zip file, in place (the zip stays
    well-formed: torch would load it, with one weight changed). Returns the storage's member name."""
    with zipfile.ZipFile(pt) as z:
        infos = [i for i in z.infolist() if "/data/" in i.filename and i.compress_type == zipfile.ZIP_STORED]
        info = max(infos, key=lambda i: i.file_size)
    raw = bytearray(pt.read_bytes())
    # local file header: 30 bytes + name + extra field, then the stored bytes
    name_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.file_size // 2] ^= 0x10
    pt.write_bytes(bytes(raw))
    return info.filename
