"""A data-parallel exam: ``replicas`` copies of an engine, each a process on its own devices.

For a dense model, vLLM's data parallelism is independent replicas (its offline
data-parallel example starts one process per replica the same way). Each replica is
``python -m fairspec.engines.replica`` with its devices in its environment: GPUs
``r * per_replica .. (r + 1) * per_replica - 1`` of the visible ones in
``CUDA_VISIBLE_DEVICES``; on a CPU, its share of the cores in ``VLLM_CPU_OMP_THREADS_BIND``
and ``OMP_NUM_THREADS``. It reads requests as JSON lines on stdin and writes completions
as JSON lines on stdout, its log going to ``replica-R.log``.

A call's prompts are cut into contiguous shards, one per replica, each sampled with
``seed + its first row``: every row keeps the seed it has on one engine (vLLM seeds row
``i`` with ``seed + i``), so greedy and sampled answers do not depend on the replica count.
Completions come back in prompt order.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from fairspec.engines.base import Completion, Sampling
from fairspec.errors import EngineFailed

log = logging.getLogger(__name__)

#: How long a replica may take to load its model (vLLM compiles, captures graphs).
START_TIMEOUT_S = 1800.0


def shards(count: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous [start, end) ranges over ``count`` rows, sizes differing by <= 1."""
    size, extra = divmod(count, parts)
    out, start = [], 0
    for part in range(parts):
        end = start + size + (1 if part < extra else 0)
        out.append((start, end))
        start = end
    return out


def _cpu_cores(env: Mapping[str, str]) -> list[int]:
    """The cores this process may use: ``VLLM_CPU_OMP_THREADS_BIND`` when it lists them."""
    bind = env.get("VLLM_CPU_OMP_THREADS_BIND", "")
    if bind and bind not in ("auto", "all", "nobind"):
        cores: list[int] = []
        for part in bind.replace("|", ",").split(","):
            low, _, high = part.partition("-")
            cores.extend(range(int(low), int(high or low) + 1))
        return sorted(set(cores))
    return sorted(os.sched_getaffinity(0))


def _ranges(cores: Sequence[int]) -> str:
    """``0-3`` for contiguous cores, else ``0,2,5`` (``1`` for one)."""
    if len(cores) == 1:
        return str(cores[0])
    if list(cores) == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ",".join(map(str, cores))


def replica_env(rank: int, replicas: int, per_replica: int, device: str,
                env: Mapping[str, str]) -> dict[str, str]:
    """The environment of replica ``rank``: its GPUs, or its share of the CPU cores."""
    out = dict(env)
    if device == "cuda":
        visible = env.get("CUDA_VISIBLE_DEVICES")
        ids = ([d for d in visible.split(",") if d.strip()] if visible
               else [str(i) for i in range(replicas * per_replica)])
        if len(ids) < replicas * per_replica:
            raise EngineFailed(f"{replicas} replicas x {per_replica} GPU(s) need "
                               f"{replicas * per_replica} GPUs; CUDA_VISIBLE_DEVICES has {len(ids)}")
        out["CUDA_VISIBLE_DEVICES"] = ",".join(ids[rank * per_replica:(rank + 1) * per_replica])
    else:
        cores = _cpu_cores(env)
        if len(cores) < replicas:
            raise EngineFailed(f"{replicas} replicas need at least {replicas} CPU cores; "
                               f"this process may use {len(cores)}")
        start, end = shards(len(cores), replicas)[rank]
        mine = cores[start:end]
        # tensor parallel on a CPU: one group of cores per rank, '|' between them
        groups = [mine[a:b] for a, b in shards(len(mine), min(per_replica, len(mine)))]
        out["VLLM_CPU_OMP_THREADS_BIND"] = "|".join(_ranges(g) for g in groups)
        out["OMP_NUM_THREADS"] = str(len(mine) // len(groups))
    out["FAIRSPEC_REPLICA"] = str(rank)
    return out


class _Replica:
    """One replica process and a thread that queues what it writes."""

    def __init__(self, rank: int, setup: dict[str, Any], env: dict[str, str], log_path: Path
                 ) -> None:
        self.rank, self.log_path = rank, log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fairspec.engines.replica"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, env=env, text=True, encoding="utf-8")
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.send(setup)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.messages.put(json.loads(line))
            except ValueError:
                continue  # not ours (the protocol has its own descriptor; see replica.py)
        self.messages.put({"exited": self.process.wait()})

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise self.failure("stopped before its request was sent") from None

    def receive(self, timeout: float | None = None) -> dict[str, Any]:
        try:
            message = self.messages.get(timeout=timeout)
        except queue.Empty:
            raise self.failure(f"sent nothing for {timeout:.0f} s") from None
        if "exited" in message:
            raise self.failure(f"exited with status {message['exited']}")
        if "error" in message:
            raise self.failure(message["error"])
        return message

    def failure(self, what: str) -> EngineFailed:
        self._log.flush()
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        tail = "\n".join(deque(lines, maxlen=12))
        return EngineFailed(f"exam replica {self.rank} {what}; read {self.log_path}\n"
                            f"last lines of its log:\n{tail}")

    def close(self, timeout: float = 60.0) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()  # end of requests: the replica closes its engine
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


class ReplicatedEngine:
    """An ``Engine`` over ``replicas`` engine processes, prompts sharded, answers merged."""

    name = "replicas"

    def __init__(self, engine: str, model_path: str, *, replicas: int, per_replica: int,
                 device: str, options: dict[str, Any], log_dir: Path | None = None) -> None:
        if replicas < 2:
            raise ValueError(f"a replicated engine needs at least 2 replicas, got {replicas}")
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="fairspec-replicas-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        setup = {"engine": engine, "model_path": model_path, "options": options}
        envs = [replica_env(r, replicas, per_replica, device, os.environ) for r in range(replicas)]
        log.info("starting %d %s replicas of %s (logs in %s)", replicas, engine, model_path,
                 self.log_dir)
        self._replicas = [_Replica(r, setup, envs[r], self.log_dir / f"replica-{r}.log")
                          for r in range(replicas)]
        try:
            for replica in self._replicas:
                replica.receive(timeout=START_TIMEOUT_S)  # {"ready": true}
        except BaseException:
            self.close()
            raise

    @property
    def replicas(self) -> int:
        return len(self._replicas)

    def generate(self, prompts: Sequence[str], sampling: Sampling) -> Iterator[Completion]:
        """Send each replica its shard, then yield the completions in prompt order."""
        if not self._replicas:
            raise RuntimeError("this ReplicatedEngine is closed")
        work = [(replica, start, end) for replica, (start, end)
                in zip(self._replicas, shards(len(prompts), len(self._replicas)), strict=True)
                if end > start]
        for replica, start, end in work:
            replica.send({"prompts": list(prompts[start:end]),
                          "sampling": asdict(replace(sampling, seed=sampling.seed + start))})
        for replica, start, end in work:
            shard: dict[int, Completion] = {}
            while True:
                message = replica.receive()
                if "done" in message:
                    break
                completion = Completion(**message["completion"])
                shard[completion.position] = replace(completion, position=start + completion.position)
            if sorted(shard) != list(range(end - start)):
                raise replica.failure(f"answered {len(shard)} of its {end - start} prompts")
            for position in range(end - start):
                yield shard[position]

    def close(self) -> None:
        replicas, self._replicas = self._replicas, []
        for replica in replicas:
            replica.close()
