"""A large teacher phase against a local echo server: time, peak memory, store size, resume (run by hand).

    python bench/scale.py                          # 20,000 mistakes x 3 teachers, teach + review
    python bench/scale.py --mistakes 2000 --stages teach

It starts llm-katan (echo backend) on 127.0.0.1, writes ``--mistakes`` synthetic mistakes,
and runs the teach stage (and the review stage) in this process, exactly as ``fairspec run``
does: every call through the call store (SQLite WAL, synchronous=FULL, the calls that
complete together committed by the store's writer thread in one fsynced transaction), N
workers per teacher, outputs streamed to disk. Then it runs the same stages again on a
fresh stage folder: the store answers everything, so the rerun must make no call and leave
the store as it was.

Printed: calls, wall seconds and calls/s per stage; peak RSS of this process (the stages
run in it; llm-katan is a separate process) and how it grew over the run; the store's size
on disk (database + WAL) and bytes per call; the group commits (transactions, the largest
group); the rerun's time and its paid calls (must be 0).

To compare with an older fairspec, run its copy of this script (``git worktree add /tmp/old
REF``, then ``python /tmp/old/bench/scale.py``) back to back with this one: each imports the
fairspec of its own checkout.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "support"))  # the tests' spec and server helpers

from katan_runs import (  # noqa: E402
    TEACHERS,
    committee,
    compile_run,
    mistake,
    spec_text,
    start_server,
    write_mistakes,
)

from fairspec.run.executor import run_stage  # noqa: E402
from fairspec.store import CallStore  # noqa: E402

KEY_ENV = "SCALE_KEY"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_run(folder: Path, url: str, mistakes: int, concurrency: int):
    made = compile_run(spec_text(committee(url, key_env=KEY_ENV, concurrency=concurrency), name="scale"),
                       folder)
    write_mistakes(made.run_dir, [
        mistake(i, f"Ann has {i} pens and buys {i % 7 + 2} more. How many now?", float(i + i % 7 + 2),
                answer=3) for i in range(mistakes)])
    return made.run


def store_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mistakes", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64, help="workers per teacher")
    parser.add_argument("--stages", default="teach,review", help="teach or teach,review")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    stages = args.stages.split(",")
    os.environ[KEY_ENV] = "sk-bench-not-a-real-key-0000000"
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            katan = start_server(folder, providers="openai", max_concurrent=1024, log_level="error")
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        try:
            run = make_run(folder, katan.openai_url, args.mistakes, args.concurrency)
            store_path = folder / "calls.sqlite"
            print(f"{args.mistakes:,} mistakes x {len(TEACHERS)} teachers, {args.concurrency} workers "
                  f"per teacher, stages {', '.join(stages)}; echo server on 127.0.0.1")
            start_rss = peak_rss_mib()
            with CallStore(store_path) as store:
                for attempt in ("first", "rerun"):
                    for stage in stages:
                        stage_dir = folder / "run" / stage
                        if attempt == "rerun":
                            (stage_dir / "manifest.json").unlink()
                        before = store.count()
                        started = time.perf_counter()
                        stats = run_stage(run, stage, base_dir=folder, store=store)
                        wall = time.perf_counter() - started
                        made = sum(t["made"] for t in stats["teachers"].values())
                        calls = sum(t["calls"] for t in stats["teachers"].values())
                        print(f"{attempt:5s} {stage:6s}: {calls:,} calls ({made:,} paid, store "
                              f"+{store.count() - before:,}) in {wall:.1f} s = {calls / wall:,.0f} calls/s; "
                              f"peak RSS {peak_rss_mib():,.0f} MiB")
                        if attempt == "rerun" and made:
                            print("FAIL: the rerun paid for calls")
                            return 1
                total = store.count()
                commits = getattr(store, "commits", None)  # an older fairspec has none
            size = store_bytes(store_path)
            print(f"store: {total:,} calls, {size / 2**20:,.1f} MiB on disk "
                  f"({size / total:,.0f} bytes/call); peak RSS {peak_rss_mib():,.0f} MiB "
                  f"(started at {start_rss:,.0f} MiB)")
            if commits is not None and commits.commits:
                print(f"group commit: {commits.records:,} calls in {commits.commits:,} transactions "
                      f"({commits.records / commits.commits:.1f} per transaction, largest "
                      f"{commits.largest})")
        finally:
            katan.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
