"""Model and dataset cards in the Hugging Face format, read back with huggingface_hub."""

from __future__ import annotations

import pytest

from fairspec.cards import RESULTS_END, RESULTS_START, dataset_card, model_card, with_results

CARD = {"spec": "svamp", "run": "svamp.alpha-one", "task": "math",
        "base_model_hub": "HuggingFaceTB/SmolLM2-135M-Instruct", "base_model_name": "SmolLM2-135M-Instruct",
        "dataset_hf": "ChilleD/SVAMP", "dataset_config": None, "dataset_name": None,
        "train_split": "train", "test_split": "test", "decoding": "greedy", "fingerprint": "ab12"}
BUILT = {"mistakes": 40, "samples": 30, "examples": 60, "rationale_examples": 30,
         "feedback_examples": 30, "per_teacher": {"gpt": {"rationale": 20, "feedback": 20},
                                                  "gem": {"rationale": 10, "feedback": 10}},
         "selection": "random_one"}
TRAINED = {"steps": 12, "examples": 60, "first_loss": 2.5, "last_loss": 1.25, "world_size": 2}
METRICS = {"split": "test", "base": {"correct": 10, "total": 40, "accuracy": 0.25},
           "tuned": {"correct": 14, "total": 40, "accuracy": 0.35}, "gain": 0.1}


def card_text() -> str:
    return model_card(CARD, hyperparameters={"alpha": 1.0, "epochs": 3, "learning_rate": 1e-5},
                      data=BUILT, training=TRAINED)


def test_the_model_card_loads_with_huggingface_hub_and_says_what_made_the_model(tmp_path):
    from huggingface_hub import ModelCard

    text = card_text()
    (tmp_path / "README.md").write_text(text)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.library_name == "transformers" and "fairspec" in card.data.tags
    assert card.data.datasets == ["ChilleD/SVAMP"]
    assert card.data.to_dict().get("license") is None  # left for the user, and the card says so
    assert "add `license:`" in card.text
    assert "| 40 | 30 (75.0%) | 60 (30 + 30) |" in text
    assert "| gem | 10 | 10 |" in text and "| alpha | 1.0 |" in text
    assert "12 optimizer steps over 60 examples; loss 2.5000 -> 1.2500; 2 process(es)" in text
    assert "fingerprint `ab12`" in text and "Not evaluated yet" in text


def test_results_fill_the_block_and_the_model_index_and_replace_an_earlier_fill(tmp_path):
    from huggingface_hub import ModelCard

    once = with_results(card_text(), CARD, METRICS)
    twice = with_results(once, CARD, {**METRICS, "tuned": {"correct": 16, "total": 40, "accuracy": 0.4},
                                      "gain": 0.15})
    assert "Not evaluated yet" not in twice and twice.count(RESULTS_START) == 1
    assert "| after FAIR tuning | 16 / 40 | 40.00% |" in twice and "14 / 40" not in twice
    assert "+15.00 points" in twice
    (tmp_path / "README.md").write_text(twice)
    card = ModelCard.load(tmp_path / "README.md")
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results == {"zero-shot accuracy, before tuning (base student)": 0.25,
                       "zero-shot accuracy, after FAIR tuning": 0.4}
    assert {r.dataset_type for r in card.data.eval_results} == {"ChilleD/SVAMP"}
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"  # the rest is kept
    with pytest.raises(ValueError, match="no fairspec results block"):
        with_results(twice.replace(RESULTS_END, ""), CARD, METRICS)


def test_results_show_each_accuracys_interval_and_the_tested_headline():
    metrics = {**METRICS, "base": {**METRICS["base"], "ci95": [0.141875, 0.401556]},
               "tuned": {**METRICS["tuned"], "ci95": [0.220615, 0.505254]}}
    said = ("No evidence of a change from FAIR tuning: 25.00% -> 35.00% on 40 questions "
            "(gained 6, lost 2; McNemar exact p = 0.29; ...).")
    text = with_results(card_text(), CARD, metrics, headline=said)
    assert "| student | correct / total | accuracy | 95% interval (Wilson) |" in text
    assert "| before tuning (base student) | 10 / 40 | 25.00% | 14.19-40.16% |" in text
    assert said in text and "Gain" not in text
    # no headline given (metrics of an earlier fairspec): the change, never called a gain
    untested = with_results(card_text(), CARD, METRICS)
    assert "Change after FAIR tuning: +10.00 points (not tested)." in untested
    assert "| after FAIR tuning | 14 / 40 | 35.00% | - |" in untested


def test_a_local_student_and_dataset_leave_no_path_in_the_card():
    local = {**CARD, "base_model_hub": None, "base_model_name": "my-student", "dataset_hf": None,
             "dataset_name": "svamp-mini"}
    text = model_card(local, hyperparameters={}, data=BUILT, training=TRAINED)
    assert "base_model:" not in text and "datasets:" not in text and "svamp-mini" in text


def test_the_dataset_card_names_its_files_for_load_dataset():
    import yaml

    text = dataset_card(CARD, counts={"samples": 3}, columns={"question": "the question"},
                        data_files=[{"split": "train", "path": "data/train.jsonl"}], title="t")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["configs"] == [{"config_name": "default",
                                "data_files": [{"split": "train", "path": "data/train.jsonl"}]}]
    assert "| `question` | the question |" in text
