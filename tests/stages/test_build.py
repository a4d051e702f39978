"""The build stage: which samples qualify, what random_one picks, how examples look."""

from __future__ import annotations

from fairspec.stages.build import build_examples

TEMPLATES = {"rationale": "### Input: {{ question }}\n### Response: ",
             "feedback": "### Input: {{ question }}\nStudent: {{ student_answer }}\n### Response: "}


def mistake(index):
    return {"index": index, "fields": {"question": f"q{index}"}, "output": f"wrong{index}"}


def rationale(index, teacher):
    return {"index": index, "teacher": teacher, "text": f"r{index}-{teacher}"}


def feedback(index, teacher, status="ok"):
    return {"index": index, "teacher": teacher, "text": f"f{index}-{teacher}", "status": status}


def test_samples_need_an_accepted_rationale_and_a_usable_feedback():
    mistakes = [mistake(0), mistake(1), mistake(2)]
    accepted = [rationale(0, "a"), rationale(2, "b")]
    fb = [feedback(0, "a"), feedback(1, "a"), feedback(2, "b", status="empty")]
    examples = build_examples(mistakes, accepted, fb, TEMPLATES, selection="all", seed=1)
    assert {e["sample"] for e in examples} == {0}


def test_random_one_picks_one_of_each_reproducibly_and_independent_of_order():
    mistakes = [mistake(i) for i in range(20)]
    accepted = [rationale(i, t) for i in range(20) for t in ("a", "b", "c")]
    fb = [feedback(i, t) for i in range(20) for t in ("a", "b", "c")]
    first = build_examples(mistakes, accepted, fb, TEMPLATES, selection="random_one", seed=7)
    shuffled = build_examples(list(reversed(mistakes)), list(reversed(accepted)), fb, TEMPLATES,
                              selection="random_one", seed=7)
    other_seed = build_examples(mistakes, accepted, fb, TEMPLATES, selection="random_one", seed=8)
    assert len(first) == 40
    assert [(e["sample"], e["kind"]) for e in first[:2]] == [(0, "rationale"), (0, "feedback")]
    assert first == shuffled
    assert first != other_seed
    assert len({e["teacher"] for e in first if e["kind"] == "rationale"}) > 1


def test_all_keeps_every_pair_and_renders_the_prompt_half():
    examples = build_examples([mistake(3)], [rationale(3, "a"), rationale(3, "b")],
                              [feedback(3, "a")], TEMPLATES, selection="all", seed=0)
    assert [(e["kind"], e["teacher"]) for e in examples] == [
        ("rationale", "a"), ("rationale", "b"), ("feedback", "a")]
    assert examples[0]["prompt"] == "### Input: q3\n### Response: "
    assert examples[2]["prompt"] == "### Input: q3\nStudent: wrong3\n### Response: "
    assert examples[2]["completion"] == "f3-a"
