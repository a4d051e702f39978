"""What the spec says is what runs: settings a teacher's provider never uses are notes at
their line (the spec stays valid), and a variant's own problems are reported even while
the base spec has problems of its own."""

from __future__ import annotations

import pytest

from fairspec.dsl import load_spec_text
from fairspec.errors import SpecError

HEAD = """\
fairspec: 1
name: notes
task:
  kind: math
  dataset: {path: builtin:data/svamp-mini}
  fields: {question: question_concat, answer: Answer}
student: {model: builtin:smollm2-135m-instruct}
"""


def test_limits_and_penalties_a_provider_never_uses_are_notes_at_their_line(tmp_path):
    loaded = load_spec_text(HEAD + """\
generation: {presence_penalty: 0.5}
teachers:
  - {name: a, provider: hf, model: builtin:smollm2-135m-instruct, rpm: 10, timeout_s: 30}
  - {name: b, provider: hf, model: builtin:smollm2-135m-instruct, generation: {frequency_penalty: 0.2}}
  - {name: c, provider: openai, model: gpt-4o, api_key_env: K, rpm: 10, timeout_s: 30}
""", base_dir=tmp_path)
    notes = {(n.path, n.message.split(" has no effect")[0]) for n in loaded.notes}
    assert ("teachers[0].rpm", "rpm") in notes and ("teachers[0].timeout_s", "timeout_s") in notes
    assert ("generation.presence_penalty", "presence_penalty 0.5") in notes
    assert ("teachers[1].generation.frequency_penalty", "frequency_penalty 0.2") in notes
    assert not any(path.startswith("teachers[2]") for path, _ in notes)  # a remote teacher uses them
    assert {n.line for n in loaded.notes if n.path == "teachers[0].rpm"} == {10}


def test_a_variants_problems_show_while_the_base_has_its_own(tmp_path):
    with pytest.raises(SpecError) as found:
        load_spec_text(HEAD + """\
teachers:
  - {name: a, provider: hf, model: builtin:smollm2-135m-instruct}
  - {name: b, provider: hf, model: builtin:smollm2-135m-instruct}
training: {epochs: 0}
variants:
  - {name: v1, set: {training.alpha: 3}}
""", base_dir=tmp_path)
    paths = [p.path for p in found.value.problems]
    assert "training.epochs" in paths  # the base's
    assert any(p.startswith("variants[0].set") for p in paths), paths  # and the variant's
    assert sum("training.epochs" in p.message or p.path == "training.epochs"
               for p in found.value.problems) == 1  # the base's problem once, not per variant
