"""A tiny spec on the paper authors' recorded SVAMP round: the first train rows of
svamp-mini, the authors' exam, rationales, feedback and scores for them, as local files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from fairspec.resources import resource_root

AUTHORS = resource_root() / "data" / "fair-authors-svamp"
PREFIX = "Llama-2-7b-chat-hf_svamp_"
TRAIN_ROWS = 12  # svamp-mini's rows are the first of the split the authors' ids index


def authors_rows(kind: str) -> list[dict]:
    rows = json.loads(gzip.decompress((AUTHORS / f"{PREFIX}{kind}_round0.json.gz").read_bytes()))
    return [r for r in rows if r["id"] < TRAIN_ROWS]


def live_committee_spec(folder: Path, name: str, teachers: str, *, review: str = "{threshold: 3}",
                        generation: str = "", tail: str = "") -> Path:
    """``folder/spec.yaml``: the authors' recorded exam (6 mistakes, no model run) with a live
    committee (``teachers``: the YAML list items), stopping nowhere (pass ``--until``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "false.json").write_text(json.dumps(authors_rows("false")))
    spec = folder / "spec.yaml"
    spec.write_text(f"""\
fairspec: 1
name: {name}
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini, limit: {{train: {TRAIN_ROWS}, test: 3}}}}
  fields: {{question: question_concat, answer: Answer}}
student:
  model: builtin:smollm2-135m-instruct
  hardware: {{device: cpu}}
  exam:
    engine: recorded
    recorded: {{path: false.json, answer: student_wrong_pred, only_mistakes: true,
               prediction: student_wrong_final_answer, match: index}}
{generation}teachers:
{teachers}review: {review}
output_dir: runs
{tail}""")
    return spec


def spec_text(folder: Path, *, exam_match: str = "index", only_mistakes: bool = True,
              fallback_url: str | None = None, key_env: str = "KATAN_KEY") -> str:
    """The spec (files written to ``folder``); with ``fallback_url`` each teacher asks an
    OpenAI-compatible server there what the files lack."""
    fields = "" if fallback_url is None else \
        f'    base_url: "{fallback_url}"\n    api_key_env: {key_env}\n'
    fallback = "" if fallback_url is None else "      fallback: openai\n"
    for kind in ("false", "rationale", "feedback"):
        (folder / f"{kind}.json").write_text(json.dumps(authors_rows(kind)))
    return f"""\
fairspec: 1
name: rec
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini, limit: {{train: {TRAIN_ROWS}, test: 3}}}}
  fields: {{question: question_concat, answer: Answer}}
student:
  model: builtin:smollm2-135m-instruct
  hardware: {{device: cpu}}
  exam:
    engine: recorded
    recorded: {{path: false.json, answer: student_wrong_pred, only_mistakes: {str(only_mistakes).lower()},
               prediction: student_wrong_final_answer, match: {exam_match}}}
teachers:
  - name: gpt
    provider: recorded
    model: gpt-3.5-turbo
{fields}    recorded: &files
      match: index
      rationale: {{path: rationale.json, column: "{{teacher}}_rationale", item: 0}}
      feedback: {{path: feedback.json, column: "{{teacher}}_feedback"}}
      review: {{path: rationale.json, column: "{{author}}_rationale", item: reviewer_rank}}
{fallback}  - name: gemini
    provider: recorded
    model: gemini-1.0-pro
{fields}    recorded: *files
  - name: mixtral
    provider: recorded
    model: mixtral
{fields}    recorded: {{<<: *files, file_name: mistral}}
review: {{threshold: 3, accept: ">", min_valid_scores: 2}}
output_dir: runs
"""
