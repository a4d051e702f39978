"""The plumbing shared by the strict API stand-ins: a thread HTTP server, a toy tokenizer, a prefix cache.

:class:`StandIn` runs a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread of the
test process (as ``batch_server.py`` does) and hands every request to its subclass's
:meth:`StandIn.respond`; every request is recorded in :attr:`StandIn.received` (path, headers,
JSON body, the status answered), so a test can assert what its client really sent.

Tokens
------
The stand-ins count tokens with one documented rule, not a real tokenizer: a token is a run of
word characters (``\\w+``) or a single other non-space character (``[^\\w\\s]``). ``"What is
2+2?"`` is 6 tokens: ``What``, ``is``, ``2``, ``+``, ``2``, ``?``. It is deterministic and cheap,
and a test can compute the same count with :func:`count_tokens`.

Prefix caching
--------------
:class:`PrefixCache` remembers, per model, the token prefixes of the prompts it has seen and
answers how many leading tokens of a new prompt were seen before, counted the way the vendor
counts cache hits: only from ``min_tokens`` on, and only in whole ``step`` increments past it
(OpenAI: 1024 then 128 at a time; Gemini's implicit cache: the model's minimum, then any length).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """The tokens of ``text`` under the stand-ins' rule (see the module docstring)."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens ``text`` is under the stand-ins' rule."""
    return len(tokenize(text))


def cut(text: str, tokens: int) -> str:
    """The start of ``text`` holding exactly its first ``tokens`` tokens (all of it if shorter)."""
    if tokens <= 0:
        return ""
    for index, match in enumerate(_TOKEN.finditer(text)):
        if index == tokens - 1:
            return text[: match.end()]
    return text


_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")


def pieces(text: str) -> list[str]:
    """``text``'s tokens with their leading spaces (they concatenate back to ``text``, less any
    trailing space): the tokens a log-probability reply lists."""
    return [match.group(0) for match in _PIECE.finditer(text)]


def alternatives(piece: str, count: int) -> list[str]:
    """``count`` other tokens for ``piece`` as a log-probability reply ranks them: the other
    digits for a single digit (so a score's distribution can be read), else ``<token>~j``."""
    core = piece.strip()
    others = [d for d in "0123456789" if d != core] if len(core) == 1 and core.isdigit() else [
        f"{core}~{j}" for j in range(count)]
    return [piece.replace(core, alt) for alt in others[:count]]


def send_json(handler: BaseHTTPRequestHandler, status: int, data: Any) -> None:
    """Answer ``handler``'s request with ``data`` as JSON and ``status``."""
    body = json.dumps(data).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def digest(*parts: object) -> int:
    """A stable integer from ``parts`` (for deterministic, seedable replies)."""
    data = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


class PrefixCache:
    """Which leading tokens of a prompt were seen in an earlier prompt to the same model.

    A hit is the longest seen prefix of length ``min_tokens + k * step`` (k >= 0), never more
    than the prompt; a prompt shorter than ``min_tokens`` never hits and is still remembered.
    """

    def __init__(self, *, min_tokens: int, step: int = 1) -> None:
        self.min_tokens = min_tokens
        self.step = step
        self._seen: dict[str, set[bytes]] = {}
        self._lock = threading.Lock()

    def _eligible(self, length: int) -> bool:
        return length >= self.min_tokens and (length - self.min_tokens) % self.step == 0

    def hit(self, key: str, tokens: list[str]) -> int:
        """The cached token count for ``tokens`` under ``key`` (a model), remembering them."""
        chain = hashlib.sha1()
        boundaries: list[tuple[int, bytes]] = []
        for length, token in enumerate(tokens, start=1):
            chain.update(token.encode() + b"\x00")
            if self._eligible(length):
                boundaries.append((length, chain.copy().digest()))
        with self._lock:
            seen = self._seen.setdefault(key, set())
            cached = max((n for n, h in boundaries if h in seen), default=0)
            seen.update(h for _, h in boundaries)
        return cached

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


class ApiError(Exception):
    """An HTTP error reply: ``status`` and the JSON ``payload`` in the vendor's error shape."""

    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(json.dumps(payload))
        self.status = status
        self.payload = payload


@dataclass
class Received:
    """One request as the stand-in got it: ``body`` is the parsed JSON (None when it was not)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0
    reply: Any = field(default=None, repr=False)


class ThreadServer:
    """A ``ThreadingHTTPServer`` on ``host``:``port`` (0: a free port) in a daemon thread,
    its requests handled by :meth:`handler`'s class; a context manager, or :meth:`start` /
    :meth:`stop`. The lifecycle every stand-in here shares."""

    name = "stand-in"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, bound to this server object."""
        raise NotImplementedError

    def start(self) -> Any:
        self._server = _QuietServer((self.host, self.port), self.handler())
        self.port = int(self._server.server_address[1])
        # a short poll interval: stop() (shutdown) waits for the loop's next poll
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up waiting
            super().handle_error(request, client_address)


class StandIn(ThreadServer):
    """A JSON API stand-in whose subclass answers :meth:`respond`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        #: every request, in arrival order (read it under no lock between calls)
        self.received: list[Received] = []
        self._lock = threading.RLock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        return Handler

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- inspection ------------------------------------------------------------------------

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies received, in order."""
        with self._lock:
            return [r.body for r in self.received]

    @property
    def last(self) -> Received:
        with self._lock:
            return self.received[-1]

    # -- subclass hook ---------------------------------------------------------------------

    def respond(self, request: Received) -> tuple[int, Any]:
        """(status, JSON payload) for ``request``; raise :class:`ApiError` for an error reply."""
        raise NotImplementedError

    def bad_json(self, raw: bytes) -> ApiError:
        """The error for a body that is not JSON (in the vendor's shape)."""
        raise NotImplementedError

    def _handle(self, request: Received, raw: bytes) -> tuple[int, Any]:
        with self._lock:
            self.received.append(request)
        try:
            if raw and request.body is None:
                raise self.bad_json(raw)
            status, payload = self.respond(request)
        except ApiError as error:
            status, payload = error.status, error.payload
        request.status, request.reply = status, payload
        return status, payload


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (case-insensitive), or None."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


class _Handler(BaseHTTPRequestHandler):
    server_owner: StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = Received(method=method, path=unquote(split.path), query=parse_qs(split.query),
                           headers=dict(self.headers.items()), body=body)
        status, payload = self.server_owner._handle(request, raw)
        send_json(self, status, payload)
