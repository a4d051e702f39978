"""Shared test fixtures: paths to the repo, the optional ../shared data, and llm-katan.

llm-katan (PyPI) is a real HTTP server for the OpenAI and Gemini APIs with an echo
backend and fault injection; the fixtures start it on 127.0.0.1 and stop it after use.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path | None:
    configured = os.environ.get("FAIRSPEC_SHARED")
    candidate = Path(configured) if configured else REPO_ROOT.parent / "shared"
    return candidate if (candidate / "data").is_dir() else None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_model() -> str:
    """The folder of the real SmolLM2-135M-Instruct (builtin:); skip when it cannot be had."""
    pytest.importorskip("transformers")
    from fairspec.weights import ModelNotAvailable, resolve_model

    try:
        return resolve_model("builtin:smollm2-135m-instruct")
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real benchmark copies and the authors' records); skip when absent."""
    shared = _shared_dir()
    if shared is None:
        pytest.skip("../shared/data is not present (a user's fresh clone has none)")
    return shared / "data"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


@dataclass
class Katan:
    """A running llm-katan: ``openai_url`` for the OpenAI SDK, ``gemini_url`` for google-genai."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.root}/v1"

    @property
    def gemini_url(self) -> str:
        return f"{self.root}/"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(log_dir: Path, *flags: str) -> Katan:
    pytest.importorskip("llm_katan", reason="llm-katan (a test dependency) is not installed")
    port = _free_port()
    log = log_dir / f"llm-katan-{port}.log"
    command = [
        sys.executable, "-m", "llm_katan.cli",
        "--model", "echo-model", "--backend", "echo",
        "--host", "127.0.0.1", "--port", str(port),
        "--providers", "openai,vertexai",
        "--max-concurrent", "256",
        "--disable-dashboard", "--stats-file", "",
        "--log-level", "warning",
        *flags,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_KATAN_")}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Katan(process, port, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llm-katan exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.root}/health", timeout=1) as reply:
                if reply.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"llm-katan not ready in {START_TIMEOUT_S}s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def katan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Katan]:
    """A plain echo server shared by the session."""
    server = _start(tmp_path_factory.mktemp("katan"))
    yield server
    server.stop()


@pytest.fixture
def start_katan(tmp_path: Path) -> Iterator[Callable[..., Katan]]:
    """Start a fresh server with extra llm-katan flags; all are stopped after the test."""
    servers: list[Katan] = []

    def start(*flags: str) -> Katan:
        server = _start(tmp_path, *flags)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
