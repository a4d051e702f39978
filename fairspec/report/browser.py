"""The report's sample browser: every distillation sample of a run (one per student mistake, as
:func:`fairspec.report.samples.iter_samples` yields them), browsable in report.html.

The samples travel as one JSON document in the page (``<script type="application/json">``,
escaped so that no text can end the element), and a small inline script filters and pages
them: it renders only the current page (25 samples) with ``createElement``/``textContent``,
never parsing a sample's text as HTML, so the page stays quick for tens of thousands of
samples and safe for any model output. No library, font or file outside the page: it works
opened from ``file://`` offline.

Filters (form controls, mirrored in the URL hash, e.g. ``#accepted=no&teacher=gpt&page=2``):

``teacher``
    A teacher's name, or absent for any teacher. It scopes the other filters to that teacher's
    rationales: ``accepted`` and ``min_score`` look only at them, and a sample it wrote no
    rationale for is left out (except by ``accepted=none``, which lists exactly those).
``accepted``
    ``yes``: some (considered) rationale was accepted. ``no``: there is a rationale and none was
    accepted. ``none``: there is no rationale (the teachers' answers were unusable).
    ``unreviewed``: some rationale has no review score (``mean_score`` is null); its accepted
    flag still counts for ``yes``/``no``. Absent (or ``all``): no condition.
``min_score``
    Some (considered) rationale has a mean review score of at least this; unreviewed
    rationales never match.
``q``
    Case-insensitive text the question contains.
``page``
    The page of 25 matching samples, from 1.

:func:`sample_matches` is the same rule in Python (for tests, and for anyone who wants the
count without a browser).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from typing import Any

from fairspec.report.document import Html

PER_PAGE = 25
ACCEPTED_CHOICES = ("all", "yes", "no", "none", "unreviewed")

# Characters that could end the <script> element or start markup (<, >, &), that old
# JavaScript parsers treat as line ends (U+2028, U+2029), and lone surrogates (not encodable
# as UTF-8): written as JSON escapes, which JSON.parse reads back as the same characters.
_UNSAFE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")


def embed_json(value: Any) -> str:
    """``value`` as JSON text safe to put inside a ``<script type="application/json">``
    element: it holds no ``<``, ``>`` or ``&``, so no string in it can close the element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def sample_matches(sample: dict[str, Any], *, accepted: str = "all", teacher: str | None = None,
                   min_score: float | None = None, query: str = "") -> bool:
    """Whether the browser shows ``sample`` under these filters (the rules in the module's
    docstring; the page's script applies the same)."""
    rationales = sample.get("rationales") or []
    if teacher:
        rationales = [r for r in rationales if r.get("teacher") == teacher]
    if accepted == "none":
        if rationales:
            return False
    elif teacher and not rationales:
        return False
    if accepted == "yes" and not any(r.get("accepted") for r in rationales):
        return False
    if accepted == "no" and (not rationales or any(r.get("accepted") for r in rationales)):
        return False
    if accepted == "unreviewed" and not any(r.get("mean_score") is None for r in rationales):
        return False
    if min_score is not None and not any(r.get("mean_score") is not None and r["mean_score"] >= min_score
                                         for r in rationales):
        return False
    return not query or query.lower() in str(sample.get("question") or "").lower()


