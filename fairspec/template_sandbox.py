"""The Jinja sandbox fairspec renders templates in, bounded in time and in the size of what a
template can build.

Jinja's immutable sandbox keeps a template away from Python internals; it does not stop a
template from building a value of gigabytes in one step (``'x'|center(10**10)``,
``'%999999999d' % 1``, ``"{:>999999999}".format(1)``, a string doubled by ``~`` in a loop)
or from looping for hours. Here every such step is checked *before* the value is built:

- the binary operators ``*``, ``**``, ``+`` and ``%`` (the sandbox's intercepted operators),
  the ``~`` concatenation (through the code generator), ``str.format``/``format_map`` (as
  the sandbox wraps them) and the filters that can make a value much larger than
  their input (``center``, ``indent``, ``format``, ``replace``, ``join``, ``wordwrap``,
  ``string``, ``list``, ``batch``) refuse a result past :data:`MAX_RENDER_CHARS`;
- every call, filter and checked operator first checks the render's deadline (set by
  :func:`rendering_deadline`), so a loop without end stops at its next step;
- an output value's size is checked before it is turned into text (``finalize``).

An overrun is an :class:`Overrun`, which ``fairspec.templates.render`` reports as a located
template error.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
import string
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import Environment
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Concat, EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: The most characters (or items) a template may build in one value, or render in all.
MAX_RENDER_CHARS = 1_000_000

_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "render_deadline", default=None)


class Overrun(Exception):
    """A render went past its deadline or would build a value past MAX_RENDER_CHARS."""


@contextlib.contextmanager
def rendering_deadline(seconds: float) -> Iterator[None]:
    """Bound the renders inside to ``seconds`` from now."""
    token = _DEADLINE.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def check_deadline() -> None:
    found = _DEADLINE.get()
    if found is not None and time.monotonic() > found[0]:
        raise Overrun(f"rendering took more than {found[1]:g} s (a loop without end?)")


def _refuse_over(size: int, what: str = "a value") -> None:
    if size > MAX_RENDER_CHARS:
        raise Overrun(f"{what} of more than {MAX_RENDER_CHARS:,} characters or items")


def _size(value: Any) -> int:
    """Characters (a string) or items (a container) of ``value``; 0 for anything else."""
    return len(value) if isinstance(value, str | list | tuple | dict | set | frozenset) else 0


def _text_size(value: Any) -> int:
    """An upper bound, cheap to compute, of ``str(value)``'s length: a container's items'
    text plus a few characters of punctuation per item (its items counted, nested ones by
    their own bound). A value past the limit in items is refused without looking further."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple | set | frozenset | dict):
        _refuse_over(len(value), "a container")
        items = value.items() if isinstance(value, dict) else value
        total = 2
        for item in items:
            total += 4 + (_text_size(item[0]) + _text_size(item[1]) if isinstance(value, dict)
                          else _text_size(item))
            if total > MAX_RENDER_CHARS:
                return total
        return total
    return 32  # a number, None, a bool: short


#: ``%``-style conversions: flags, then a width and a precision (digits or ``*``).
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[a-zA-Z%]")
#: numbers in a ``str.format`` field's format spec (its width and precision)
_DIGITS = re.compile(r"\d+")


def _refuse_width(number: str) -> None:
    """A format width or precision written in a template (digits) past the limit."""
    if number.isdigit() and (len(number) > 7 or int(number) > MAX_RENDER_CHARS):
        raise Overrun(f"a format width of {number}")


def _refuse_width_args(args: Any) -> None:
    """Arguments that a ``*`` or a nested field makes a width: an int past the limit."""
    for arg in args:
        if isinstance(arg, int) and abs(arg) > MAX_RENDER_CHARS:
            raise Overrun(f"a format width of {arg}")


def _check_percent(template: str, args: Any) -> None:
    """``template % args`` refused when a width or precision (given, or taken by ``*`` from
    the arguments) passes the limit."""
    for width, precision in _PERCENT.findall(template):
        _refuse_width(width)
        _refuse_width(precision)
    if "*" in template:
        _refuse_width_args(args if isinstance(args, tuple) else (args,))


