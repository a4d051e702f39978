"""Benchmarks teacher clients against llm-katan: wall time and client CPU per call (run by hand).

    python bench/teachers.py                 # starts llm-katan (echo, 100 ms latency) itself
    python bench/teachers.py --calls 2000 --concurrency 64 --latency-ms 100 --rounds 3
    python bench/teachers.py --url http://127.0.0.1:8000   # a server you started (latency known)
    python bench/teachers.py --clients sdk-httpx sdk-aiohttp fair-openai fair-httpx fair-gemini

For each client it prints: wall time of N calls at concurrency C; CPU time of this process
per call (time.process_time, so the server's CPU is not counted); wall over the ideal bound
N x latency / C; the ratio to the first client of the list (fair-openai by default); and the
speed-up over a sequential loop. The sequential loop is measured on a subset (--sequential
calls) and extrapolated linearly to N (printed as "seq est"). With --rounds R the clients
run R times, interleaved (a b c a b c ...), and each prints its median round.

Clients compared side by side in one run:
  fair-openai   fairspec OpenAIProvider (low-level post, shared aiohttp pool, limits, retries)
  fair-stored   the same provider through TeacherCaller + CallStore, as ``fairspec run``
                calls it: looked up 256 at a time, each stored durably before it counts
                (group commit, SQLite WAL synchronous=FULL, in a temporary folder), with
                the teach stage's workers (committee.workers; the provider's limiter keeps
                --concurrency requests on the wire)
  sdk-httpx     openai SDK, chat.completions.create, its default httpx2 client
  sdk-aiohttp   openai SDK, chat.completions.create, DefaultAioHttpClient (persists nothing)
  fair-httpx    the same provider on the SDK's httpx2 transport
  fair-gemini   fairspec GeminiProvider (google-genai SDK, its aiohttp transport)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))  # start_server

from katan_runs import start_server  # noqa: E402

from fairspec.providers import ChatProvider, ChatRequest  # noqa: E402
from fairspec.providers.gemini import GeminiProvider  # noqa: E402
from fairspec.providers.openai import OpenAIProvider  # noqa: E402
from fairspec.store import CallStore  # noqa: E402
from fairspec.teachers.caller import TeacherCaller  # noqa: E402
from fairspec.teachers.committee import workers  # noqa: E402

KEY_ENV = "FAIRSPEC_BENCH_KEY"
PROMPT = "Explain step by step why the answer to this question is correct. " * 8
SETTINGS = {"max_tokens": 256, "temperature": 0.8}

Call = Callable[[int], Awaitable[str]]


@dataclass
class Row:
    name: str
    wall_s: float
    cpu_ms_per_call: float
    ideal_s: float
    sequential_s: float

    def line(self, first: Row) -> str:
        return (
            f"{self.name:12s} {self.wall_s:8.2f} {self.cpu_ms_per_call:12.2f} "
            f"{self.wall_s / self.ideal_s:11.2f} {self.wall_s / first.wall_s:9.2f}x "
            f"{self.sequential_s:12.1f} {self.sequential_s / self.wall_s:10.1f}x"
        )


class SdkClient(AbstractAsyncContextManager):
    """The openai SDK used the plain way: chat.completions.create with its typed params."""

    def __init__(self, root: str, http: str) -> None:
        factory = openai.DefaultAioHttpClient if http == "aiohttp" else openai.DefaultAsyncHttpxClient
        self.client = openai.AsyncOpenAI(
            api_key="bench", base_url=f"{root}/v1", max_retries=0, http_client=factory()
        )

    async def call(self, i: int) -> str:
        reply = await self.client.chat.completions.create(
            model="gpt-3.5-turbo",
            messages=[{"role": "user", "content": f"{PROMPT} #{i}"}],
            temperature=0.8,
            max_tokens=256,
            top_p=1.0,
            presence_penalty=0.0,
            frequency_penalty=0.0,
            timeout=60,
        )
        return reply.choices[0].message.content or ""

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


class ProviderClient(AbstractAsyncContextManager):
    def __init__(self, provider: ChatProvider) -> None:
        self.provider = provider

    async def call(self, i: int) -> str:
        request = ChatRequest([{"role": "user", "content": f"{PROMPT} #{i}"}], SETTINGS)
        return (await self.provider.complete(request)).text

    async def __aexit__(self, *exc: object) -> None:
        await self.provider.aclose()


class StoredClient(ProviderClient):
    """The provider behind a TeacherCaller and a fresh CallStore: what a teach stage does."""

    def __init__(self, provider: ChatProvider, base_url: str, concurrency: int) -> None:
        super().__init__(provider)
        self.workers = workers({"concurrency": concurrency})  # the teach stage's pool
        self.folder = tempfile.TemporaryDirectory(prefix="bench-store-")
        self.store = CallStore(Path(self.folder.name) / "calls.sqlite")
        self.caller = TeacherCaller(name="gpt", provider_kind="openai", base_url=base_url,
                                    model="gpt-3.5-turbo", settings=SETTINGS, store=self.store,
                                    provider=provider)
        self.phase = 0  # warm-up, sequential and concurrent calls all distinct: each is paid
        self.ahead: dict[int, list[dict[str, str]]] = {}

    async def call(self, i: int) -> str:
        if i == 0:  # a new phase (its first call starts first)
            self.phase += 1
            self.ahead.clear()
        if i not in self.ahead:  # as a stage does (pool.looked_up): 256 calls looked up at once
            chunk = {j: [{"role": "user", "content": f"{PROMPT} #{j} ({self.phase})"}]
                     for j in range(i, i + 256)}
            self.caller.prefetch((messages, 0) for messages in chunk.values())
            self.ahead.update(chunk)
        return (await self.caller.ask(self.ahead.pop(i))).text or ""

    async def __aexit__(self, *exc: object) -> None:
        await super().__aexit__(*exc)
        self.store.close()
        self.folder.cleanup()


def make_client(name: str, root: str, concurrency: int):
    common = {"api_key_env": KEY_ENV, "concurrency": concurrency, "timeout_s": 60}
    if name == "sdk-httpx":
        return SdkClient(root, "httpx")
    if name == "sdk-aiohttp":
        return SdkClient(root, "aiohttp")
    if name == "fair-openai":
        return ProviderClient(
            OpenAIProvider(name="gpt", model="gpt-3.5-turbo", base_url=f"{root}/v1", **common)
        )
    if name == "fair-stored":
        return StoredClient(
            OpenAIProvider(name="gpt", model="gpt-3.5-turbo", base_url=f"{root}/v1", **common),
            f"{root}/v1", concurrency)
    if name == "fair-httpx":
        return ProviderClient(
            OpenAIProvider(name="gpt", model="gpt-3.5-turbo", base_url=f"{root}/v1",
                           http="httpx", **common)
        )
    if name == "fair-gemini":
        return ProviderClient(
            GeminiProvider(name="gemini", model="gemini-1.0-pro", base_url=f"{root}/", **common)
        )
    raise ValueError(f"unknown client {name!r}")


async def measure(name: str, root: str, calls: int, concurrency: int, sequential: int,
                  latency_s: float) -> Row:
    async with make_client(name, root, concurrency) as client:
        # the workers: a stage's pool for fair-stored (its provider's limiter still keeps
        # ``concurrency`` requests on the wire), ``concurrency`` for the others
        gate = asyncio.Semaphore(getattr(client, "workers", concurrency))

        async def one(i: int) -> str:
            async with gate:  # the providers gate themselves too; the SDK clients need this
                return await client.call(i)

        await asyncio.gather(*(one(i) for i in range(min(32, calls))))  # warm the pool
        started = time.perf_counter()
        for i in range(sequential):
            await client.call(i)
        per_call = (time.perf_counter() - started) / sequential

        cpu0, wall0 = time.process_time(), time.perf_counter()
        texts = await asyncio.gather(*(one(i) for i in range(calls)))
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
    if not all(f"#{i}" in text for i, text in enumerate(texts)):
        raise RuntimeError(f"{name}: some replies do not echo their prompt")
    return Row(name, wall, cpu / calls * 1000, calls * latency_s / concurrency, per_call * calls)


async def run(args: argparse.Namespace, root: str) -> None:
    latency_s = args.latency_ms / 1000
    print(f"{args.calls} calls, concurrency {args.concurrency}, server latency {args.latency_ms} ms;"
          f" ideal bound {args.calls * latency_s / args.concurrency:.2f} s;"
          f" sequential measured on {args.sequential} calls and extrapolated (seq est)")
    rounds: dict[str, list[Row]] = {name: [] for name in args.clients}
    for round_no in range(1, args.rounds + 1):  # interleaved: a b c a b c ...
        for name in args.clients:
            rounds[name].append(await measure(name, root, args.calls, args.concurrency,
                                              args.sequential, latency_s))
        print(f"round {round_no}: " + ", ".join(
            f"{name} {rows[-1].wall_s:.2f} s" for name, rows in rounds.items()), flush=True)
    medians = {name: _median(rows) for name, rows in rounds.items()}
    first = medians[args.clients[0]]
    print(f"{'client':12s} {'wall s':>8s} {'cpu ms/call':>12s} {'wall/ideal':>11s} "
          f"{'vs ' + args.clients[0]:>10s} {'seq est s':>12s} {'vs seq':>11s}")
    for row in medians.values():
        print(row.line(first), flush=True)


def _median(rows: list[Row]) -> Row:
    """The round with the median wall time (its own CPU and sequential estimate)."""
    wall = statistics.median_low(row.wall_s for row in rows)
    return next(row for row in rows if row.wall_s == wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--sequential", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; median shown")
    parser.add_argument("--url", help="an llm-katan already running with --latency-ms")
    parser.add_argument(
        "--clients", nargs="+",
        default=["fair-openai", "fair-stored", "sdk-aiohttp"],
    )
    args = parser.parse_args()
    os.environ.setdefault(KEY_ENV, "bench-key")
    server = None
    root = args.url
    if root is None:
        server = start_server(None, "--latency-ms", str(args.latency_ms), max_concurrent=4096)
        root = server.root
    try:
        asyncio.run(run(args, root.rstrip("/")))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
