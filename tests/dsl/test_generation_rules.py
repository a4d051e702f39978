"""Request shapes at validate time: a value a teacher's API refuses is an error at its line,
a shared value a teacher does not receive is a note (fairspec.dsl.generation_rules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fairspec.dsl import load_spec_text
from fairspec.errors import SpecError

SPEC = """\
fairspec: 1
name: today
task:
  kind: math
  dataset: {path: builtin:data/svamp-mini}
  fields: {question: question_concat, answer: Answer}
student: {model: builtin:smollm2-135m-instruct}
GENERATION
teachers:
  - name: reasoner
    provider: openai
    model: o4-mini
    REASONER
    api_key_env: OPENAI_API_KEY
  - {name: chat, provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY}
  - {name: gem, provider: gemini, model: gemini-2.5-flash, api_key_env: GEMINI_API_KEY, GEM}
"""


def spec(generation: str = "", reasoner: str = "concurrency: 4", gem: str = "") -> str:
    return (SPEC.replace("GENERATION", generation).replace("REASONER", reasoner)
            .replace(", GEM", f", {gem}" if gem else ""))


def problems(text: str, tmp_path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, base_dir=tmp_path)
    return [p.format() for p in caught.value.problems]


def test_the_paper_defaults_are_fine_for_a_reasoning_model(tmp_path) -> None:
    loaded = load_spec_text(spec(), base_dir=tmp_path)
    assert loaded.notes == []  # the Table 7 defaults are simply not sent to o4-mini


def test_a_sampling_value_on_a_reasoning_teacher_is_an_error_at_its_line(tmp_path) -> None:
    text = spec(reasoner="generation: {temperature: 0.3}")
    found = problems(text, tmp_path)
    assert len(found) == 1
    line = text.splitlines().index("    generation: {temperature: 0.3}") + 1
    assert found[0].startswith(f"<spec>:{line}:")
    assert "teachers[0].generation.temperature" in found[0]
    assert "refuses temperature 0.3" in found[0] and "reasoning_effort" in found[0]


def test_a_shared_sampling_value_is_a_note_for_the_reasoning_teacher_only(tmp_path) -> None:
    loaded = load_spec_text(spec(generation="generation: {temperature: 0.3}"), base_dir=tmp_path)
    notes = [n.format() for n in loaded.notes]
    assert len(notes) == 1 and "generation.temperature" in notes[0]
    assert "not sent to o4-mini" in notes[0] and "reasoner" in notes[0]


def test_reasoning_effort_values_follow_the_family(tmp_path) -> None:
    found = problems(spec(reasoner="generation: {reasoning_effort: minimal}"), tmp_path)
    assert len(found) == 1 and "low | medium | high, not 'minimal'" in found[0]
    load_spec_text(spec(reasoner="generation: {reasoning_effort: high}"), base_dir=tmp_path)
    # shared: fine for o4-mini, a note for the chat model and the Gemini teacher
    loaded = load_spec_text(spec(generation="generation: {reasoning_effort: low}"), base_dir=tmp_path)
    assert sorted(n.format().split("teacher ")[1].split(":")[0] for n in loaded.notes) == ["chat", "gem"]


@pytest.mark.parametrize(("gem", "expected"), [
    ("generation: {thinking: 0}", None),                          # Flash can turn it off
    ("generation: {thinking: 50000}", "budget of 1-24576 tokens"),
    ("generation: {thinking: high}", "budget in tokens, not a level"),
    ("model: gemini-2.5-pro, generation: {thinking: 0}", "cannot turn thinking off"),
    ("model: gemini-3-pro-preview, generation: {thinking: high}", None),
    ("model: gemini-3-pro-preview, generation: {thinking: extreme}", "a budget in tokens (0 or more"),
    ("model: gemini-2.0-flash, generation: {thinking: 1024}", "does not think"),
])
def test_thinking_budgets_and_levels_follow_the_family(tmp_path, gem, expected) -> None:
    text = spec(gem=gem)
    if gem.startswith("model:"):
        text = text.replace("model: gemini-2.5-flash, ", "")
    if expected is None:
        load_spec_text(text, base_dir=tmp_path)
        return
    found = problems(text, tmp_path)
    assert len(found) == 1 and expected in found[0], found


def test_claude_takes_temperature_or_top_p_and_no_sampling_while_thinking(tmp_path) -> None:
    claude = ("  - {name: claude, provider: openai, model: claude-sonnet-4-5, api_key_env: KEY, "
              "base_url: 'https://api.anthropic.com/v1/', GEN}\n")

    def with_claude(gen: str) -> str:
        return spec() + claude.replace("GEN", f"generation: {gen}")

    found = problems(with_claude("{temperature: 0.5, top_p: 0.9}"), tmp_path)
    assert len(found) == 1 and "temperature or top_p, not both" in found[0]
    load_spec_text(with_claude("{top_p: 0.9}"), base_dir=tmp_path)
    found = problems(with_claude("{thinking: 2048, temperature: 0.5}"), tmp_path)
    assert len(found) == 1 and "while thinking refuses temperature" in found[0]
    found = problems(with_claude("{temperature: 1.5}"), tmp_path)
    assert len(found) == 1 and "temperature 0-1" in found[0]


def test_extra_body_is_for_openai_compatible_hosts_and_cannot_replace_managed_fields(tmp_path) -> None:
    found = problems(spec(gem="generation: {extra_body: {safety: off}}"), tmp_path)
    assert len(found) == 1 and "extra_body does not apply to provider 'gemini'" in found[0]
    found = problems(spec(reasoner="generation: {extra_body: {max_tokens: 9}}"), tmp_path)
    assert len(found) == 1 and "sets max_tokens, which fairspec fills" in found[0]
    load_spec_text(spec(reasoner="generation: {extra_body: {service_tier: flex}}"), base_dir=tmp_path)


def test_validate_prints_notes_and_stays_ok(tmp_path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(spec(generation="generation: {temperature: 0.3}"))
    done = subprocess.run([str(Path(sys.executable).parent / "fairspec"), "validate", str(path)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "note:" in done.stderr and "not sent to o4-mini" in done.stderr
    assert ": ok (today" in done.stdout