def _check_format(template: str) -> None:
    """``template.format(...)`` refused when a field's width or precision passes the limit
    (nested fields included)."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # str.format raises its own error
    for _, _, spec, _ in fields:
        for number in _DIGITS.findall(spec or ""):
            _refuse_width(number)
        if spec and "{" in spec:
            _check_format(spec)


def _check_filter(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a call of filter ``name`` whose result would pass the limit, before it runs."""
    if args and isinstance(args[0], EvalContext | Context | Environment):
        args = args[1:]  # what a pass_eval_context/pass_context/pass_environment filter gets first
    value = args[0] if args else None
    rest = args[1:]
    if name == "center":
        width = rest[0] if rest else kwargs.get("width", 80)
        if isinstance(width, int):
            _refuse_over(width, "a centred value")
    elif name == "indent":
        width = rest[0] if rest else kwargs.get("width", 4)
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        lines = value.count("\n") + 1 if isinstance(value, str) else 1
        _refuse_over(pad * lines + _size(value), "an indented value")
    elif name == "format" and isinstance(value, str):
        _check_percent(value, rest if len(rest) != 1 else rest[0])
    elif name == "replace" and isinstance(value, str) and len(rest) >= 2:
        old, new = str(rest[0]), str(rest[1])
        count = rest[2] if len(rest) > 2 else kwargs.get("count")
        hits = len(value) + 1 if old == "" else value.count(old)
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        _refuse_over(len(value) + hits * max(0, len(new) - len(old)), "a replaced value")
    elif name == "join" and isinstance(value, list | tuple):
        separator = str(rest[0]) if rest else str(kwargs.get("d", ""))
        _refuse_over(_text_size(value) + len(separator) * len(value), "a joined value")
    elif name == "wordwrap" and isinstance(value, str):
        wrapstring = rest[3] if len(rest) > 3 else kwargs.get("wrapstring")
        _refuse_over(len(value) * (1 + len(str(wrapstring or "\n"))), "a wrapped value")
    elif name in ("string", "list") and value is not None:
        _refuse_over(_text_size(value), f"the {name} filter's value")
    elif name == "batch":
        fill = rest[1] if len(rest) > 1 else kwargs.get("fill_with")
        size = rest[0] if rest else kwargs.get("linecount")
        if fill is not None and isinstance(size, int):
            _refuse_over(size, "a batch")


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        check_deadline()
        _check_filter(name, args, kwargs)
        return function(*args, **kwargs)
    return bounded


def bounded_concat(parts: tuple[Any, ...]) -> str:
    """``a ~ b ~ ...``, refused past the limit before it is joined."""
    check_deadline()
    _refuse_over(sum(_text_size(part) for part in parts), "a concatenation")
    return "".join(str(part) for part in parts)


def _finalize(value: Any) -> Any:
    """An output value, checked before it is turned into text."""
    check_deadline()
    _refuse_over(_text_size(value), "an output value")
    return value


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with ``~`` compiled to :func:`bounded_concat` (autoescape is
    off, so Jinja's own ``str_join`` is what it replaces)."""

    def visit_Concat(self, node: Concat, frame: Frame) -> None:  # noqa: N802 - Jinja's name
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with every step that can build a large value checked first
    (the module's docstring says which) and the render's deadline checked at every call."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.filters = {name: _bounded_filter(name, function) for name, function in self.filters.items()}
        self.bounded_concat = bounded_concat

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        check_deadline()
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` as the sandbox wraps them, checked first: a width or
        precision past the limit, written in the string or passed as an argument to a
        nested field (``'{:>{w}}'.format(1, w=10**9)``), is refused."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            check_deadline()
            _check_format(template)
            if re.search(r"\{[^{}]*:[^{}]*\{", template):  # a nested field: its numbers come in
                given = [*args, *kwargs.values()]
                if value.__name__ == "format_map" and args and isinstance(args[0], Mapping):
                    given = list(args[0].values())
                _refuse_width_args(given)
            return wrapped(*args, **kwargs)
        return checked

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_deadline()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) \
                        and len(seq) * times > MAX_RENDER_CHARS:
                    raise Overrun(f"a value of more than {MAX_RENDER_CHARS:,} items")
        elif operator == "**" and isinstance(right, int | float) and (
                abs(right) > 10_000 or isinstance(left, int)
                and abs(right) * max(1, abs(left).bit_length()) > 4_000_000):
            raise Overrun(f"a power with exponent {right} (a number of millions of digits)")
        elif operator == "+" and isinstance(left, str | list | tuple) \
                and isinstance(right, str | list | tuple):
            _refuse_over(len(left) + len(right), "a sum")
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        return super().call_binop(context, operator, left, right)
