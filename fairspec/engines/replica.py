"""One replica of a data-parallel exam (:mod:`fairspec.engines.replicas` starts it).

Line 1 on stdin: ``{"engine", "model_path", "options"}`` (``make_single_engine``'s arguments);
then one request per line, ``{"prompts": [...], "sampling": {...}}``. On its own copy of
the original stdout it writes ``{"ready": true}``, then per request one
``{"completion": {...}}`` line per prompt and ``{"done": true}``; ``{"error": ...}`` if it
fails. Everything the libraries print goes to stderr (the replica's log): the protocol
has the descriptor to itself. End of stdin closes the engine.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import asdict


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # vLLM logs to stdout: send it, and its engine process, to the log
    sys.stdout = sys.stderr

    def say(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    from fairspec.engines.base import Sampling
    from fairspec.engines.single import make_single_engine

    try:
        setup = json.loads(sys.stdin.readline())
        engine = make_single_engine(setup["engine"], setup["model_path"], **setup["options"])
    except Exception as exc:  # noqa: BLE001 — reported to the parent, which raises
        traceback.print_exc()
        say({"error": f"could not start its engine: {type(exc).__name__}: {exc}"})
        return 1
    say({"ready": True})
    try:
        for line in sys.stdin:
            request = json.loads(line)
            sampling = Sampling(**request["sampling"])
            for completion in engine.generate(request["prompts"], sampling):
                say({"completion": asdict(completion)})
            say({"done": True})
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        say({"error": f"failed: {type(exc).__name__}: {exc}"})
        return 1
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
