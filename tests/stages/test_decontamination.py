"""task.decontaminate: test questions found in the training set by 13-word n-grams, reported
in build/stats.json and the report, and dropped with ``drop``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from katan_runs import REPO, committee, compile_run, spec_text, svamp_mistakes, write_mistakes

from fairspec.artifacts import read_jsonl, write_jsonl
from fairspec.report.collect import RunSummary
from fairspec.report.decontamination import add_decontamination
from fairspec.report.document import Document
from fairspec.run.executor import run_stage
from fairspec.tasks.contamination import NGRAM, TestNgrams, normalise, question_text, words

SVAMP_TEST = REPO / "fairspec" / "resources" / "data" / "svamp-mini" / "test.jsonl"
TEST_ROWS = [json.loads(line) for line in SVAMP_TEST.read_text().splitlines()]
MARY = TEST_ROWS[0]["question_concat"]  # "Mary is baking a cake. The recipe calls for 6 cups ..."
JOSH = TEST_ROWS[3]["question_concat"]  # "Josh had 15 marbles in his collection. He found 9 ..."


def svamp_ngrams(**options) -> TestNgrams:
    return TestNgrams(enumerate(row["question_concat"] for row in TEST_ROWS), **options)


# -- the normaliser and the matcher -------------------------------------------------------------


def test_normalise_lowercases_deletes_punctuation_and_collapses_whitespace():
    assert normalise("  How MANY apples,\n\tdoes Tom's dog — eat?  ") == "how many apples does toms dog eat"
    assert normalise("It costs $1,000.50 (half-price!)") == "it costs 100050 halfprice"
    assert normalise("Tom’s ＡＢＣ") == "toms abc"  # a typographic apostrophe; full-width letters
    assert words("") == []


def test_a_test_question_restated_in_a_rationale_is_found():
    rationale = (f"Let me restate the problem. {MARY} The difference between the sugar and the "
                 "salt is 8 - 7 = 1, so the answer is 1.")
    found = svamp_ngrams().find(rationale)
    assert found is not None and found.test_index == 0
    assert len(found.ngram.split()) == NGRAM
    assert found.ngram in normalise(MARY)


def test_case_punctuation_and_spacing_differences_still_match():
    shouted = "MARY IS BAKING A CAKE   THE RECIPE CALLS FOR 6 CUPS OF FLOUR, 8 CUPS OF SUGAR"
    assert svamp_ngrams().find(shouted).test_index == 0
    spaced = "mary\nis baking a cake!!! the recipe -- calls for: 6 cups of flour 8 cups"
    assert svamp_ngrams().find(spaced).test_index == 0


def test_a_paraphrase_with_other_words_is_not_found():
    paraphrase = ("Mary bakes a cake; her recipe needs six cups of flour, eight of sugar and seven "
                  "of salt, and five cups of flour are already in. How much more sugar than salt "
                  "must she still add?")
    assert svamp_ngrams().find(paraphrase) is None
    # twelve consecutive words of the question are not enough
    twelve = " ".join(normalise(MARY).split()[:NGRAM - 1])
    assert svamp_ngrams().find(f"Note: {twelve}. That is all.") is None


def test_a_near_copy_with_one_number_changed_is_found_when_13_words_are_left_alike():
    near = JOSH.replace("23 marbles", "24 marbles")  # late in the question: its start is intact
    assert near != JOSH
    assert svamp_ngrams().find(near).test_index == 3
    # a change every few words leaves no 13 words alike: not found (the method's known limit)
    every_few = MARY.replace("6 cups", "9 cups").replace("sugar and", "sugar or").replace(
        "5 cups", "4 cups").replace(" than ", " over ").replace("she need", "she must")
    assert svamp_ngrams().find(every_few) is None


def test_a_short_question_is_matched_whole():
    questions = [(0, "Is the sky blue at noon?"), (1, MARY)]
    ngrams = TestNgrams(questions)
    assert ngrams.short_questions == 1
    found = ngrams.find("Recall the question: is the SKY blue at noon. Yes, it is.")
    assert found is not None and (found.test_index, found.ngram) == (0, "is the sky blue at noon")
    assert ngrams.find("Is the sky blue? At night it is black.") is None  # only part of it


def test_template_text_shared_by_many_test_questions_is_not_looked_for():
    preamble = "Read the following problem carefully and answer it with a single number at the end."
    questions = [(i, f"{preamble} Question {i}: Ann has {i} apples and buys {i + 2} more apples "
                     f"at the market on day {i}.") for i in range(12)]
    ngrams = TestNgrams(questions)
    assert ngrams.shared_ngrams > 0
    assert ngrams.find(f"{preamble} Question 99: Bob has 1 pear.") is None
    assert ngrams.find(questions[5][1]).test_index == 5  # the question itself still is found
    assert TestNgrams(questions, shared_limit=100).find(f"{preamble} Bob has 1 pear.") is not None


def test_a_question_is_every_text_field_in_order():
    fields = {"question": "Which of the following can be derived?", "context": "All cats purr.",
              "options": ["A cat purrs.", "Dogs purr."]}
    assert question_text(fields, ["context", "question", "options"]) == (
        "All cats purr. Which of the following can be derived? A cat purrs. Dogs purr.")


# -- the build stage on builtin svamp-mini ------------------------------------------------------

#: train rows 0, 1 and 2 share nothing with svamp-mini's test split; row 13 ("Jerry had 7 books
#: and 3 action figures on a shelf in his room. Later he added 2 more ...") is SVAMP's own
#: variation of test row 20, 13 words of it alike
SAMPLES = (0, 1, 2, 13)
PLAIN = "Add the two numbers: 3 + 4 = 7. The answer is 7."


def build_run(tmp_path: Path, mode: str | None, *, stage: str = "", ngram: int | None = None,
              **sections: str):
    """A compiled run with exam mistakes on rows ``SAMPLES``, one accepted rationale and one
    feedback each by alpha (in the folders of ``stage``'s round: ``round-2/``); sample 0's
    rationale quotes test row 3, sample 1's feedback test row 0 (in capitals, without
    punctuation)."""
    text = spec_text(committee("http://127.0.0.1:9/v1"), name="decon", **sections)
    if mode is not None:
        text = text.replace("  fields: {question: question_concat, answer: Answer}\n",
                            f"  fields: {{question: question_concat, answer: Answer}}\n"
                            f"  decontaminate: {mode}\n")
        assert f"decontaminate: {mode}" in text
    if ngram is not None:
        text = text.replace("  fields:", f"  decontaminate_ngram: {ngram}\n  fields:")
    made = compile_run(text, tmp_path)
    mistakes = [m for m in svamp_mistakes(max(SAMPLES) + 1) if m["index"] in SAMPLES]
    write_mistakes(made.run_dir / stage, mistakes)
    rationales = {i: PLAIN for i in SAMPLES}
    rationales[0] = f"The problem says: {JOSH} He lost 23 - 9 = 14 more. The answer is 14."
    feedback = {i: "You added where you should subtract." for i in SAMPLES}
    feedback[1] = "Unlike " + normalise(MARY).upper() + ", this asks for a sum."
    write_jsonl(made.run_dir / stage / "review" / "accepted.jsonl",
                [{"index": i, "teacher": "alpha", "text": rationales[i]} for i in SAMPLES])
    write_jsonl(made.run_dir / stage / "teach" / "feedback.jsonl",
                [{"index": i, "teacher": "alpha", "text": feedback[i], "status": "ok"}
                 for i in SAMPLES])
    return made


def dataset_of(made) -> list[dict]:
    from datasets import load_from_disk

    return load_from_disk(str(made.run_dir / "build" / "dataset")).to_list()


def test_report_counts_and_lists_the_examples_that_hold_a_test_question(tmp_path):
    made = build_run(tmp_path, None)  # report is the default
    stats = run_stage(made.run, "build", base_dir=tmp_path)
    found = stats["decontamination"]
    assert found["mode"] == "report" and found["checked"] is True
    assert (found["n"], found["split"], found["test_questions"]) == (NGRAM, "test", 24)
    assert found["examples_checked"] == 8 and found["contaminated_examples"] == 4
    assert found["by_source"] == {"question": 2, "rationale": 1, "feedback": 1}
    assert [(e["train_index"], e["kind"], e["source"], e["test_index"]) for e in found["examples"]] == [
        (0, "rationale", "rationale", 3), (1, "feedback", "feedback", 0),
        (13, "rationale", "question", 20), (13, "feedback", "question", 20)]
    assert found["examples"][0]["ngram"] in normalise(JOSH)
    assert "dropped_examples" not in found
    assert stats["examples"] == 8 and len(dataset_of(made)) == 8  # reported, kept
    on_disk = json.loads((made.run_dir / "build" / "stats.json").read_text())
    assert on_disk["decontamination"] == found


def test_drop_removes_them_and_says_so(tmp_path):
    made = build_run(tmp_path, "drop")
    stats = run_stage(made.run, "build", base_dir=tmp_path)
    found = stats["decontamination"]
    assert found["mode"] == "drop" and found["contaminated_examples"] == 4
    assert found["dropped_examples"] == 4
    kept = {(e["sample"], e["kind"]) for e in dataset_of(made)}
    assert kept == {(0, "feedback"), (1, "rationale"), (2, "rationale"), (2, "feedback")}
    assert stats["examples"] == 4 and stats["samples"] == 3
    assert [(e["sample"], e["kind"]) for e in read_jsonl(made.run_dir / "build" / "preview.jsonl")] \
        == [(0, "feedback"), (1, "rationale"), (2, "rationale"), (2, "feedback")]
    card = (made.run_dir / "build" / "dataset" / "README.md").read_text()
    assert "examples dropped: they hold a test question | 4" in card


def test_off_checks_nothing(tmp_path):
    made = build_run(tmp_path, "off")
    stats = run_stage(made.run, "build", base_dir=tmp_path)
    assert "decontamination" not in stats and stats["examples"] == 8


def test_only_drop_enters_the_build_fingerprint(tmp_path):
    runs = {mode: build_run(tmp_path / mode, mode).run for mode in ("off", "report", "drop")}
    default = build_run(tmp_path / "default", None).run
    for stage in ("exam", "teach", "review"):
        assert len({r.stage(stage).fingerprint for r in runs.values()}) == 1
    build = {mode: run.stage("build").fingerprint for mode, run in runs.items()}
    assert build["off"] == build["report"] == default.stage("build").fingerprint
    assert build["drop"] != build["report"]
    assert runs["drop"].stage("train").fingerprint != runs["report"].stage("train").fingerprint


def test_a_later_round_checks_its_own_examples_and_says_so(tmp_path):
    build_run(tmp_path, None, rounds="{count: 2}")
    made = build_run(tmp_path, None, stage="round-2", rounds="{count: 2}")
    first = run_stage(made.run, "build", base_dir=tmp_path)
    assert "note" not in first["decontamination"]
    # round 2's teachers now write clean texts for the same questions
    write_jsonl(made.run_dir / "round-2" / "review" / "accepted.jsonl",
                [{"index": i, "teacher": "alpha", "text": PLAIN + " Again."} for i in SAMPLES])
    second = run_stage(made.run, "round-2/build", base_dir=tmp_path)
    found = second["decontamination"]
    assert second["round_examples"] == 8 and second["carried_examples"] == 8
    assert found["examples_checked"] == 8  # this round's, not the carried ones
    assert found["by_source"] == {"question": 2, "rationale": 0, "feedback": 1}
    assert "carried ones were checked by the round that built them" in found["note"]


def test_a_test_split_that_cannot_be_read_is_said_and_never_fails_the_build(tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    # both libraries read the variables once, at import: set what they read
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # never a cached copy
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    made = build_run(tmp_path, "drop")
    text = spec_text(committee("http://127.0.0.1:9/v1"), name="decon").replace(
        "path: builtin:data/svamp-mini", "hf: fairspec-tests/no-such-dataset").replace(
        "  fields:", "  decontaminate: drop\n  fields:")
    hub = compile_run(text, tmp_path, run_dir=made.run_dir)
    stats = run_stage(hub.run, "build", base_dir=tmp_path)
    found = stats["decontamination"]
    assert found["checked"] is False and found["mode"] == "drop"
    assert "fairspec-tests/no-such-dataset" in found["reason"]
    assert stats["examples"] == 8  # nothing dropped unchecked


# -- the report ----------------------------------------------------------------------------------


def report_of(build: dict) -> Document:
    doc = Document("r")
    add_decontamination(doc, RunSummary(run_dir=Path("."), info={}, build=build))
    return doc


def test_the_report_shows_the_counts_and_the_examples(tmp_path):
    stats = run_stage(build_run(tmp_path, "drop").run, "build", base_dir=tmp_path)
    doc = report_of(stats)
    markdown = doc.markdown()
    assert "## Test questions in the training set" in markdown
    assert "4 of the 8 training examples hold one of the 24 test questions (2 in the question, " \
           "1 in the rationale, 1 in the feedback" in markdown
    assert "dropped before training (task.decontaminate: drop): 4 examples fewer" in markdown
    assert "| 0 | rationale by alpha | rationale | 3 | josh had 15 marbles" in markdown
    assert "| 13 | feedback by alpha | question | 20 |" in markdown
    assert "<td>rationale by alpha</td>" in doc.html()
    assert report_of({"selection": "all"}).blocks == []  # off: no section


def test_the_report_says_when_nothing_was_found_or_the_check_did_not_run():
    clean = {"mode": "report", "n": 13, "split": "test", "checked": True, "test_questions": 24,
             "short_test_questions": 0, "shared_ngrams_ignored": 0, "examples_checked": 8,
             "contaminated_examples": 0, "by_source": {"question": 0, "rationale": 0, "feedback": 0},
             "examples": []}
    assert "None of the 8 training examples holds one of the 24 test questions" in \
        report_of({"decontamination": clean}).markdown()
    failed = {"mode": "report", "n": 13, "split": "test", "checked": False,
              "reason": "the test split could not be read: <offline>"}
    doc = report_of({"decontamination": failed})
    assert "was not checked against the test split" in doc.markdown()
    assert "&lt;offline&gt;" in doc.html() and "<offline>" not in doc.html()


@pytest.mark.parametrize("mode", ["off", "report", "drop"])
def test_the_plan_names_the_check(tmp_path, mode):
    from fairspec.plan.stage_summary import stage_summary_of

    made = build_run(tmp_path, mode)
    summary = stage_summary_of(made.run.stage("build"))
    assert ("test questions in the examples" in summary) == (mode != "off")


# -- every contaminated example listed, n configurable, carried by the export -------------------


def test_overlaps_jsonl_lists_every_contaminated_example_with_each_text_that_holds_one(tmp_path):
    made = build_run(tmp_path, "drop")
    run_stage(made.run, "build", base_dir=tmp_path)
    rows = list(read_jsonl(made.run_dir / "build" / "overlaps.jsonl"))
    assert [(r["train_index"], r["kind"], r["source"], sorted(r["found"])) for r in rows] == [
        (0, "rationale", "rationale", ["rationale"]), (1, "feedback", "feedback", ["feedback"]),
        (13, "rationale", "question", ["question"]), (13, "feedback", "question", ["question"])]
    assert rows[0]["found"]["rationale"]["test_index"] == 3
    assert rows[0]["found"]["rationale"]["ngram"] in normalise(JOSH)
    off = build_run(tmp_path / "off", "off")
    run_stage(off.run, "build", base_dir=tmp_path / "off")
    assert not (off.run_dir / "build" / "overlaps.jsonl").exists()


def test_the_ngram_length_is_a_key_and_a_shorter_one_finds_shorter_quotes(tmp_path):
    ten_words = " ".join(normalise(JOSH).split()[:10])  # 10 words of test row 3: under 13
    found, built = {}, {}
    for n in (13, 8):
        made = build_run(tmp_path / str(n), "drop", ngram=n)
        write_jsonl(made.run_dir / "review" / "accepted.jsonl",
                    [{"index": i, "teacher": "alpha", "text": f"As in {ten_words}, add. The answer is 7."
                      if i == 2 else PLAIN} for i in SAMPLES])
        found[n] = run_stage(made.run, "build", base_dir=tmp_path / str(n))["decontamination"]
        built[n] = made
    assert (found[13]["n"], found[13]["by_source"]["rationale"]) == (13, 0)
    assert (found[8]["n"], found[8]["by_source"]["rationale"]) == (8, 1)
    assert (2, "rationale") in {(e["sample"], e["kind"]) for e in dataset_of(built[13])}
    assert (2, "rationale") not in {(e["sample"], e["kind"]) for e in dataset_of(built[8])}
    # with drop, n changes the training set: it is in the build fingerprint
    assert built[8].run.stage("build").fingerprint != built[13].run.stage("build").fingerprint
    assert build_run(tmp_path / "d", "drop").run.stage("build").fingerprint == \
        built[13].run.stage("build").fingerprint  # 13 is the default


@pytest.mark.parametrize("n", [4, 65, "eight"])
def test_an_ngram_length_out_of_range_is_refused_at_its_line(tmp_path, n):
    from fairspec.errors import SpecError

    text = spec_text(committee("http://127.0.0.1:9/v1"), name="decon").replace(
        "  fields:", f"  decontaminate_ngram: {n}\n  fields:")
    with pytest.raises(SpecError) as refused:
        compile_run(text, tmp_path)
    assert [p.path for p in refused.value.problems] == ["task.decontaminate_ngram"]


def test_export_carries_the_overlaps_per_row_and_counts_them_on_the_card(tmp_path):
    from datasets import load_dataset

    from fairspec.report.export import export_run

    made = build_run(tmp_path, None)
    run_stage(made.run, "build", base_dir=tmp_path)
    # the texts export reads beside the built set: each sample's one rationale, reviewed once
    write_jsonl(made.run_dir / "teach" / "rationales.jsonl", [
        {"index": r["index"], "teacher": "alpha", "role": "rationale", "text": r["text"], "status": "ok"}
        for r in read_jsonl(made.run_dir / "review" / "accepted.jsonl")])
    write_jsonl(made.run_dir / "review" / "reviews.jsonl", [
        {"index": i, "author": "alpha", "reviewer": "beta", "text": "[5]", "status": "ok", "score": 5.0}
        for i in SAMPLES])
    done = export_run(made.run_dir, tmp_path / "out", "jsonl")
    assert done["overlapping_examples"] == 4
    exported = load_dataset("json", data_files=str(tmp_path / "out" / "data" / "train.jsonl"), split="train")
    rows = {r["index"]: r for r in exported}
    assert rows[2]["test_overlap"] == []
    assert [(o["kind"], o["found_in"], o["test_index"]) for o in rows[0]["test_overlap"]] == \
        [("rationale", "rationale", 3)]
    assert [(o["kind"], o["found_in"], o["test_index"]) for o in rows[13]["test_overlap"]] == \
        [("rationale", "question", 20), ("feedback", "question", 20)]
    card = (tmp_path / "out" / "README.md").read_text()
    assert ("training examples holding a test question (13-word n-grams, task.decontaminate: "
            "report) | 4 of 8") in card
