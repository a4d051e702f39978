"""Prompt and training templates: a sandboxed Jinja environment and per-role variable checks.

Templates are plain text files with Jinja placeholders. They are rendered in an
immutable sandbox with StrictUndefined: a template cannot reach Python internals,
cannot include other files, and fails loudly on a variable it was not given. Each
role receives a fixed set of variables (the DSL's table), checked before anything runs.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fairspec.errors import TemplateRenderError

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
MAX_RENDER_CHARS = 1_000_000
MAX_RENDER_S = 5.0
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("render_deadline",
                                                                         default=None)


class _Overrun(Exception):
    """A render went past MAX_RENDER_S or MAX_RENDER_CHARS (raised inside it)."""


def _check_deadline() -> None:
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() > deadline:
        raise _Overrun(f"rendering took more than {MAX_RENDER_S:g} s (a loop without end?)")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with every call and every ``*``/``**`` checked: a render past its
    deadline stops at its next call, and a string or list multiplied past
    MAX_RENDER_CHARS (or a power with a huge exponent) is refused before it is built."""

    intercepted_binops = frozenset({"*", "**"})

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_deadline()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_deadline()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) \
                        and len(seq) * times > MAX_RENDER_CHARS:
                    raise _Overrun(f"a value of more than {MAX_RENDER_CHARS:,} items")
        if operator == "**" and isinstance(right, int | float) and (
                abs(right) > 10_000 or isinstance(left, int)
                and abs(right) * max(1, abs(left).bit_length()) > 4_000_000):
            raise _Overrun(f"a power with exponent {right} (a number of millions of digits)")
        return super().call_binop(context, operator, left, right)


def make_environment() -> ImmutableSandboxedEnvironment:
    """The one Jinja environment fairspec renders with: sandboxed, strict, no loader,
    bounded in time and size (:data:`MAX_RENDER_S`, :data:`MAX_RENDER_CHARS`)."""
    return _BoundedSandbox(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
    )


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
    token = _DEADLINE.set(time.monotonic() + MAX_RENDER_S)
    try:
        parts, size = [], 0
        for part in _compiled(source).generate(**variables):
            size += len(part)
            if size > MAX_RENDER_CHARS:
                raise _Overrun(f"it renders more than {MAX_RENDER_CHARS:,} characters")
            _check_deadline()
            parts.append(part)
        return "".join(parts)
    except UndefinedError as exc:
        raise TemplateRenderError(f"{where}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateRenderError(f"{where}: blocked by the template sandbox: {exc}") from None
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"{where}:{exc.lineno}: Jinja syntax error: {exc.message}") from None
    except _Overrun as exc:
        raise TemplateRenderError(f"{where}: stopped: {exc}") from None
    except RecursionError:
        raise TemplateRenderError(f"{where}: recursion too deep (a macro calling itself?)") from None
    except Exception as exc:  # noqa: BLE001 - what the template itself did wrong, said plainly
        raise TemplateRenderError(f"{where}: {type(exc).__name__}: {exc}") from None
    finally:
        _DEADLINE.reset(token)
