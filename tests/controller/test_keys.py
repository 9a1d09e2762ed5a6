"""The live view's keys (controller/keys.py): bytes in, key names and commands out, no terminal.

The raw-mode adapter itself is exercised on a real pseudo-terminal at the end, and end to end by
tests/integration/test_keys_pty.py."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.keys import (
    FORCE_CONFIRM_NS,
    KEYS,
    KeyboardControl,
    KeyDecoder,
    Keymap,
    Note,
    Press,
    RawTerminal,
    StopShow,
    ToggleHelp,
    key_label,
)
from controller.playback import Arm, Go, Panic, Pause, PlayheadNext, PlayheadPrevious, Resume, State, Stop

REPO = Path(__file__).resolve().parents[2]
S = 1_000_000_000


# --- decoding -------------------------------------------------------------------------------


def test_plain_keys_and_control_bytes() -> None:
    d = KeyDecoder()
    assert d.feed(b" gG?aP\r\n\t\x7f\x03\x00") == [
        "space", "g", "G", "?", "a", "P", "enter", "enter", "tab", "backspace", "ctrl-c", "ctrl-space",
    ]
    assert not d.pending


def test_arrows_in_both_cursor_modes_and_with_modifiers() -> None:
    d = KeyDecoder()
    assert d.feed(b"\x1b[A\x1b[B\x1b[C\x1b[D") == ["up", "down", "right", "left"]
    assert d.feed(b"\x1bOA\x1bOB") == ["up", "down"]  # application cursor mode (SS3)
    assert d.feed(b"\x1b[1;5C\x1b[1;2A") == ["ctrl-right", "shift-up"]


def test_a_sequence_split_across_reads_is_held_until_complete() -> None:
    d = KeyDecoder()
    assert d.feed(b"\x1b") == [] and d.pending
    assert d.feed(b"[") == [] and d.pending
    assert d.feed(b"1;") == [] and d.pending
    assert d.feed(b"5D ") == ["ctrl-left", "space"]
    assert not d.pending
    assert d.feed(b"\x1bO") == [] and d.pending
    assert d.feed(b"B") == ["down"]


def test_a_lone_escape_counts_only_when_nothing_followed() -> None:
    d = KeyDecoder()
    assert d.feed(b"\x1b") == []
    assert d.pending
    assert d.expire() == ["escape"]
    assert not d.pending
    assert d.expire() == []  # nothing held: nothing to expire


def test_a_second_escape_makes_the_first_count_at_once() -> None:
    d = KeyDecoder()
    assert d.feed(b"\x1b\x1b") == ["escape"]
    assert d.pending  # the second may still start a sequence
    assert d.expire() == ["escape"]


def test_function_keys_and_unknown_sequences_are_consumed_whole() -> None:
    d = KeyDecoder()
    # F5, Delete, an unknown CSI with intermediates, F1: none of their bytes may become a key.
    assert d.feed(b"\x1b[15~\x1b[3~\x1b[1 q\x1bOP") == ["f5", "delete", "unknown", "f1"]
    assert d.feed(b"\x1bs") == ["alt-s"]  # Alt+S is not S (stop)
    assert d.feed(b"\x1b[\x01") == ["unknown", "ctrl-a"]  # a malformed CSI: the rest decodes afresh


def test_pasted_text_is_one_paste_key_not_a_command_per_character() -> None:
    d = KeyDecoder()
    assert d.feed(b"\x1b[200~ss") == []
    assert not d.pending  # a paste in progress is not an Esc waiting to expire
    assert d.feed(b"aa\x1b[20") == []
    assert d.feed(b"1~ ") == ["paste", "space"]


def test_utf8_characters_across_reads() -> None:
    d = KeyDecoder()
    hangul = "ㅁ".encode()
    assert d.feed(hangul[:1]) == []
    assert d.feed(hangul[1:]) == ["ㅁ"]
    assert d.feed(b"\xff") == ["unknown"]


def test_garbage_that_never_completes_is_dropped_not_hoarded() -> None:
    d = KeyDecoder()
    assert d.feed(b"\x1b[" + b"1" * 100) == ["unknown"]
    assert not d.pending
    assert d.feed(b" ") == ["space"]


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=8))
def test_any_split_of_the_bytes_decodes_the_same(data: bytes, step: int) -> None:
    """However the terminal's bytes are cut into reads, the same keys come out (an unfinished
    sequence at the end of a read is held, never guessed at)."""
    whole = KeyDecoder()
    expected = whole.feed(data) + whole.expire()
    split = KeyDecoder()
    got: list[str] = []
    for i in range(0, len(data), step):
        got += split.feed(data[i : i + step])
    got += split.expire()
    assert got == expected


# --- the keymap -----------------------------------------------------------------------------


def _press(key: str, state: State = State.ARMED, now: int = 0, keymap: Keymap | None = None) -> object:
    return (keymap or Keymap()).press(key, state, now)


@pytest.mark.parametrize(
    ("key", "state", "command"),
    [
        ("space", State.ARMED, Go(cue=None)),
        ("escape", State.PLAYING, Panic()),
        ("p", State.PLAYING, Pause()),
        ("P", State.PAUSED, Resume()),
        ("p", State.ARMED, Pause()),  # refused by the engine, with the state's reason, and logged
        ("s", State.PLAYING, Stop()),
        ("S", State.PAUSED, Stop()),
        ("a", State.PANICKED, Arm()),
        ("A", State.STOPPED, Arm()),
        ("up", State.ARMED, PlayheadPrevious()),
        ("left", State.ARMED, PlayheadPrevious()),
        ("down", State.PLAYING, PlayheadNext()),
        ("right", State.PLAYING, PlayheadNext()),
    ],
)
def test_keys_press_the_transport_commands(key: str, state: State, command: object) -> None:
    intent = _press(key, state)
    assert isinstance(intent, Press)
    assert intent.command == command


def test_help_and_exit() -> None:
    assert _press("?") == ToggleHelp()
    assert _press("ctrl-c", State.PLAYING) == StopShow()


def test_a_forced_go_takes_g_twice_within_the_window() -> None:
    km = Keymap()
    first = km.press("G", State.ARMED, 0)
    assert isinstance(first, Note) and "press G again" in first.text
    second = km.press("G", State.ARMED, FORCE_CONFIRM_NS)
    assert isinstance(second, Press) and second.command == Go(cue=None, force=True)
    # A third G starts over: it does not force again.
    assert isinstance(km.press("G", State.PLAYING, FORCE_CONFIRM_NS + 1), Note)


def test_a_late_second_g_or_another_key_in_between_does_not_force() -> None:
    km = Keymap()
    km.press("G", State.ARMED, 0)
    late = km.press("G", State.ARMED, FORCE_CONFIRM_NS + 1)
    assert isinstance(late, Note)  # it is a new first G
    km = Keymap()
    km.press("G", State.ARMED, 0)
    km.press("down", State.ARMED, 1)
    assert isinstance(km.press("G", State.ARMED, 2), Note)


@pytest.mark.parametrize("key", ["g", "enter", "x", "f5", "alt-s", "paste", "ㅁ", "shift-up"])
def test_unbound_keys_do_nothing_and_say_what_to_press(key: str) -> None:
    intent = _press(key)
    assert isinstance(intent, Note)
    assert intent.text


def test_space_is_go_and_g_explains_itself() -> None:
    g = _press("g")
    assert isinstance(g, Note) and "Space is GO" in g.text
    enter = _press("enter")
    assert isinstance(enter, Note) and "Space is GO" in enter.text


def test_bytes_to_intents_with_the_escape_timeout() -> None:
    kc = KeyboardControl()
    assert kc.feed(b" ", State.ARMED, 0) == [Press("Space", Go(cue=None))]
    assert kc.feed(b"\x1b", State.PLAYING, 1) == []
    assert kc.pending
    assert kc.expire(State.PLAYING, 2) == [Press("Esc", Panic())]
    assert kc.feed(b"\x1b[A", State.ARMED, 3) == [Press("Up", PlayheadPrevious())]


def test_key_labels() -> None:
    assert [key_label(k) for k in ("space", "escape", "up", "ctrl-c", "a", "G", "page-up")] == [
        "Space", "Esc", "Up", "Ctrl-C", "a", "G", "Page-Up",
    ]


# --- the documented keys are the bound keys ------------------------------------------------

_SAMPLE = {
    "Space": ["space"],
    "G G": ["G", "G"],
    "Esc": ["escape"],
    "P": ["p", "P"],
    "S": ["s", "S"],
    "A": ["a", "A"],
    "Up / Left": ["up", "left"],
    "Down / Right": ["down", "right"],
    "?": ["?"],
    "Ctrl-C": ["ctrl-c"],
}


def test_every_listed_key_does_something() -> None:
    assert [k for k, _ in KEYS] == list(_SAMPLE)
    for label, keys in _SAMPLE.items():
        km = Keymap()
        intents = [km.press(k, State.PLAYING, i) for i, k in enumerate(keys)]
        assert not isinstance(intents[-1], Note), label


def test_operator_guide_lists_every_key() -> None:
    doc = (REPO / "docs" / "operator.md").read_text(encoding="utf-8")
    section = doc.split("## Keys", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)`", section, flags=re.M)
    assert rows == [k for k, _ in KEYS]


# --- the raw-mode adapter on a real pseudo-terminal ------------------------------------------


def test_raw_terminal_turns_echo_and_signals_off_and_restores_them() -> None:
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        with RawTerminal(slave, out_fd=slave):
            raw = termios.tcgetattr(slave)
            lflag = int(raw[3])
            assert not lflag & termios.ECHO and not lflag & termios.ICANON and not lflag & termios.ISIG
            assert not int(raw[0]) & termios.IXON  # Ctrl-S cannot freeze the view
            assert int(raw[1]) & termios.OPOST  # the view's newlines still return the carriage
            os.write(master, b"\x03")  # Ctrl-C arrives as a byte, not as SIGINT
            assert os.read(slave, 16) == b"\x03"
        assert termios.tcgetattr(slave) == before
        assert b"\x1b[?2004h" in os.read(master, 1024)  # bracketed paste on, then off
    finally:
        os.close(master)
        os.close(slave)


def test_raw_terminal_is_restored_when_the_block_raises() -> None:
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        with pytest.raises(RuntimeError), RawTerminal(slave):
            raise RuntimeError("the show crashed")
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


_JOB_CONTROL = """
import os, sys
from controller.keys import in_background
fg = in_background(0)
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)  # a job of its own, as `madang run ... &` is: not the terminal's foreground
    os._exit(10 + in_background(0))
_, status = os.waitpid(pid, 0)
print(fg, os.waitstatus_to_exitcode(status) - 10 == 1, flush=True)
"""


def test_a_show_run_in_the_background_leaves_the_keys_to_the_shell() -> None:
    """Changing a terminal's modes from a background job stops it (SIGTTOU): keys stay off then."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _JOB_CONTROL],
            stdin=slave,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the pty becomes its terminal
            check=False,
        )
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]  # foreground: keys; background: none
