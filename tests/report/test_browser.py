"""The report's sample browser: the JSON it embeds (escaped, round-tripping), the Python filter
rule, and the page itself in headless Chromium (counts, filters from the URL hash, paging,
hostile text staying text, 20,000 samples)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from headless import Browser

from fairspec.report.browser import PER_PAGE, embed_json, sample_browser, sample_matches
from fairspec.report.document import Document, Html

HOSTILE = "</script><img src=x onerror=alert(1)><b>bold</b> & \u2028 \"quotes\" 'single' \U0001f600"


def rationale(teacher: str, accepted: bool, mean: float | None, text: str = "because") -> dict[str, Any]:
    scores = [] if mean is None else [
        {"reviewer": "rev-a", "score": mean,
         "distribution": {"1": 0.1, "2": 0.1, "3": 0.2, "4": 0.4, "5": 0.2}},
        {"reviewer": "rev-b", "score": mean, "distribution": None}]
    return {"teacher": teacher, "text": text, "accepted": accepted, "mean_score": mean, "scores": scores}


def sample(index: int, rationales: list[dict[str, Any]], question: str | None = None) -> dict[str, Any]:
    return {"index": index, "question": question or f"question {index}\nsecond line", "gold": str(index),
            "student_answer": f"wrong answer {index}", "student_prediction": None if index % 2 else "7",
            "rationales": rationales, "feedback": [{"teacher": "gpt", "text": f"feedback {index}"}]}


# Five hand-made samples, the expected counts below worked out by hand.
SMALL = [
    sample(0, [rationale("gpt", True, 4.5), rationale("gemini", False, 2.0)], "an apple a day"),
    sample(1, [rationale("gpt", False, 3.0), rationale("llama", False, None)]),
    sample(2, [], "APPLE pie"),
    sample(3, [rationale("gemini", True, None)]),  # accepted without review (review disabled)
    sample(4, [rationale("llama", True, 5.0)]),
]
SMALL_CASES = [  # (hash, filters for sample_matches, indices expected)
    ("", {}, [0, 1, 2, 3, 4]),
    ("accepted=yes", {"accepted": "yes"}, [0, 3, 4]),
    ("accepted=no", {"accepted": "no"}, [1]),
    ("accepted=none", {"accepted": "none"}, [2]),
    ("accepted=unreviewed", {"accepted": "unreviewed"}, [1, 3]),
    ("teacher=gpt", {"teacher": "gpt"}, [0, 1]),
    ("teacher=gemini&accepted=no", {"teacher": "gemini", "accepted": "no"}, [0]),  # scoped to gemini's
    ("teacher=gpt&accepted=none", {"teacher": "gpt", "accepted": "none"}, [2, 3, 4]),
    ("min_score=4", {"min_score": 4.0}, [0, 4]),
    ("min_score=4&teacher=gemini", {"min_score": 4.0, "teacher": "gemini"}, []),
    ("q=apple", {"query": "apple"}, [0, 2]),
    ("teacher=nobody", {"teacher": "nobody"}, []),
]


# ---- plain Python --------------------------------------------------------------------------

def embedded(fragment: str) -> str:
    found = re.search(r"<script type='application/json' id='fairspec-samples'>(.*?)</script>", fragment, re.S)
    assert found, "no embedded JSON"
    return found.group(1)


def test_embedding_escapes_and_round_trips() -> None:
    samples = [sample(0, [rationale(HOSTILE, True, 4.0, HOSTILE)], HOSTILE), sample(1, [], "\ud800 lone")]
    samples[0]["feedback"] = [{"teacher": HOSTILE, "text": HOSTILE}]
    fragment = sample_browser(samples).html
    text = embedded(fragment)
    for bad in ("<", ">", "&", "\u2028", "\u2029", "\ud800"):
        assert bad not in text
    assert "</script" not in text.lower()
    # only the fragment's own two script elements are closed
    assert fragment.lower().count("</script") == 2
    assert json.loads(text) == samples
    assert json.loads(embed_json({"a": "</SCRIPT>&<!--"})) == {"a": "</SCRIPT>&<!--"}
    assert "\\u003c/SCRIPT\\u003e\\u0026\\u003c!--" in embed_json("</SCRIPT>&<!--")


def test_fragment_is_compact_and_markdown_counts() -> None:
    block = sample_browser(SMALL, threshold=4.0)
    assert isinstance(block, Html)
    # no per-sample HTML: the page's markup (without the JSON) does not grow with the samples
    assert "<article" not in block.html
    bigger = sample_browser(SMALL * 100, threshold=4.0).html
    markup = len(block.html) - len(embedded(block.html))
    assert markup < 20_000 and abs(len(bigger) - len(embedded(bigger)) - markup) < 10  # data-total='500'
    assert "data-total='5'" in block.html and "data-threshold='4'" in block.html
    assert "at least 4." in block.html
    assert block.markdown == ("The sample browser (5 samples: 3 with an accepted rationale, 1 with none "
                              "accepted, 1 without a rationale) is in report.html.")
    assert re.search(r"<(script|link|img)[^>]*\b(src|href)=", block.html) is None  # nothing external
    assert "innerHTML" not in block.html
    empty = sample_browser([])
    assert "data-total='0'" in empty.html and "(0 samples:" in empty.markdown


@pytest.mark.parametrize(("hash_", "filters", "expected"), SMALL_CASES)
def test_sample_matches(hash_: str, filters: dict[str, Any], expected: list[int]) -> None:
    assert [s["index"] for s in SMALL if sample_matches(s, **filters)] == expected


# ---- in Chromium -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless Chromium for every page of this module (``tests/support/headless.py``):
    each page in a fresh browser context, read as ``chromium --dump-dom`` prints it."""
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail("chromium is not installed, and CI is set (CI installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium) to run the page's script")
    browser = Browser(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield browser
    browser.close()


class Dom(HTMLParser):
    """The dumped DOM as a list of elements (tag, attributes, text inside), in document order."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": []}
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"].append(data)

    def by_id(self, id_: str) -> dict[str, Any]:
        found = [e for e in self.elements if e["attrs"].get("id") == id_]
        assert len(found) == 1, f"{len(found)} elements with id {id_}"
        return found[0]

    def text(self, element: dict[str, Any]) -> str:
        return "".join(element["text"])

    def samples(self) -> list[dict[str, Any]]:
        return [e for e in self.elements if "fairspec-sample" in (e["attrs"].get("class") or "").split()]

    def indices(self) -> list[int]:
        return [int(e["attrs"]["data-index"]) for e in self.samples()]

    def tags(self, tag: str) -> list[dict[str, Any]]:
        return [e for e in self.elements if e["tag"] == tag]


def open_page(chromium: Browser, tmp_path: Path, samples: list[dict[str, Any]], hash_: str = "",
              extra: list[Html] | None = None, timeout: float = 30) -> Dom:
    page = tmp_path / "report.html"
    page.write_text(Document("t", [sample_browser(samples, threshold=4.0), *(extra or [])]).html(),
                    encoding="utf-8")
    url = page.as_uri() + (f"#{hash_}" if hash_ else "")
    dumped = chromium.dump_dom(url, budget_ms=5000, timeout=timeout)  # --virtual-time-budget=5000
    assert chromium.alive(), "the browser exited while it showed the page"
    dom = Dom(dumped)
    assert dom.by_id("fairspec-browser")["attrs"].get("data-ready") == "1", "the script did not finish"
    return dom


def counts(dom: Dom) -> tuple[int, int]:
    attrs = dom.by_id("fairspec-browser")["attrs"]
    return int(attrs["data-matching"]), int(attrs["data-total"])


def test_page_shows_every_part_of_a_sample(chromium: Browser, tmp_path: Path) -> None:
    dom = open_page(chromium, tmp_path, SMALL)
    assert counts(dom) == (5, 5)
    assert dom.text(dom.by_id("fairspec-count")).startswith("Showing 1-5 of 5 matching samples (5 in all)")
    assert dom.indices() == [0, 1, 2, 3, 4]
    first = dom.text(dom.samples()[0])
    for part in ("an apple a day", "gold: 0", "extracted: 7", "wrong answer 0", "gpt", "accepted",
                 "gemini", "rejected", "mean score 4.5", "rev-a: 4.5", "p(4)=0.40", "rev-b: 4.5",
                 "feedback 0", "1 of 2 accepted"):
        assert part in first, part
    assert "(none extracted)" in dom.text(dom.samples()[1])
    assert "not reviewed" in dom.text(dom.samples()[1])
    assert "no rationale" in dom.text(dom.samples()[2])
    options = [e["attrs"].get("value") for e in dom.tags("option")]
    assert options[-4:] == ["", "gemini", "gpt", "llama"]  # the teacher select, from the data
    assert "disabled" in dom.by_id("fairspec-prev")["attrs"]
    assert "disabled" in dom.by_id("fairspec-next")["attrs"]


@pytest.mark.parametrize(("hash_", "filters", "expected"), SMALL_CASES)
def test_hash_filters(chromium: Browser, tmp_path: Path, hash_: str, filters: dict[str, Any],
                      expected: list[int]) -> None:
    dom = open_page(chromium, tmp_path, SMALL, hash_)
    assert counts(dom) == (len(expected), 5)
    assert dom.indices() == expected
    if not expected:
        assert dom.text(dom.by_id("fairspec-count")) == "No matching samples (5 in all)"


def random_samples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        rationales = []
        for teacher in ("gemini", "gpt", "llama"):
            if rng.random() < 0.25:
                continue
            mean = None if rng.random() < 0.1 else rng.choice([1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0])
            rationales.append(rationale(teacher, mean is not None and mean >= 4.0, mean,
                                        f"{teacher}'s rationale for question {i}\nline two"))
        out.append(sample(i, rationales, f"question {i}: {rng.choice(['apples', 'pears', 'plums'])}"))
    return out


@pytest.mark.parametrize("hash_", ["accepted=no", "teacher=llama", "min_score=4", "min_score=3.5&teacher=gpt",
                                   "accepted=yes&teacher=gemini&q=PEARS", "accepted=unreviewed"])
def test_hash_filters_match_python(chromium: Browser, tmp_path: Path, hash_: str) -> None:
    samples = random_samples(400)
    params = dict(part.split("=") for part in hash_.split("&"))
    filters: dict[str, Any] = {"accepted": params.get("accepted", "all"), "teacher": params.get("teacher"),
                               "query": params.get("q", "")}
    if "min_score" in params:
        filters["min_score"] = float(params["min_score"])
    expected = [s["index"] for s in samples if sample_matches(s, **filters)]
    assert 0 < len(expected) < len(samples)
    dom = open_page(chromium, tmp_path, samples, hash_)
    assert counts(dom) == (len(expected), 400)
    assert dom.indices() == expected[:PER_PAGE]
    text = dom.text(dom.by_id("fairspec-count"))
    assert text.startswith(f"Showing 1-{min(PER_PAGE, len(expected))} of {len(expected)} matching samples "
                           "(400 in all)")


@pytest.mark.parametrize(("page", "shown", "first_page", "last_page"), [
    (1, range(0, 25), True, False), (2, range(25, 50), False, False), (3, range(50, 60), False, True),
    (99, range(50, 60), False, True)])  # past the end: the last page
def test_paging(chromium: Browser, tmp_path: Path, page: int, shown: range, first_page: bool,
                last_page: bool) -> None:
    samples = [sample(i, [rationale("gpt", True, 5.0)]) for i in range(60)]
    dom = open_page(chromium, tmp_path, samples, f"page={page}")
    assert counts(dom) == (60, 60)
    assert dom.indices() == list(shown)
    assert dom.text(dom.by_id("fairspec-count")).startswith(
        f"Showing {shown[0] + 1}-{shown[-1] + 1} of 60 matching samples (60 in all)")
    assert ("disabled" in dom.by_id("fairspec-prev")["attrs"]) is first_page
    assert ("disabled" in dom.by_id("fairspec-next")["attrs"]) is last_page


# Drives the form as a user would, then writes the hash it left (and the shown indices) into the page.
DRIVE = Html(html="""<script>
  const pick = (id, value, event) => { const e = document.getElementById(id); e.value = value;
                                       e.dispatchEvent(new Event(event)); };
  pick("fairspec-teacher", "gpt", "change");
  pick("fairspec-min-score", "4", "input");
  document.getElementById("fairspec-next").click();
  const out = document.createElement("pre"); out.id = "test-hash"; out.textContent = location.hash;
  document.body.appendChild(out);
</script>""", markdown="")


def test_form_updates_the_hash(chromium: Browser, tmp_path: Path) -> None:
    samples = random_samples(400)
    expected = [s["index"] for s in samples
                if sample_matches(s, accepted="yes", teacher="gpt", min_score=4.0)]
    assert len(expected) > PER_PAGE
    dom = open_page(chromium, tmp_path, samples, "accepted=yes&page=3", extra=[DRIVE])
    # accepted kept from the hash, the page back to 1 on a filter change, then one Next
    assert dom.text(dom.by_id("test-hash")) == "#accepted=yes&teacher=gpt&min_score=4&page=2"
    assert counts(dom) == (len(expected), 400)
    assert dom.indices() == expected[PER_PAGE:2 * PER_PAGE]


def test_hostile_text_stays_text(chromium: Browser, tmp_path: Path) -> None:
    hostile = sample(0, [rationale(HOSTILE, True, 4.0, HOSTILE)], HOSTILE)
    hostile["gold"] = hostile["student_answer"] = hostile["student_prediction"] = HOSTILE
    hostile["feedback"] = [{"teacher": HOSTILE, "text": HOSTILE}]
    hostile["rationales"][0]["scores"][0]["reviewer"] = HOSTILE
    hostile["rationales"][0]["scores"][0]["distribution"] = {HOSTILE: 1.0}
    dom = open_page(chromium, tmp_path, [hostile, sample(1, [])], urlencode({"teacher": HOSTILE}))
    assert counts(dom) == (1, 2)
    assert not dom.tags("img") and not dom.tags("b")
    assert len(dom.tags("script")) == 2
    text = dom.text(dom.samples()[0])
    assert text.count(HOSTILE) >= 7  # question, gold, answer, prediction, teacher, rationale, feedback...
    assert "bold" in text


@pytest.mark.slow
def test_twenty_thousand_samples(chromium: Browser, tmp_path: Path) -> None:
    samples = random_samples(20_000, seed=1)
    expected = [s["index"] for s in samples if sample_matches(s, accepted="no")]
    start = time.monotonic()
    dom = open_page(chromium, tmp_path, samples, timeout=60)
    assert counts(dom) == (20_000, 20_000)
    assert dom.indices() == list(range(PER_PAGE))
    assert dom.text(dom.by_id("fairspec-count")).startswith("Showing 1-25 of 20,000 matching samples "
                                                            "(20,000 in all), page 1 of 800")
    dom = open_page(chromium, tmp_path, samples, "accepted=no&page=5", timeout=60)
    assert counts(dom) == (len(expected), 20_000)
    assert dom.indices() == expected[4 * PER_PAGE:5 * PER_PAGE]
    assert time.monotonic() - start < 60
