"""The FAIR authors' SVAMP round through `fairspec run` (the shipped spec, recorded exam and
committee, no network): the review keeps what the paper's Table 4 counts."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from fairspec.cli import cli

CHILD = """\
extends: builtin:specs/svamp-authors.yaml
variants:                      # the authors' rule (main) against the paper's Th = 4, >=
  - name: th4
    set: {review.threshold: 4, review.accept: ">="}
"""


@pytest.mark.slow
def test_the_authors_review_rule_keeps_365_questions_and_th4_keeps_357(tmp_path, monkeypatch):
    def refuse(self, address):  # noqa: ANN001
        raise AssertionError(f"a network connection to {address} was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(CHILD)
    result = CliRunner().invoke(cli, ["run", "spec.yaml", "--until", "build"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runs = tmp_path / "runs"
    main = json.loads((runs / "svamp-authors" / "build" / "stats.json").read_text())
    th4 = json.loads((runs / "svamp-authors.th4" / "build" / "stats.json").read_text())
    assert (main["mistakes"], main["samples"], th4["samples"]) == (387, 365, 357)
    assert main["examples"] == 2 * 365  # one rationale and one feedback per sample
    review = json.loads((runs / "svamp-authors" / "review" / "stats.json").read_text())
    # two recorded scores lie outside 1-5 (83 and 0): invalid, as any such reply would be
    assert review["invalid_scores"] == 2 and review["rationales"] == 3 * 387
    report = CliRunner().invoke(cli, ["report", str(runs / "svamp-authors")])
    assert report.exit_code == 0, report.output
    text = (runs / "svamp-authors" / "report" / "report.md").read_text()
    table = text.split("(paper Table 4)", 1)[1]
    assert "| total | 1161 | 824 | 70.97% | 365 |" in table
