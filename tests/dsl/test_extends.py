"""`extends:`: a spec on a chain of base specs merges over them, compiles to the plan of the
same spec written flat, and reports every problem in the file and at the line that wrote it."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from fairspec.dsl import load_spec
from fairspec.errors import SpecError
from fairspec.plan import Environment, compile_plan
from fairspec.resources import resource_root

RATIONALE = (resource_root() / "prompts" / "math" / "rationale.j2").read_text()

BASE = """\
fairspec: 1
name: lab-base
task:
  kind: math
  dataset: {path: builtin:data/svamp-mini, limit: {train: 8, test: 4}}
  fields: {question: question_concat, answer: Answer}
student:
  model: builtin:smollm2-135m-instruct
  hardware: {device: cpu}
teachers:
  - {name: gpt, provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY}
  - {name: gem, provider: gemini, model: gemini-2.0-flash, api_key_env: GEMINI_API_KEY}
prompts:
  rationale: prompts/rationale.j2
review:
  threshold: 3.5
  min_valid_scores: 2
training:
  alpha: 0.5
  epochs: 2
variants:
  - name: no-review
    set: {review.enabled: false}
"""
MID = """\
extends: ../base/base.yaml
student:
  exam: {temperature: 0.5}
review:
  min_valid_scores: !delete
training:
  epochs: 3
"""
CHILD = """\
extends: ../mid/mid.yaml
name: lab-child
teachers:
  - {name: gpt, provider: openai, model: gpt-4o, api_key_env: OPENAI_API_KEY}
  - {name: gem, provider: gemini, model: gemini-2.0-flash, api_key_env: GEMINI_API_KEY}
training:
  alpha: 0.25
"""
#: CHILD written out by hand: what the chain must mean
FLAT = """\
fairspec: 1
name: lab-child
task:
  kind: math
  dataset: {path: builtin:data/svamp-mini, limit: {train: 8, test: 4}}
  fields: {question: question_concat, answer: Answer}
student:
  model: builtin:smollm2-135m-instruct
  hardware: {device: cpu}
  exam: {temperature: 0.5}
teachers:
  - {name: gpt, provider: openai, model: gpt-4o, api_key_env: OPENAI_API_KEY}
  - {name: gem, provider: gemini, model: gemini-2.0-flash, api_key_env: GEMINI_API_KEY}
prompts:
  rationale: ../base/prompts/rationale.j2
review:
  threshold: 3.5
training:
  alpha: 0.25
  epochs: 3
variants:
  - name: no-review
    set: {review.enabled: false}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    write(tmp_path / "base" / "prompts" / "rationale.j2", RATIONALE + "\nBase lab's wording.")
    # a file of the same name beside the child: a base's path must not resolve to it
    write(tmp_path / "child" / "prompts" / "rationale.j2", RATIONALE + "\nThe wrong file.")
    write(tmp_path / "base" / "base.yaml", BASE)
    write(tmp_path / "mid" / "mid.yaml", MID)
    return write(tmp_path / "child" / "child.yaml", CHILD)


def problems_of(path: Path) -> list:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value.problems


def test_a_three_level_chain_compiles_to_the_plan_of_the_flat_spec(chain: Path) -> None:
    loaded = load_spec(chain)
    spec = loaded.spec
    assert (spec.name, spec.training.alpha, spec.training.epochs) == ("lab-child", 0.25, 3)
    assert spec.teachers[0].model == "gpt-4o" and spec.student.exam.temperature == 0.5
    assert spec.review.threshold == 3.5
    assert spec.review.min_valid_scores == 1  # deleted in mid: the default again
    assert list(loaded.variants) == ["no-review"]
    flat = load_spec(write(chain.parent / "flat.yaml", FLAT))
    assert flat.spec == spec
    chained, written = compile_plan(loaded, Environment()), compile_plan(flat, Environment())
    assert [r.name for r in chained.runs] == [r.name for r in written.runs] == \
        ["lab-child", "lab-child.no-review"]
    for a, b in zip(chained.runs, written.runs, strict=True):
        assert [(s.name, s.fingerprint) for s in a.stages] == [(s.name, s.fingerprint) for s in b.stages]
        assert [s.settings for s in a.stages] == [s.settings for s in b.stages]


def test_a_base_path_resolves_from_the_file_that_wrote_it(chain: Path) -> None:
    loaded = load_spec(chain)
    assert loaded.spec.prompts.rationale == "../base/prompts/rationale.j2"
    teach = compile_plan(loaded, Environment()).runs[0].stage("teach").settings
    file = (chain.parent / teach["templates"]["rationale"]["ref"]).resolve()
    assert file == (chain.parents[1] / "base" / "prompts" / "rationale.j2").resolve()
    assert "Base lab's wording." in file.read_text()


def test_the_plan_lists_the_chain_with_each_file_hash(chain: Path) -> None:
    plan = compile_plan(load_spec(chain), Environment())
    files = [chain, chain.parents[1] / "mid" / "mid.yaml", chain.parents[1] / "base" / "base.yaml"]
    assert [f["file"] for f in plan.spec_files] == ["child.yaml", "../mid/mid.yaml",
                                                    "../base/base.yaml"]
    assert [f["sha256"] for f in plan.spec_files] == \
        [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]