def sample_browser(samples: Sequence[dict[str, Any]], *, threshold: float | None = None,
                   rule: str | None = None) -> Html:
    """The report block that browses ``samples``: an HTML fragment with its own style, data and
    script, and a Markdown line that points to report.html. ``threshold`` (the acceptance
    threshold on the mean score), where given, is named above the filters; ``rule`` (the
    review policy in words) replaces that sentence."""
    samples = list(samples)
    total = len(samples)
    with_accepted = sum(1 for s in samples if any(r.get("accepted") for r in s.get("rationales") or []))
    without = sum(1 for s in samples if not s.get("rationales"))
    rejected = total - with_accepted - without
    if rule is not None:
        rule = " " + html.escape(rule)
    else:
        rule = ("" if threshold is None else
                f" A rationale is accepted when its mean review score is at least {threshold:g}.")
    fragment = (
        f"<style>{_STYLE}</style>"
        f"<section id='fairspec-browser' data-total='{total}' data-matching='' data-per-page='{PER_PAGE}'"
        + ("" if threshold is None else f" data-threshold='{threshold:g}'") + ">"
        "<h2>Samples</h2>"
        f"<p class='fs-note'>Each student mistake with the teachers' rationales, their review scores and "
        f"feedback.{rule} Filters are kept in the address (#...), so a link opens the same view.</p>"
        "<form class='fs-filters' id='fairspec-filters' onsubmit='return false'>"
        "<label>Accepted <select id='fairspec-accepted'>"
        "<option value='all'>all</option><option value='yes'>accepted</option>"
        "<option value='no'>rejected</option><option value='none'>no rationale</option>"
        "<option value='unreviewed'>not reviewed</option></select></label>"
        "<label>Teacher <select id='fairspec-teacher'><option value=''>any</option></select></label>"
        "<label>Min. mean score <input id='fairspec-min-score' type='number' step='any' "
        "inputmode='decimal' placeholder='any'></label>"
        "<label class='fs-grow'>Question contains <input id='fairspec-q' type='search' "
        "placeholder='text'></label>"
        "</form>"
        "<div class='fs-bar'><button type='button' id='fairspec-prev'>&larr; Prev</button>"
        "<span id='fairspec-count' aria-live='polite'>Loading&hellip;</span>"
        "<button type='button' id='fairspec-next'>Next &rarr;</button></div>"
        "<div id='fairspec-list'></div>"
        "<noscript><p>The sample browser needs JavaScript.</p></noscript>"
        "</section>"
        f"<script type='application/json' id='fairspec-samples'>{embed_json(samples)}</script>"
        f"<script>{_SCRIPT}</script>"
    )
    markdown = (f"The sample browser ({total:,} samples: {with_accepted:,} with an accepted rationale, "
                f"{rejected:,} with none accepted, {without:,} without a rationale) is in report.html.")
    return Html(html=fragment, markdown=markdown)


