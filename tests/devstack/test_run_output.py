"""`make run`'s output pump: a child that prints bytes that are not UTF-8 (a binary request line,
a stray byte in a log) keeps being read — before, the reader thread died on the decode error,
the child's pipe filled up and the child blocked on its next log line, so the web process
stopped answering."""

from __future__ import annotations

import io
import os
import sys
import threading

import pytest

from aisaas.devstack import run


def test_the_pump_keeps_reading_past_bytes_that_are_not_utf8(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    script = (
        "import sys\n"
        "sys.stdout.buffer.write(b'before\\n\\xff\\xfe broken\\n')\n"
        "sys.stdout.buffer.write(b'x' * 200000 + b'\\nafter\\n')\n"  # more than a pipe holds
    )
    child = run._start([sys.executable, "-c", script], env=dict(os.environ))
    pump = threading.Thread(target=run._pump, args=("web", child), daemon=True)
    pump.start()

    assert child.wait(timeout=20) == 0  # it never blocked on a full pipe
    pump.join(timeout=20)

    lines = out.getvalue().splitlines()
    assert lines[0] == "web     | before"
    assert "\ufffd" in lines[1]
    assert lines[-1] == "web     | after"
