"""The progress bar is drawn on stderr only when stderr is a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys


def test_progress_bar_on_a_terminal_and_not_in_a_pipe(tmp_path):
    report = f"json:{tmp_path / 'r.json'}"
    command = [sys.executable, "-m", "auditor", "run", "--target", "local://", "--report", report]
    leader, follower = pty.openpty()
    with subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    ) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        assert process.wait(timeout=120) in (0, 1)
    os.close(leader)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    assert "auditing" in terminal and "1/1" in terminal

    piped = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert piped.returncode in (0, 1)
    assert "auditing" not in piped.stderr