_STYLE = """
#fairspec-browser { margin: 1.5em 0; }
#fairspec-browser .fs-note { color: #555; font-size: 0.92em; }
#fairspec-browser .fs-filters { display: flex; flex-wrap: wrap; gap: 0.6em 1.2em; align-items: end;
  padding: 0.7em 0.9em; border: 1px solid #ddd; border-radius: 6px; background: #fafafa; }
#fairspec-browser .fs-filters label { display: flex; flex-direction: column; font-size: 0.85em;
  color: #444; gap: 0.2em; }
#fairspec-browser .fs-filters .fs-grow { flex: 1 1 12em; }
#fairspec-browser select, #fairspec-browser input, #fairspec-browser button { font: inherit;
  font-size: 0.95rem; padding: 0.2em 0.4em; border: 1px solid #bbb; border-radius: 4px;
  background: #fff; }
#fairspec-browser input[type=number] { width: 6em; }
#fairspec-browser button { cursor: pointer; }
#fairspec-browser button:disabled { color: #aaa; cursor: default; }
#fairspec-browser .fs-bar { display: flex; align-items: center; gap: 1em; margin: 0.8em 0; }
#fairspec-browser #fairspec-count { flex: 1; text-align: center; color: #333; }
#fairspec-browser .fairspec-sample { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 0.9em;
  margin: 0 0 1em; }
#fairspec-browser .fs-head { display: flex; flex-wrap: wrap; gap: 0.3em 1em; align-items: baseline;
  font-size: 0.9em; color: #555; margin-bottom: 0.3em; }
#fairspec-browser .fs-head strong { color: #222; font-size: 1.05em; }
#fairspec-browser .fs-text { white-space: pre-wrap; overflow-wrap: anywhere; max-height: 18em;
  overflow: auto; margin: 0.2em 0 0.5em; }
#fairspec-browser .fs-label { font-size: 0.8em; text-transform: uppercase; letter-spacing: 0.04em;
  color: #777; margin-top: 0.5em; }
#fairspec-browser .fs-student { background: #fdf6f6; border-left: 3px solid #e3b4b4;
  padding: 0.2em 0.6em; }
#fairspec-browser .fs-rat { border-left: 3px solid #ccc; padding: 0.1em 0.7em; margin: 0.4em 0; }
#fairspec-browser .fs-rat.fs-yes { border-left-color: #4caf50; }
#fairspec-browser .fs-rat.fs-no { border-left-color: #e57373; }
#fairspec-browser .fs-rhead { display: flex; flex-wrap: wrap; gap: 0.3em 0.8em; align-items: center;
  font-size: 0.9em; }
#fairspec-browser .fs-badge { display: inline-block; font-size: 0.78em; padding: 0.05em 0.5em;
  border-radius: 1em; border: 1px solid; }
#fairspec-browser .fs-badge.fs-yes { color: #1b5e20; background: #e8f5e9; border-color: #a5d6a7; }
#fairspec-browser .fs-badge.fs-no { color: #b71c1c; background: #ffebee; border-color: #ef9a9a; }
#fairspec-browser .fs-badge.fs-none { color: #555; background: #f3f3f3; border-color: #ccc; }
#fairspec-browser .fs-scores { display: flex; flex-wrap: wrap; gap: 0.2em 1.1em; font-size: 0.85em;
  color: #444; }
#fairspec-browser .fs-dist { display: inline-flex; align-items: flex-end; gap: 1px; height: 1em;
  width: 2.6em; vertical-align: -0.1em; margin: 0 0.3em; border-bottom: 1px solid #bbb; }
#fairspec-browser .fs-dist span { flex: 1; background: #7986cb; min-height: 1px; }
#fairspec-browser .fs-fb { margin: 0.3em 0; }
#fairspec-browser .fs-fb .fs-text { margin-top: 0; }
#fairspec-browser .fs-who { font-weight: 600; font-size: 0.9em; }
"""

