"""Cross-field rules of the spec language (fairspec.dsl.rules) that a schema cannot state."""

from __future__ import annotations

import pytest

from fairspec.dsl import load_spec_text
from fairspec.errors import SpecError


def test_budget_needs_a_price_for_every_paid_teacher(tmp_path):
    with pytest.raises(SpecError, match="budget.max_usd is set but this teacher has no price"):
        load_spec_text("""
fairspec: 1
name: no-price
task:
  kind: math
  dataset: {path: builtin:data/svamp-mini}
  fields: {question: question_concat, answer: Answer}
student: {model: builtin:smollm2-135m-instruct}
teachers:
  - {name: a, provider: openai, model: gpt-4o, api_key_env: OPENAI_API_KEY}
budget: {max_usd: 5}
""", base_dir=tmp_path)
