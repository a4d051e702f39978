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


LOGPROB_SPEC = """
fairspec: 1
name: logprob-review
task:
  kind: math
  dataset: {path: builtin:data/svamp-mini}
  fields: {question: question_concat, answer: Answer}
student: {model: builtin:smollm2-135m-instruct}
teachers:
  - {name: a, provider: hf, model: builtin:smollm2-135m-instruct}
  - {name: b, provider: hf, model: builtin:smollm2-135m-instruct}
review: {scoring: logprobs, REVIEW}
"""


def test_logprob_scoring_needs_single_digit_scores(tmp_path):
    with pytest.raises(SpecError, match="single-digit scores") as caught:
        load_spec_text(LOGPROB_SPEC.replace("REVIEW", "score_range: [1, 10], threshold: 7"),
                       base_dir=tmp_path)
    assert "review.score_range" in str(caught.value)
    spec = load_spec_text(LOGPROB_SPEC.replace("REVIEW", "score_range: [0, 9], threshold: 5"),
                          base_dir=tmp_path)
    assert spec.spec.review.scoring == "logprobs"


def test_logprob_scoring_without_fallback_rejects_a_reviewer_that_cannot_return_them(
        tmp_path, monkeypatch):
    from dataclasses import replace

    from fairspec.providers import registry

    text = LOGPROB_SPEC.replace("REVIEW", "scoring_fallback: none")
    load_spec_text(text, base_dir=tmp_path)  # hf reads its own logits: fine
    kinds = dict(registry.KINDS)
    kinds["hf"] = replace(kinds["hf"], logprobs=False)  # a kind with no log-probabilities
    monkeypatch.setattr(registry, "KINDS", kinds)
    with pytest.raises(SpecError, match="cannot return log-probabilities") as caught:
        load_spec_text(text, base_dir=tmp_path)
    assert "teachers[0].provider" in str(caught.value) or "teachers.0.provider" in str(caught.value)
    # with the text score as fallback the same committee is valid
    load_spec_text(LOGPROB_SPEC.replace("REVIEW", "scoring_fallback: text"), base_dir=tmp_path)


def test_an_unknown_scoring_method_is_refused(tmp_path):
    with pytest.raises(SpecError, match="scoring"):
        load_spec_text(LOGPROB_SPEC.replace("scoring: logprobs, REVIEW", "scoring: vibes"),
                       base_dir=tmp_path)


TRACKED_SPEC = LOGPROB_SPEC.replace("review: {scoring: logprobs, REVIEW}\n",
                                    "training: {report_to: TRACKERS}\n")


def test_report_to_names_are_the_installed_trainers_integrations_at_their_line(tmp_path):
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    spec = load_spec_text(TRACKED_SPEC.replace("TRACKERS", "[tensorboard, mlflow]"), base_dir=tmp_path)
    assert spec.spec.training.report_to == ["tensorboard", "mlflow"]
    with pytest.raises(SpecError) as caught:
        load_spec_text(TRACKED_SPEC.replace("TRACKERS", "[tensorbord, all, mlflow, mlflow]"),
                       base_dir=tmp_path)
    message = str(caught.value)
    line = TRACKED_SPEC.splitlines().index("training: {report_to: TRACKERS}") + 1
    assert f":{line}:" in message and "training.report_to[0]" in message
    assert "did you mean 'tensorboard'" in message
    assert "training.report_to[1]: 'all' is not a tracker name" in message
    assert "training.report_to[3]: 'mlflow' is listed twice" in message
    # the names offered are exactly what the installed Trainer accepts (read without importing it)
    from fairspec.tracking import known_integrations

    assert set(known_integrations()) == set(INTEGRATION_TO_CALLBACK)
    assert load_spec_text(LOGPROB_SPEC.replace("review: {scoring: logprobs, REVIEW}\n", ""),
                          base_dir=tmp_path).spec.training.report_to == []
