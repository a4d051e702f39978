"""How long ``task.decontaminate`` takes on GSM8K at the paper's sizes, and what it finds.

    python bench/decontaminate.py [SHARED_DATA]   # default ../shared/data

GSM8K's 7,473 training questions, each with a rationale and a feedback (stood in for by
the dataset's own worked solution, twice: teachers' texts are about as long), checked
against its 1,319 test questions, with GPT-3's n (13) and open-r1's (8): the time to build
the test table, the time to check every text, and how many examples hold a test question.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from fairspec.tasks.contamination import TestNgrams


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(shared: Path) -> None:
    train = rows(shared / "gsm8k" / "train.jsonl")
    test = rows(shared / "gsm8k" / "test.jsonl")
    texts = [text for row in train for text in (row["question"], row["answer"], row["answer"])]
    words = sum(len(t.split()) for t in texts)
    print(f"GSM8K: {len(train):,} training questions, {len(texts):,} texts ({words / 1e6:.2f} M words) "
          f"against {len(test):,} test questions")
    for n in (13, 8):
        started = time.perf_counter()
        table = TestNgrams(enumerate(row["question"] for row in test), n=n)
        built = time.perf_counter() - started
        started = time.perf_counter()
        found = sum(1 for text in texts if table.find(text) is not None)
        checked = time.perf_counter() - started
        print(f"  n = {n:2d}: table {built:.2f} s, check {checked:.2f} s, total {built + checked:.2f} s; "
              f"{found} texts hold a test question ({table.shared_ngrams} template n-grams ignored)")


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
