"""A recorded teacher with a fallback: what its files lack is asked of a live model (a real
HTTP server), once, under that model's own call identity; the rest costs nothing."""

from __future__ import annotations

import json

from click.testing import CliRunner
from katan_runs import requests_served
from recorded_runs import authors_rows, spec_text

from fairspec.cli import cli


def test_what_the_files_lack_is_asked_live_once(tmp_path, katan, katan_key, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(spec_text(tmp_path, fallback_url=katan.openai_url))
    rows = authors_rows("feedback")
    dropped = rows.pop(0)
    (tmp_path / "feedback.json").write_text(json.dumps(rows))
    before = requests_served(katan)
    result = CliRunner().invoke(cli, ["run", "spec.yaml", "--until", "teach"])
    assert result.exit_code == 0, result.output
    assert requests_served(katan) - before == 3  # the one missing feedback, per teacher
    run_dir = tmp_path / "runs" / "rec"
    stats = json.loads((run_dir / "teach" / "stats.json").read_text())
    mistakes = len(authors_rows("false"))
    for usage in stats["teachers"].values():
        assert (usage["made"], usage["recorded"]) == (1, 2 * mistakes - 1)
    feedback = [json.loads(line) for line in (run_dir / "teach" / "feedback.jsonl").open()]
    live = [f for f in feedback if f["index"] == dropped["id"]]
    assert len(live) == 3 and all(f["text"] and f["text"] != dropped["gpt_feedback"] for f in live)
    # a rerun asks nothing: the live answers are in the store, under the openai identity
    again = CliRunner().invoke(cli, ["run", "spec.yaml", "--until", "teach"])
    assert again.exit_code == 0 and requests_served(katan) - before == 3
    exported = [json.loads(line) for line in (run_dir / "record" / "calls.jsonl").open()]
    assert sorted(c["provider"] for c in exported).count("openai") == 3
    assert {c["provider"] for c in exported} == {"recorded", "openai"}
