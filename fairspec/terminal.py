"""Untrusted text made safe for a terminal.

A server's error message, a model's output or a dataset's text can hold control sequences
(ANSI CSI colours, OSC sequences that retitle the window or write the clipboard, a bell,
a carriage return that overwrites the line): printed raw, they act on the user's terminal.
:func:`printable` shows each such character as its escape (``\\x1b``) instead.
"""

from __future__ import annotations

import re

#: C0 controls but newline and tab, DEL, and the C1 controls (0x80-0x9f, e.g. the one-byte CSI)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character but newline and tab written as its escape."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)
