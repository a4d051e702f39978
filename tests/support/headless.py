"""One headless Chromium for many pages: the DevTools protocol over a pipe, standard library only.

``chromium --dump-dom`` starts a browser per page (about a second each); the report's page
tests open about thirty pages, so they share one :class:`Browser` instead. Each page is opened
in its own browser context (no storage shared with the page before, as with a fresh profile),
loaded, given the same virtual time budget ``--virtual-time-budget`` gives (timers run, then
the page is read), and its DOM read as ``--dump-dom`` prints it: the document element's
outer HTML.

The browser reads protocol commands on its file descriptor 3 and writes replies and events
on 4 (``--remote-debugging-pipe``), each a JSON text ended by a NUL byte.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any


class BrowserError(RuntimeError):
    """The browser answered a command with an error, went away, or took too long."""


class Browser:
    """A headless Chromium started once; :meth:`dump_dom` reads one page at a time."""

    def __init__(self, binary: str, profile: Path) -> None:
        self._log = profile / "chromium.log"
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # above 4, so that the redirections below never close one end while placing the other
        commands_read, replies_write = (self._above_4(commands_read), self._above_4(replies_write))
        # the shell puts the pipe ends at the descriptors 3 and 4 the browser expects
        script = f'exec "$0" "$@" 3<&{commands_read} 4>&{replies_write} {commands_read}<&- {replies_write}>&-'
        with self._log.open("wb") as log:  # a file, not a pipe: a pipe left unread fills up
            self.process = subprocess.Popen(
                ["bash", "-c", script, binary, "--headless", "--no-sandbox", "--disable-gpu",
                 "--no-first-run", f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
                pass_fds=(commands_read, replies_write), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log)
        os.close(commands_read)
        os.close(replies_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    @staticmethod
    def _above_4(fd: int) -> int:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return moved

    # ---- the protocol --------------------------------------------------------------------

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("the browser did not answer in time")
            ready, _, _ = select.select([self._replies], [], [], left)
            if ready:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise BrowserError(f"the browser went away: {self._stderr_tail()}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        """Send a command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_for(self, method: str, session: str, deadline: float) -> dict[str, Any]:
        """The next event ``method`` of ``session`` (one that came already included)."""
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    return self._events.pop(i)
            self._events.append(self._read(deadline))

    # ---- pages ---------------------------------------------------------------------------

    def dump_dom(self, url: str, *, budget_ms: int = 5000, timeout: float = 30) -> str:
        """The page at ``url`` after it loaded and ran ``budget_ms`` of virtual time: its
        document element's outer HTML (what ``chromium --dump-dom`` prints)."""
        deadline = time.monotonic() + timeout
        context = self.send("Target.createBrowserContext")["browserContextId"]
        try:
            target = self.send("Target.createTarget", {"url": "about:blank", "browserContextId": context})
            session = self.send("Target.attachToTarget", {"targetId": target["targetId"],
                                                          "flatten": True})["sessionId"]
            self.send("Page.enable", session=session)
            self.send("Page.navigate", {"url": url}, session=session)
            self.wait_for("Page.loadEventFired", session, deadline)
            self.send("Emulation.setVirtualTimePolicy",
                      {"policy": "pauseIfNetworkFetchesPending", "budget": budget_ms}, session=session)
            self.wait_for("Emulation.virtualTimeBudgetExpired", session, deadline)
            result = self.send("Runtime.evaluate", {"expression": "document.documentElement.outerHTML",
                                                    "returnByValue": True}, session=session)
            if "exceptionDetails" in result:
                raise BrowserError(f"reading the DOM failed: {result['exceptionDetails']}")
            return result["result"]["value"]
        finally:
            self.send("Target.disposeBrowserContext", {"browserContextId": context})
            self._events.clear()

    def alive(self) -> bool:
        return self.process.poll() is None

    def _stderr_tail(self) -> str:
        return self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
