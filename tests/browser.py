"""Lay a page out in headless Chromium (Debian's `chromium`) and read where things landed.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands on
its fd 3, answers on its fd 4, each a JSON message ended by NUL), so no port is opened. The
page's own Content-Security-Policy stays in force; `Runtime.evaluate` reads the layout from the
outside, as DevTools does.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MEASURE = """JSON.stringify({
  height: document.documentElement.scrollHeight,
  boxes: Object.fromEntries(%s.map(s => {
    const e = document.querySelector(s);
    if (!e) return [s, null];
    const r = e.getBoundingClientRect();
    return [s, {top: r.top + scrollY, bottom: r.bottom + scrollY, height: r.height}];
  }))
})"""


@dataclass(frozen=True)
class Layout:
    """The page's full height in CSS pixels and the box of each selector asked for (None when
    nothing matched), measured at `width` x `height`."""

    width: int
    height: int
    page_height: int
    boxes: dict[str, dict[str, float] | None]


def browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is needed (scripts/setup-test-env.sh)"
    return found


class _Pipe:
    def __init__(self, to_browser: int, from_browser: int) -> None:
        self.out = os.fdopen(to_browser, "wb", buffering=0)
        self.inp = os.fdopen(from_browser, "rb", buffering=0)
        self.buffer = b""
        self.next_id = 0

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.out.write(json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self.next_id:
                assert "error" not in answer, f"{method}: {answer['error']}"
                return dict(answer.get("result", {}))

    def wait_for(self, event: str) -> None:
        while self._read().get("method") != event:
            pass

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            chunk = self.inp.read(65536)
            assert chunk, "chromium closed the DevTools pipe"
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return dict(json.loads(message))


def layout(
    page: Path, selectors: tuple[str, ...] = (), width: int = 1280, height: int = 900
) -> Layout:
    """Open `page` in a `width` x `height` window and measure it once it has loaded."""
    commands_r, commands_w = os.pipe()
    answers_r, answers_w = os.pipe()

    def wire() -> None:  # in the child: the protocol's fds 3 and 4, copied above 10 first
        # so that neither pipe end is overwritten by the other's dup2
        commands = fcntl.fcntl(commands_r, fcntl.F_DUPFD, 10)
        answers = fcntl.fcntl(answers_w, fcntl.F_DUPFD, 10)
        os.dup2(commands, 3)
        os.dup2(answers, 4)

    with tempfile.TemporaryDirectory(prefix="auditor-chromium-") as profile:
        process = subprocess.Popen(
            [
                browser(), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--hide-scrollbars",
                f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=wire,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(commands_r)
        os.close(answers_w)
        pipe = _Pipe(commands_w, answers_r)
        try:
            target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
            session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            pipe.call(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            pipe.call("Page.enable", session)
            pipe.call("Page.navigate", session, url=page.resolve().as_uri())
            pipe.wait_for("Page.loadEventFired")
            expression = _MEASURE % json.dumps(list(selectors))
            value = pipe.call("Runtime.evaluate", session, expression=expression)["result"]
            measured = json.loads(value["value"])
            pipe.call("Browser.close")
        finally:
            deadline = time.monotonic() + 20
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if process.poll() is None:
                process.kill()
                process.wait()
            pipe.out.close()
            pipe.inp.close()
    return Layout(width, height, int(measured["height"]), measured["boxes"])


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 900) -> Path:
    """A PNG of the first `width` x `height` of `page`."""
    with tempfile.TemporaryDirectory(prefix="auditor-chromium-") as profile:
        subprocess.run(
            [
                browser(), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--hide-scrollbars",
                f"--user-data-dir={profile}", f"--screenshot={png}",
                f"--window-size={width},{height}", page.resolve().as_uri(),
            ],
            capture_output=True, timeout=180, check=True,
        )  # fmt: skip
    return png
