"""Shared fixtures: an isolated cache per test, the real datasets when present, a local server."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEQBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests skip with a reason (never silently) where CUDA is absent."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture(scope="session", autouse=True)
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One folder for the compiled CPU scan per test session (built once, shared with the CLI
    runs' worker processes): the user's cache is never touched."""
    path = tmp_path_factory.mktemp("kernels")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQBENCH_KERNEL_DIR", str(path))
        yield path


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache folder: the user's cache is never touched."""
    path = tmp_path / "cache"
    monkeypatch.setenv("SEQBENCH_CACHE_DIR", str(path))
    monkeypatch.delenv("SEQBENCH_MIRROR", raising=False)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: skipped where absent, but required when the CI variable is set."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the shared datasets are missing at {SHARED_DATA}")
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()


@pytest.fixture
def http_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Path, list[str]]]:
    """A file server on 127.0.0.1 over a fresh folder: (base URL, folder, requested paths)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder, server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
