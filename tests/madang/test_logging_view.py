"""The command line's log handler and the live view: a log line printed while the view runs goes
through whatever ``sys.stderr`` is then (rich's live display replaces it with a proxy that prints
above the view), not through the stream that was ``sys.stderr`` at start-up, whose writes land in
the middle of the view and tear it apart."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
from rich.console import Console
from rich.live import Live
from rich.text import Text

from madang.cli import setup_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_log_line_goes_to_the_current_stderr(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_logging()
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)  # as the live view does while it runs
    logging.getLogger("controller.runtime").warning("transport command refused")
    assert "transport command refused" in later.getvalue()


def test_a_log_line_while_the_view_runs_is_printed_above_it(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    setup_logging()
    console = Console(file=terminal, force_terminal=True, width=60, color_system=None)
    with Live(Text("THE VIEW"), console=console, auto_refresh=False, redirect_stderr=True) as live:
        logging.getLogger("controller.runtime").warning("transport command refused")
        live.refresh()
    out = terminal.getvalue()
    first_frame = out.index("THE VIEW")
    line = out.index("transport command refused")
    # Printed by the live display itself: it first erases its frame (the cursor goes back over
    # the view, ESC [2K), prints the line, then draws the view again under it.
    assert line > first_frame and "\x1b[2K" in out[first_frame:line]
    assert out.rindex("THE VIEW") > line
