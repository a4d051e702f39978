"""``training.attn_implementation`` from the spec to the model: the schema's words, the rule
that keeps flash_attention_2 off CPUs and fp32, the plan's train settings (no fingerprint),
the preflight's flash-attn check, and the model load."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from katan_runs import committee, compile_run, spec_text
from training_data import make_dataset, train_args

from fairspec.dsl import load_spec_text
from fairspec.errors import SpecError
from fairspec.plan import Environment, compile_plan
from fairspec.run.preflight import check
from fairspec.training.launch import attention_argument

SPECS = Path(__file__).resolve().parents[2] / "specs"
URL = "http://127.0.0.1:9/v1"


def paper_train_stage(training: str = "", **hardware: str):
    """The train stage of the paper's gsm8k spec (4 GPUs, fp16) with extra training keys."""
    text = (SPECS / "gsm8k.yaml").read_text()
    for key, value in hardware.items():
        text = re.sub(rf"^(\s+){key}: \S+", rf"\g<1>{key}: {value}", text, count=1, flags=re.M)
    text = re.sub(r"^(training:.*\n)", lambda found: found.group(1) + training, text,
                  count=1, flags=re.M)
    loaded = load_spec_text(text, base_dir=SPECS)
    return compile_plan(loaded, Environment(cuda_devices=8, vllm=True)).runs[0].stage("train")


def test_the_attention_is_a_train_setting_outside_the_fingerprint():
    """The same math up to numerics, like the batch layout: changing it retrains nothing."""
    auto = paper_train_stage()
    assert auto.settings["attn_implementation"] == "auto"
    for name in ("flash_attention_2", "sdpa", "eager"):
        chosen = paper_train_stage(f"  attn_implementation: {name}\n")
        assert chosen.settings["attn_implementation"] == name
        assert chosen.fingerprint == auto.fingerprint
        assert "attn_implementation" not in chosen.identity


def test_an_attention_transformers_does_not_name_so_is_refused_with_the_choices(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_spec_text(spec_text(committee(URL), training="{attn_implementation: flash2}"),
                       base_dir=tmp_path)
    message = str(caught.value)
    assert "training.attn_implementation" in message
    assert all(name in message for name in ("'auto'", "'sdpa'", "'flash_attention_2'", "'eager'"))


@pytest.mark.parametrize(("hardware", "said"), [
    ("{device: cpu}", "flash_attention_2 needs a GPU: flash-attn has no CPU kernel"),
    ("{device: cuda, dtype: fp32}", "flash_attention_2 computes in fp16 or bf16 only"),
])
def test_flash_attention_on_a_cpu_or_in_fp32_is_refused_at_its_line(tmp_path, hardware, said):
    student = f"{{model: builtin:smollm2-135m-instruct, hardware: {hardware}}}"
    text = spec_text(committee(URL), student=student,
                     training="{attn_implementation: flash_attention_2}")
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, base_dir=tmp_path)
    line = text.splitlines().index("training: {attn_implementation: flash_attention_2}") + 1
    message = str(caught.value)
    assert f":{line}:" in message and "training.attn_implementation" in message
    assert said in message and "attn_implementation: auto" in message


@pytest.mark.parametrize(("hardware", "name"), [
    ("{device: cuda}", "flash_attention_2"), ("{device: cuda, dtype: fp16}", "flash_attention_2"),
    ("{device: cpu}", "sdpa"), ("{device: cpu}", "eager"), ("{device: cpu}", "auto"),
])
def test_the_attentions_that_can_run_there_are_accepted(tmp_path, hardware, name):
    student = f"{{model: builtin:smollm2-135m-instruct, hardware: {hardware}}}"
    loaded = load_spec_text(spec_text(committee(URL), student=student,
                                      training=f"{{attn_implementation: {name}}}"), base_dir=tmp_path)
    assert loaded.spec.training.attn_implementation == name


def flash_problems(tmp_path: Path, hardware: str, name: str = "flash_attention_2") -> list[str]:
    student = f"{{model: builtin:smollm2-135m-instruct, hardware: {hardware}}}"
    made = compile_run(spec_text(committee(URL), student=student,
                                 training=f"{{attn_implementation: {name}}}"), tmp_path)
    return [p for p in check(made.plan, [made.run], ("train",)) if "attn_implementation" in p]


def test_preflight_needs_flash_attn_to_import_with_the_install_command(tmp_path, monkeypatch):
    real_import = importlib.import_module

    def without_flash_attn(name: str, *args: object) -> object:
        if name == "flash_attn":  # absent even where it is installed
            raise ImportError("No module named 'flash_attn'")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_flash_attn)
    assert flash_problems(tmp_path, "{device: cuda}") == [
        "training.attn_implementation: flash_attention_2 needs flash_attn, which does not import "
        "here (ImportError: No module named 'flash_attn'): pip install flash-attn "
        "--no-build-isolation (or attn_implementation: auto)"]
    assert flash_problems(tmp_path, "{device: cuda}", "sdpa") == []


def test_preflight_refuses_flash_attention_where_an_auto_device_resolved_to_the_cpu(tmp_path,
                                                                                  monkeypatch):
    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",  # flash_attn "installed"
                        lambda name, *args: object() if name == "flash_attn" else real_import(name, *args))
    assert flash_problems(tmp_path, "{device: auto}") == [
        "training.attn_implementation: flash_attention_2 needs a GPU and bf16 or fp16, and "
        "training runs on cpu in fp32 (attn_implementation: auto)"]
    assert flash_problems(tmp_path, "{device: cuda}") == []


def test_the_model_is_loaded_with_the_attention_asked_for_and_auto_leaves_it_to_transformers():
    assert attention_argument({}) == attention_argument({"attn_implementation": "auto"}) == {}
    assert attention_argument({"attn_implementation": "flash_attention_2"}) == \
        {"attn_implementation": "flash_attention_2"}


@pytest.mark.slow
def test_training_runs_with_the_attention_asked_for_and_packs(tmp_path, small_student):
    from fairspec.training.launch import train

    make_dataset(tmp_path)
    stats = train(train_args(tmp_path, small_student, epochs=1, attn_implementation="eager"))
    assert stats["attention"] == "eager" and stats["packed"] is True
    assert stats["steps"] == 3
