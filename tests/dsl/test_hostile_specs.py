"""Specs written to hurt: YAML alias bombs, absurd nesting, builtin: paths that climb out of
the package, credentials in a base_url. Each is a located problem (exit 2 from validate),
never a traceback, a hang or a file read that should not be."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fairspec.dsl import load_spec_text
from fairspec.errors import SpecError

BASE = """\
fairspec: 1
name: hostile
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini}}
  fields: {{question: question_concat, answer: Answer}}
student: {{model: builtin:smollm2-135m-instruct}}
teachers:
  - {{name: a, provider: openai, model: gpt-4o, base_url: "{url}", api_key_env: K}}
  - {{name: b, provider: openai, model: gpt-4.1, base_url: "http://127.0.0.1:9/v1", api_key_env: K}}
{extra}"""


def problems(text: str, tmp_path: Path) -> list[str]:
    try:
        load_spec_text(text, base_dir=tmp_path)
    except SpecError as error:
        return [f"{p.line}:{p.path}: {p.message}" for p in error.problems]
    return []


def spec(url: str = "http://127.0.0.1:9/v1", extra: str = "") -> str:
    return BASE.format(url=url, extra=extra)


def test_an_alias_bomb_is_refused_fast_at_its_line(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    started = time.monotonic()
    found = problems(spec(extra="\n".join(lines) + "\n"), tmp_path)
    assert time.monotonic() - started < 10  # 10^9 strings, never built
    assert len(found) == 1 and "expands to more than 100,000 values" in found[0]
    assert int(found[0].split(":")[0]) in range(11, 20)  # a line of the aliases


def test_deep_nesting_is_a_problem_not_a_recursion_error(tmp_path):
    for depth in (100, 5000):  # past the spec's limit; past the parser's recursion
        found = problems(spec(extra="x: " + "[" * depth + "]" * depth + "\n"), tmp_path)
        assert len(found) == 1 and "nests deeper than" in found[0], found


def test_a_builtin_path_out_of_the_package_is_refused_before_any_file_is_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not send me to a teacher")
    climb = "../" * 12 + str(secret).lstrip("/")
    for ref in (f"builtin:{climb}", f"builtin:{secret}"):
        found = problems(spec(extra=f'prompts: {{rationale: "{ref}"}}\n'), tmp_path)
        assert any("prompts.rationale" in f and "outside fairspec's packaged resources" in f
                   for f in found), found
    assert problems(spec(extra='prompts: {rationale: "builtin:prompts/math/rationale.j2"}\n'),
                    tmp_path) == []


@pytest.mark.parametrize("url,says", [
    ("http://127.0.0.1:9/v1?api_key=abc123", "a credential in its query (api_key)"),
    ("http://127.0.0.1:9/v1?token=abc&x=1", "a credential in its query (token)"),
    ("http://user:hunter22@127.0.0.1:9/v1", "a user name or password"),
])
def test_credentials_in_a_base_url_are_refused_at_its_line(tmp_path, url, says):
    found = problems(spec(url=url), tmp_path)
    assert any(f.startswith("9:teachers[0].base_url:") and says in f for f in found), found


def test_a_query_without_a_credential_is_fine(tmp_path):
    assert problems(spec(url="http://127.0.0.1:9/v1?api-version=2024-10-21"), tmp_path) == []


def test_validate_exits_2_with_no_traceback(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text(spec(extra="\n".join(lines) + "\n"))
    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "validate", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    assert "expands to more than" in done.stderr + done.stdout


def test_an_endless_seed_or_timeout_is_refused_at_its_line(tmp_path):
    found = problems(spec(extra="seed: 123456789012345678901234567890\n").replace(
        "api_key_env: K}}\n  - {{name: b", "api_key_env: K}\n  - {name: b"), tmp_path)
    assert any(f.split(":")[1] == "seed" and "less than or equal to 4294967295" in f for f in found), found
    found = problems(spec(url="http://127.0.0.1:9/v1\", timeout_s: .inf, x: \"").replace(
        ', x: ""', ""), tmp_path)
    assert any("teachers[0].timeout_s" in f and "finite number" in f for f in found), found


def test_a_device_or_a_huge_file_is_never_read_as_a_spec_or_a_template(tmp_path):
    from fairspec.dsl import load_spec

    with pytest.raises(SpecError) as found:
        load_spec("/dev/zero")
    assert "cannot read spec /dev/zero: not a regular file (a device or a pipe)" in str(found.value)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(SpecError, match="bytes, more than 1,048,576"):
        load_spec(big)
    found = problems(spec(extra="prompts: {rationale: /dev/zero}\n"), tmp_path)
    assert any("prompts.rationale" in f and "not a regular file" in f for f in found), found


def dataset_spec(folder: Path) -> str:
    return spec().replace("path: builtin:data/svamp-mini", "path: data")


@pytest.mark.parametrize("train,test,says", [
    (b'{"question_concat": "caf\\u00e9", "Answer": 3}\n\xe9t\xe9\n', None, "train.jsonl:2: not UTF-8"),
    (None, b'{"question_concat": "a \\ud800 b", "Answer": 3}\n', "holds a lone surrogate"),
    (None, b"", "split 'test' has no rows"),
    (b"this is not json\n", None, "train.jsonl:1: not JSON Lines: invalid JSON"),
])
def test_local_dataset_rows_are_checked_by_validate(tmp_path, train, test, says):
    good = (Path(__file__).parents[2] / "fairspec/resources/data/svamp-mini/train.jsonl").read_bytes()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_bytes(train if train is not None else good)
    (tmp_path / "data" / "test.jsonl").write_bytes(test if test is not None else good)
    found = problems(dataset_spec(tmp_path), tmp_path)
    assert any(says in f for f in found), found


def test_a_replay_file_that_is_not_one_is_a_located_data_error(tmp_path):
    from fairspec.errors import DataError
    from fairspec.store.replay import load_replay

    with pytest.raises(DataError, match="not a file of exported calls"):
        load_replay("/dev/zero")
    bad = tmp_path / "calls.jsonl"
    bad.write_bytes(b'{"key": "k"}\n')
    with pytest.raises(DataError, match=r"calls.jsonl:1: not a call record: .*missing field"):
        load_replay(bad)
    bad.write_bytes(b"\n\xff\xfe\n")
    with pytest.raises(DataError, match=r"calls.jsonl:2: not a call record"):
        load_replay(bad)
