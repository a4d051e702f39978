"""Prompt and training templates: a sandboxed Jinja environment and per-role variable checks.

Templates are plain text files with Jinja placeholders. They are rendered in an
immutable sandbox with StrictUndefined: a template cannot reach Python internals,
cannot include other files, and fails loudly on a variable it was not given. Each
role receives a fixed set of variables (the DSL's table), checked before anything runs.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from fairspec import template_sandbox
from fairspec.errors import TemplateRenderError
from fairspec.template_sandbox import BoundedSandbox, Overrun, check_deadline, rendering_deadline

#: role -> variables added to the task's fields (except ``answer``).
ROLE_EXTRA_VARIABLES: dict[str, tuple[str, ...]] = {
    "prompts.exam": (),
    "prompts.rationale": (),
    "prompts.feedback": ("student_answer", "gold_answer"),
    "prompts.review": ("rationale", "gold_answer"),
    "training.templates.rationale": (),
    "training.templates.feedback": ("student_answer",),
}
TEMPLATE_ROLES = tuple(ROLE_EXTRA_VARIABLES)



#: A rendered prompt past this many characters, or a render past this many seconds, is a
#: template error: a prompt is a few thousand characters, rendered in microseconds; a
#: template that loops for hours or renders 100 MB is a mistake (or an attack).
MAX_RENDER_CHARS = template_sandbox.MAX_RENDER_CHARS
MAX_RENDER_S = 5.0


def make_environment() -> BoundedSandbox:
    """The one Jinja environment fairspec renders with: sandboxed, strict, no loader,
    bounded in time and size (:mod:`fairspec.template_sandbox`)."""
    return BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


_ENV = make_environment()


def role_variables(role: str, fields: Iterable[str]) -> set[str]:
    """The variables a template of ``role`` may use, given the task's field names."""
    return {f for f in fields if f != "answer"} | set(ROLE_EXTRA_VARIABLES[role])


@dataclass(frozen=True)
class TemplateIssue:
    """Something wrong in a template's source; ``line`` is inside the template file."""

    message: str
    hint: str | None = None
    line: int | None = None


def check_template(source: str, allowed: set[str]) -> list[TemplateIssue]:
    """Syntax errors, includes, Python internals (``_``-attributes), and every variable
    outside ``allowed``."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        return [TemplateIssue(f"Jinja syntax error: {exc.message}", line=exc.lineno)]
    issues = []
    if list(meta.find_referenced_templates(ast)):
        issues.append(TemplateIssue("templates cannot include, import or extend other files",
                                    "inline the text instead"))
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        attribute = _attribute_read(node)
        if isinstance(attribute, str) and attribute.startswith("_"):
            issues.append(TemplateIssue(
                f"reads the internal attribute '{attribute}', which the template sandbox blocks",
                "templates may use the variables' values, not Python internals", line=node.lineno))
    for name in sorted(meta.find_undeclared_variables(ast) - allowed):
        close = difflib.get_close_matches(name, sorted(allowed), n=1)
        hint = f"did you mean '{close[0]}'?" if close else None
        available = ", ".join(sorted(allowed))
        hint = f"{hint} available: {available}" if hint else f"available: {available}"
        issues.append(TemplateIssue(f"uses unknown variable '{name}'", hint))
    return issues


def _attribute_read(node: nodes.Node) -> str | None:
    """The attribute name a ``x.name``, ``x['name']`` or ``x|attr('name')`` node reads."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    argument = None
    if isinstance(node, nodes.Getitem):
        argument = node.arg
    elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        argument = node.args[0]
    return argument.value if isinstance(argument, nodes.Const) else None


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    """``source`` compiled once (a stage renders one template for every mistake: compiling
    it each time was a third of the teach stage's CPU)."""
    return _ENV.from_string(source)


def render(source: str, variables: Mapping[str, Any], *, name: str = "<template>",
           row: Any = None) -> str:
    """Render ``source`` in the sandbox, bounded in time and size; any failure (a variable it
    was not given, the sandbox, a division by zero, a number added to a string, a macro
    calling itself, an overrun) is a TemplateRenderError naming ``name`` and the ``row``
    it rendered for."""
    where = name if row is None else f"{name}, row {row}"
    try:
        with rendering_deadline(MAX_RENDER_S):
            parts, size = [], 0
            for part in _compiled(source).generate(**variables):
                size += len(part)
                if size > MAX_RENDER_CHARS:
                    raise Overrun(f"it renders more than {MAX_RENDER_CHARS:,} characters")
                check_deadline()
                parts.append(part)
            return "".join(parts)
    except UndefinedError as exc:
        raise TemplateRenderError(f"{where}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateRenderError(f"{where}: blocked by the template sandbox: {exc}") from None
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"{where}:{exc.lineno}: Jinja syntax error: {exc.message}") from None
    except Overrun as exc:
        raise TemplateRenderError(f"{where}: stopped: {exc}") from None
    except MemoryError:
        raise TemplateRenderError(f"{where}: stopped: it ran out of memory") from None
    except RecursionError:
        raise TemplateRenderError(f"{where}: recursion too deep (a macro calling itself?)") from None
    except Exception as exc:  # noqa: BLE001 - what the template itself did wrong, said plainly
        raise TemplateRenderError(f"{where}: {type(exc).__name__}: {exc}") from None