# Plain ES2017. Reads the hash, filters the parsed array, renders one page with createElement.
_SCRIPT = r"""
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const root = $("fairspec-browser");
  const samples = JSON.parse($("fairspec-samples").textContent);
  const perPage = Number(root.dataset.perPage) || 25;
  const threshold = root.dataset.threshold === undefined ? null : Number(root.dataset.threshold);
  const ui = {accepted: $("fairspec-accepted"), teacher: $("fairspec-teacher"),
              min: $("fairspec-min-score"), q: $("fairspec-q"), count: $("fairspec-count"),
              prev: $("fairspec-prev"), next: $("fairspec-next"), list: $("fairspec-list")};
  const CHOICES = ["all", "yes", "no", "none", "unreviewed"];
  const num = (n) => n.toLocaleString("en-US");
  const fmt = (x) => (x === null || x === undefined) ? "-" : String(Number(Number(x).toFixed(2)));
  let lowered = null;  // questions in lower case, made on the first text search
  let state = {accepted: "all", teacher: "", min: null, q: "", page: 1};
  let matching = [];

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // teachers (options) and the score range (number input bounds) from the data
  const teachers = new Set();
  let lo = Infinity, hi = -Infinity;
  for (const s of samples) {
    for (const r of s.rationales || []) {
      teachers.add(String(r.teacher));
      for (const sc of r.scores || []) {
        if (typeof sc.score === "number") { lo = Math.min(lo, sc.score); hi = Math.max(hi, sc.score); }
      }
    }
  }
  function addTeacher(name) {
    const option = el("option", null, name);
    option.value = name;
    ui.teacher.appendChild(option);
  }
  Array.from(teachers).sort().forEach(addTeacher);
  if (lo <= hi) { ui.min.min = String(lo); ui.min.max = String(hi); }
  if (threshold !== null) ui.min.title = "Rationales are accepted at a mean score of " + fmt(threshold);

  function matches(s, f) {
    let rs = s.rationales || [];
    if (f.teacher) rs = rs.filter((r) => String(r.teacher) === f.teacher);
    if (f.accepted === "none") { if (rs.length) return false; }
    else if (f.teacher && !rs.length) return false;
    if (f.accepted === "yes" && !rs.some((r) => r.accepted)) return false;
    if (f.accepted === "no" && (!rs.length || rs.some((r) => r.accepted))) return false;
    if (f.accepted === "unreviewed" && !rs.some((r) => r.mean_score === null || r.mean_score === undefined)) {
      return false;
    }
    if (f.min !== null && !rs.some((r) => typeof r.mean_score === "number" && r.mean_score >= f.min)) {
      return false;
    }
    return true;
  }

  function filter() {
    const f = state, q = f.q.toLowerCase();
    if (q && lowered === null) lowered = samples.map((s) => String(s.question || "").toLowerCase());
    matching = [];
    for (let i = 0; i < samples.length; i++) {
      if (matches(samples[i], f) && (!q || lowered[i].includes(q))) matching.push(i);
    }
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    const accepted = p.get("accepted") || "all";
    const min = p.get("min_score");
    const page = parseInt(p.get("page") || "1", 10);
    state = {accepted: CHOICES.includes(accepted) ? accepted : "all",
             teacher: p.get("teacher") || "",
             min: (min === null || min.trim() === "" || !isFinite(Number(min))) ? null : Number(min),
             q: p.get("q") || "", page: page > 0 ? page : 1};
    if (state.teacher && !teachers.has(state.teacher)) {  // a name not in the data: still an option
      teachers.add(state.teacher);
      addTeacher(state.teacher);
    }
    ui.accepted.value = state.accepted;
    ui.teacher.value = state.teacher;
    ui.min.value = state.min === null ? "" : String(state.min);
    ui.q.value = state.q;
  }

  function writeHash() {
    const p = new URLSearchParams();
    if (state.accepted !== "all") p.set("accepted", state.accepted);
    if (state.teacher) p.set("teacher", state.teacher);
    if (state.min !== null) p.set("min_score", String(state.min));
    if (state.q) p.set("q", state.q);
    if (state.page > 1) p.set("page", String(state.page));
    const hash = p.toString();
    const url = location.pathname + location.search + (hash ? "#" + hash : "");
    try { history.replaceState(null, "", url); } catch (e) { location.hash = hash; }
  }

  function badge(kind, text) { return el("span", "fs-badge fs-" + kind, text); }

  function dist(d) {
    const keys = Object.keys(d).sort((a, b) => Number(a) - Number(b));
    const box = el("span", "fs-dist");
    let best = keys[0];
    for (const k of keys) {
      const p = Number(d[k]) || 0;
      const bar = el("span");
      bar.style.height = Math.max(0, Math.min(1, p)) * 100 + "%";
      box.appendChild(bar);
      if (p > (Number(d[best]) || 0)) best = k;
    }
    box.title = keys.map((k) => "p(" + k + ")=" + (Number(d[k]) || 0).toFixed(2)).join(" ");
    const wrap = el("span");
    wrap.appendChild(box);
    wrap.appendChild(document.createTextNode("p(" + best + ")=" + (Number(d[best]) || 0).toFixed(2)));
    return wrap;
  }

  function label(text) { return el("div", "fs-label", text); }

  function renderSample(s) {
    const node = el("article", "fairspec-sample");
    node.dataset.index = String(s.index);
    const rs = s.rationales || [];
    const head = el("div", "fs-head");
    head.appendChild(el("strong", null, "#" + s.index));
    const missing = (x) => x === null || x === undefined;
    head.appendChild(el("span", null, "gold: " + (missing(s.gold) ? "-" : s.gold)));
    head.appendChild(el("span", null, "extracted: " +
      (missing(s.student_prediction) ? "(none extracted)" : s.student_prediction)));
    const nAcc = rs.filter((r) => r.accepted).length;
    head.appendChild(rs.length === 0 ? badge("none", "no rationale")
      : badge(nAcc ? "yes" : "no", nAcc + " of " + rs.length + " accepted"));
    node.appendChild(head);
    node.appendChild(label("Question"));
    node.appendChild(el("div", "fs-text", s.question));
    node.appendChild(label("Student's answer"));
    node.appendChild(el("div", "fs-text fs-student", s.student_answer));
    if (rs.length) node.appendChild(label("Rationales"));
    for (const r of rs) {
      const box = el("div", "fs-rat " + (r.accepted ? "fs-yes" : "fs-no"));
      const rh = el("div", "fs-rhead");
      rh.appendChild(el("span", "fs-who", r.teacher));
      rh.appendChild(badge(r.accepted ? "yes" : "no", r.accepted ? "accepted" : "rejected"));
      rh.appendChild(missing(r.mean_score) ? badge("none", "not reviewed")
        : el("span", null, "mean score " + fmt(r.mean_score)));
      box.appendChild(rh);
      box.appendChild(el("div", "fs-text", r.text));
      if ((r.scores || []).length) {
        const sc = el("div", "fs-scores");
        for (const v of r.scores) {
          const item = el("span", null, v.reviewer + ": " + fmt(v.score));
          if (v.distribution && typeof v.distribution === "object") item.appendChild(dist(v.distribution));
          sc.appendChild(item);
        }
        box.appendChild(sc);
      }
      node.appendChild(box);
    }
    const fb = s.feedback || [];
    if (fb.length) node.appendChild(label("Feedback"));
    for (const f of fb) {
      const box = el("div", "fs-fb");
      box.appendChild(el("span", "fs-who", f.teacher));
      box.appendChild(el("div", "fs-text", f.text));
      node.appendChild(box);
    }
    return node;
  }

  function render() {
    const pages = Math.max(1, Math.ceil(matching.length / perPage));
    if (state.page > pages) state.page = pages;
    const start = (state.page - 1) * perPage;
    const end = Math.min(matching.length, start + perPage);
    const frag = document.createDocumentFragment();
    for (let i = start; i < end; i++) frag.appendChild(renderSample(samples[matching[i]]));
    ui.list.textContent = "";
    ui.list.appendChild(frag);
    ui.count.textContent = matching.length
      ? "Showing " + num(start + 1) + "-" + num(end) + " of " + num(matching.length) +
        " matching samples (" + num(samples.length) + " in all), page " + state.page + " of " + pages
      : "No matching samples (" + num(samples.length) + " in all)";
    ui.prev.disabled = state.page <= 1;
    ui.next.disabled = state.page >= pages;
    root.dataset.matching = String(matching.length);
    root.dataset.total = String(samples.length);
    root.dataset.page = String(state.page);
    root.dataset.ready = "1";
  }

  function fromForm() {
    const min = ui.min.value.trim();
    state = {accepted: ui.accepted.value, teacher: ui.teacher.value,
             min: min === "" || !isFinite(Number(min)) ? null : Number(min), q: ui.q.value, page: 1};
    filter(); render(); writeHash();
  }

  function go(delta) {
    state.page += delta;
    render(); writeHash();
    root.scrollIntoView({block: "start"});
  }

  ui.accepted.addEventListener("change", fromForm);
  ui.teacher.addEventListener("change", fromForm);
  ui.min.addEventListener("input", fromForm);
  ui.q.addEventListener("input", fromForm);
  ui.prev.addEventListener("click", () => go(-1));
  ui.next.addEventListener("click", () => go(1));
  window.addEventListener("hashchange", () => { readHash(); filter(); render(); });
  readHash(); filter(); render();
})();
"""
