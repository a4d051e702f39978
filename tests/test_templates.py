"""The template sandbox: strict variables, no Python internals, no file includes."""

from __future__ import annotations

import pytest

from fairspec.templates import (
    TemplateRenderError,
    check_template,
    render,
    role_variables,
)


def test_renders_the_given_variables():
    assert render("Q: {{ question }} ({{ options | length }})",
                  {"question": "2+2?", "options": ["3", "4"]}) == "Q: 2+2? (2)"


def test_undefined_variable_fails_instead_of_rendering_empty():
    with pytest.raises(TemplateRenderError, match="'student_answer' is undefined"):
        render("{{ student_answer }}", {}, name="feedback.j2")


@pytest.mark.parametrize("escape", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ question.__class__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ [].append(1) }}",
])
def test_sandbox_blocks_python_internals(escape):
    with pytest.raises(TemplateRenderError):
        render(escape, {"question": "q"})


def test_check_flags_includes_and_unknown_variables():
    issues = check_template('{% include "secrets.txt" %}{{ qestion }}', {"question"})
    messages = [i.message for i in issues]
    assert any("include" in m for m in messages)
    assert any("'qestion'" in m for m in messages)
    assert any(i.hint and "did you mean 'question'?" in i.hint for i in issues)


def test_check_reports_syntax_errors_with_the_template_line():
    (issue,) = check_template("line one\n{{ question ", {"question"})
    assert issue.line == 2 and "syntax" in issue.message


@pytest.mark.parametrize("role,extra", [
    ("prompts.exam", set()),
    ("prompts.rationale", set()),
    ("prompts.feedback", {"student_answer", "gold_answer"}),
    ("prompts.review", {"rationale", "gold_answer"}),
    ("training.templates.rationale", set()),
    ("training.templates.feedback", {"student_answer"}),
])
def test_role_variables_follow_the_dsl_table(role, extra):
    fields = ["question", "context", "answer"]
    assert role_variables(role, fields) == {"question", "context"} | extra


@pytest.mark.parametrize("source, attribute", [
    ("{{ question.__class__ }}", "__class__"),
    ("{{ question['__class__'] }}", "__class__"),
    ("{{ question|attr('__init__') }}", "__init__"),
    ("{% for x in question._secret %}{% endfor %}", "_secret"),
])
def test_check_flags_reads_of_python_internals_before_anything_renders(source, attribute):
    issues = check_template("Line one\n" + source, {"question"})
    assert [(i.line, attribute in i.message) for i in issues] == [(2, True)]
    assert render("{{ question.upper() }}", {"question": "q"}) == "Q"  # ordinary methods stay usable


def test_validate_names_the_template_line_that_reads_internals(tmp_path):
    from fairspec.dsl import load_spec
    from fairspec.errors import SpecError

    (tmp_path / "evil.j2").write_text("Solve {{ question }}\n{{ question|attr('__class__') }}\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("""fairspec: 1
name: sbx
task:
  kind: math
  dataset: {path: builtin:data/svamp-mini}
  fields: {question: question_concat, answer: Answer}
student: {model: builtin:smollm2-135m-instruct}
teachers:
  - {name: a, provider: hf, model: builtin:smollm2-135m-instruct}
review: {enabled: false}
prompts:
  rationale: evil.j2
""")
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    (problem,) = caught.value.problems
    assert (problem.line, problem.path) == (12, "prompts.rationale")
    assert "evil.j2:2" in problem.message and "'__class__'" in problem.message


# -- hostile templates: bounded, and every failure a located TemplateRenderError ---------------

@pytest.mark.parametrize("source,says", [
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ("{{ 1 + 'a' }}", "TypeError"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion too deep"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
     "stopped"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "stopped"),
    ("{{ 'x' * 100000000 }}", "more than 1,000,000 items"),
    ("{{ 10 ** 100000000 }}", "a power with exponent"),
    ("{% for i in range(99999) %}{{ 'abcdefghijklmnopqrstuvwxyz' }}{% endfor %}",
     "renders more than 1,000,000 characters"),
    # values built in one step, refused before they are built (each was gigabytes of memory)
    ("{{ 'x'|center(10**10) }}", "a centred value of more than 1,000,000"),
    ("{{ 'x'|center(10000000000) }}", "a centred value"),  # a constant: folded at compile time
    ("{{ 'a\nb'|indent(10**9) }}", "an indented value"),
    ("{{ '%999999999d'|format(1) }}", "a format width of 999999999"),
    ("{{ '%999999999d' % 1 }}", "a format width of 999999999"),
    ("{{ '%*d' % (999999999, 1) }}", "a format width of 999999999"),
    ("{{ '{:>999999999}'.format(1) }}", "a format width of 999999999"),
    ("{{ '{:>{w}}'.format(1, w=999999999) }}", "a format width of 999999999"),
    ("{{ ('x' * 999999)|replace('', 'y' * 999999) }}", "a replaced value"),
    ("{{ (['x' * 999999] * 999999)|join }}", "a joined value"),
    ("{{ ['x' * 999999] * 999999 }}", "an output value"),
    ("{{ (['x' * 999999] * 999999)|string }}", "the string filter's value"),
    ("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
     "{% endfor %}{{ ns.s|length }}", "a concatenation"),
    ("{% set ns = namespace(s=[1]) %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
     "{% endfor %}{{ ns.s|length }}", "a sum"),
    ("{{ ('ab' * 400000)|wordwrap(1, wrapstring='y' * 10) }}", "a wrapped value"),
    ("{{ range(5)|batch(10**10, 'x')|list }}", "a batch"),
])
def test_a_hostile_template_fails_fast_and_names_its_row(source, says, monkeypatch):
    import time

    import fairspec.templates as templates

    monkeypatch.setattr(templates, "MAX_RENDER_S", 1.0)
    started = time.monotonic()
    with pytest.raises(TemplateRenderError) as failed:
        render(source, {}, name="prompts.rationale", row=7)
    assert time.monotonic() - started < 10
    message = str(failed.value)
    assert message.startswith("prompts.rationale, row 7: ") and says in message, message


def test_a_bounded_render_is_still_the_render():
    assert render("{{ q }} {% for i in range(3) %}{{ i }}{% endfor %} {{ 'ab' * 2 }} {{ 2 ** 10 }}",
                  {"q": "Q?"}) == "Q? 012 abab 1024"
    checked = ("{{ 'abc'|center(7) }}|{{ 'a\nb'|indent(2) }}|{{ '%3d'|format(5) }}|{{ '%s!' % q }}|"
               "{{ '{:>4}'.format(1) }}|{{ '{:>{w}}'.format(1, w=3) }}|{{ 'aXb'|replace('X', '--') }}|"
               "{{ [1, 2]|join(',') }}|{{ 'a' ~ 'b' ~ 3 }}|{{ [1] + [2] }}|{{ q + 'b' }}|{{ {'k': 1} }}|"
               "{{ 'a b c'|wordwrap(3) }}|{{ range(3)|batch(2, 0)|list }}")
    assert render(checked, {"q": "Q"}) == ("  abc  |a\n  b|  5|Q!|   1|  1|a--b|1,2|ab3|[1, 2]|Qb|"
                                            "{'k': 1}|a b\nc|[[0, 1], [2, 0]]")