def test_problems_are_reported_in_the_file_and_line_that_wrote_them(chain: Path) -> None:
    base = chain.parents[1] / "base" / "base.yaml"
    write(base, BASE.replace("  epochs: 2", "  epochs: two"))
    write(chain, CHILD.replace("  alpha: 0.25", "  alpha: 1.5"))
    by_path = {p.path: p for p in problems_of(chain)}
    alpha = by_path["training.alpha"]
    assert (Path(alpha.file).name, alpha.line) == ("child.yaml", 7)
    assert "base spec" not in alpha.message
    # epochs is written in base (two) and again in mid (3): mid's value is the one used
    assert "training.epochs" not in by_path
    write(chain.parents[1] / "mid" / "mid.yaml", MID.replace("training:\n  epochs: 3\n", ""))
    by_path = {p.path: p for p in problems_of(chain)}
    epochs = by_path["training.epochs"]
    assert (Path(epochs.file).name, epochs.line, epochs.col) == ("base.yaml", 20, 11)
    assert "(base spec: " in epochs.message and "child.yaml extends" in epochs.message
    assert epochs.message.endswith("mid/mid.yaml extends " + str(Path(epochs.file)) + ")")


def test_a_rule_on_a_base_value_points_at_the_base(chain: Path) -> None:
    base = chain.parents[1] / "base" / "base.yaml"
    write(base, BASE.replace("hardware: {device: cpu}", "hardware: {device: cpu, strategy: fsdp}"))
    found = problems_of(chain)
    assert found and {(Path(p.file).name, p.line, p.path) for p in found} == \
        {("base.yaml", 9, "student.hardware.strategy")}


def test_a_base_syntax_error_names_the_base_and_who_pulled_it_in(chain: Path) -> None:
    write(chain.parents[1] / "base" / "base.yaml", BASE.replace("  threshold: 3.5", "  threshold: [3.5"))
    (problem,) = problems_of(chain)
    assert Path(problem.file).name == "base.yaml" and "YAML syntax error" in problem.message
    assert "(base spec: " in problem.message


def test_a_cycle_is_an_error_naming_the_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\nname: b\n")
    (problem,) = problems_of(a)
    assert Path(problem.file).name == "b.yaml" and problem.line == 1 and problem.path == "extends"
    cycle = problem.message.split(" (base spec: ")[0]
    assert cycle == f"extends makes a cycle: {a} -> {tmp_path / 'b.yaml'} -> {a}"
    itself = write(tmp_path / "self.yaml", "extends: ./self.yaml\n")
    (problem,) = problems_of(itself)
    assert "cycle" in problem.message


def test_a_missing_base_is_reported_at_the_extends_line(tmp_path: Path) -> None:
    child = write(tmp_path / "child.yaml", "name: c\nextends: nowhere/base.yaml\n")
    (problem,) = problems_of(child)
    assert (problem.file, problem.line, problem.col, problem.path) == (str(child), 2, 10, "extends")
    assert "base spec not found: nowhere/base.yaml" in problem.message
    builtin = write(tmp_path / "b.yaml", "extends: builtin:specs/gsm8kk.yaml\n")
    (problem,) = problems_of(builtin)
    assert "builtin:specs/gsm8k.yaml" in (problem.hint or "")
    bad = write(tmp_path / "bad.yaml", "extends: [a.yaml, b.yaml]\n")
    (problem,) = problems_of(bad)
    assert "one base spec" in problem.message


def test_delete_needs_a_key_a_base_sets(chain: Path) -> None:
    write(chain, CHILD + "review:\n  thresold: !delete\n")
    (problem,) = problems_of(chain)
    assert (Path(problem.file).name, problem.line, problem.path) == ("child.yaml", 9, "review.thresold")
    assert "nothing to delete" in problem.message


@pytest.mark.parametrize(("text", "message"), [
    ("review:\n  threshold: !delete\n", "this spec extends none"),
    ("extends: base.yaml\nreview:\n  threshold: !delete 3\n", "!delete takes no value"),
    ("extends: base.yaml\nteachers:\n  - !delete\n", "inside a list"),
])
def test_misplaced_deletes_are_errors(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "base.yaml", BASE.replace("prompts:\n  rationale: prompts/rationale.j2\n", ""))
    found = [p for p in problems_of(write(tmp_path / "spec.yaml", text)) if message in p.message]
    assert len(found) == 1 and Path(found[0].file).name == "spec.yaml"


def test_a_builtin_paper_spec_as_base(tmp_path: Path) -> None:
    child = write(tmp_path / "mine.yaml", textwrap.dedent("""\
        extends: builtin:specs/svamp.yaml
        name: svamp-mine
        student:
          hardware: {gpus: 2}
        """))
    loaded = load_spec(child)
    paper = load_spec(resource_root() / "specs" / "svamp.yaml")
    assert loaded.spec.student.hardware.gpus == 2 and loaded.spec.student.hardware.strategy == "fsdp"
    assert loaded.spec.prompts.rationale == "builtin:prompts/math/rationale.j2"
    assert loaded.spec.output_dir == "runs"  # runs go beside the child, not into the package
    assert set(loaded.variants) == set(paper.variants)
    plan = compile_plan(loaded, Environment())
    assert plan.spec_files[1]["file"] == "builtin:specs/svamp.yaml"
    assert plan.output_dir == str(tmp_path / "runs")


def test_a_base_variant_that_breaks_on_the_child_is_reported_in_the_base(chain: Path) -> None:
    base = chain.parents[1] / "base" / "base.yaml"
    write(base, BASE + "  - name: only-gem\n    set: {teachers: [gem], review.enabled: false}\n")
    assert "only-gem" in load_spec(chain).variants
    write(chain, CHILD.replace("name: gem, provider: gemini", "name: claude, provider: gemini"))
    (problem,) = problems_of(chain)
    assert (Path(problem.file).name, problem.line) == ("base.yaml", 25)
    assert "gem" in problem.message and "(base spec: " in problem.message
