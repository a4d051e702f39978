"""The training section's rules (fairspec.dsl.training_rules): the optimizer name against the
installed transformers, and what ``precision: pure`` cannot do; each at its key's line."""

from __future__ import annotations

import pytest

from fairspec.dsl import load_spec_text
from fairspec.errors import SpecError

SPEC = """
fairspec: 1
name: training-rules
task:
  kind: math
  dataset: {path: builtin:data/svamp-mini}
  fields: {question: question_concat, answer: Answer}
student: {model: builtin:smollm2-135m-instruct, hardware: HARDWARE}
teachers:
  - {name: a, provider: hf, model: builtin:smollm2-135m-instruct}
  - {name: b, provider: hf, model: builtin:smollm2-135m-instruct}
training: TRAINING
"""
TRAINING_LINE = SPEC.splitlines().index("training: TRAINING") + 1


def spec(training: str, hardware: str = "{device: cpu}") -> str:
    return SPEC.replace("TRAINING", training).replace("HARDWARE", hardware)


@pytest.mark.parametrize("name", ["adamw_torch_fused", "adafactor", "adamw_8bit",
                                  "paged_adamw_32bit", "paged_adamw_8bit"])
def test_the_optimizers_users_pick_are_accepted(tmp_path, name):
    loaded = load_spec_text(spec(f"{{optimizer: {name}}}"), base_dir=tmp_path)
    assert loaded.spec.training.optimizer == name


def test_an_optimizer_transformers_does_not_know_is_refused_at_its_line_with_the_nearest(tmp_path):
    from transformers.training_args import OptimizerNames

    from fairspec.training.optimizers import known_optimizers

    with pytest.raises(SpecError) as caught:
        load_spec_text(spec("{optimizer: paged_adamw_33bit}"), base_dir=tmp_path)
    message = str(caught.value)
    assert f":{TRAINING_LINE}:" in message and "training.optimizer" in message
    assert "'paged_adamw_33bit' is not an optimizer of the installed transformers' Trainer" in message
    assert "did you mean 'paged_adamw_32bit'?" in message
    # read from transformers' source without importing it: exactly the Trainer's names
    assert set(known_optimizers()) == {member.value for member in OptimizerNames}


def test_pure_fp16_weights_are_refused_because_the_grad_scaler_cannot_unscale_them(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_spec_text(spec("{precision: pure}", "{device: cuda, dtype: fp16}"), base_dir=tmp_path)
    message = str(caught.value)
    assert f":{TRAINING_LINE}:" in message and "training.precision" in message
    assert "Attempting to unscale FP16 gradients" in message and "precision: mixed" in message
    # mixed fp16 (fp32 master weights) and pure bf16 are both fine
    load_spec_text(spec("{precision: mixed}", "{device: cuda, dtype: fp16}"), base_dir=tmp_path)
    load_spec_text(spec("{precision: pure}", "{device: cuda, dtype: bf16}"), base_dir=tmp_path)


def test_pure_precision_is_refused_with_deepspeed_which_keeps_fp32_weights_itself(tmp_path):
    with pytest.raises(SpecError, match="precision pure does not apply with strategy deepspeed"):
        load_spec_text(spec("{precision: pure}",
                            "{device: cuda, dtype: bf16, gpus: 2, strategy: deepspeed}"),
                       base_dir=tmp_path)
