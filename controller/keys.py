"""Keyboard control of the live view: the keys an operator presses, turned into transport commands.

Theory of operation
-------------------
Three parts, the first two pure (bytes and ``now`` in, decisions out; tested without a terminal):

* :class:`KeyDecoder` turns the bytes a terminal sends into key names, incrementally: a read may
  end in the middle of an escape sequence (``ESC [ A`` is the up arrow), so an incomplete sequence
  is held until the next read completes it. A lone ``ESC`` is the Esc key only once nothing has
  followed it for :data:`ESC_TIMEOUT_NS`: the driver calls :meth:`KeyDecoder.expire` when that
  time has passed (the way curses' ``ESCDELAY`` and vim's ``ttimeoutlen`` work). Unknown
  sequences (function keys, Alt+letter) are consumed whole and named, so their bytes can never
  be taken for other keys. Text pasted while bracketed paste is on (``ESC [ 200 ~`` ...
  ``ESC [ 201 ~``) becomes one ``paste`` key: a pasted ``ssss`` must not press Stop four times.
* :class:`Keymap` maps one key, with the transport state and ``now``, to an :data:`Intent`: a
  :class:`Press` (a command for the runtime, which sends it down the same path as the OSC
  control port, so refusals are the same and logged the same), :class:`ToggleHelp`,
  :class:`StopShow` (Ctrl-C) or a :class:`Note` (nothing happens; the operator is told why).
  :class:`KeyboardControl` is the two together: ``feed(bytes, state, now)`` -> intents.
* :class:`RawTerminal` is the thin adapter: it puts the terminal in a raw mode (no echo, no line
  buffering, no signals from keys, no XON/XOFF flow control) and restores it on every exit path.

Every key is listed in :data:`KEYS` (the view's help panel and docs/operator.md show that list).

**Why rich and a small termios reader, not Textual.** The live view is already a pure
``render(ViewModel)`` in rich, tested without a terminal. Textual would bring its own application
loop, driver thread, signal handling and screen ownership into the process whose event loop
carries the show's sends; the runtime must stay the one owner of the loop and of SIGINT/SIGTERM.
What keys need from a terminal is small (termios attributes, ``loop.add_reader`` on stdin, a
decoder of a dozen escape sequences) and needs no new dependency on the show machine.

**Why a forced GO is ``G`` pressed twice, not Shift+Space.** A terminal sends the same byte
(0x20) for Space and Shift+Space, so no terminal program can tell them apart. ``G`` (Shift+g) is a
distinct byte everywhere. Because Caps Lock turns a stray ``g`` into ``G``, and a forced GO
overrides a guard that protects the devices (the sync gate), it takes a second ``G`` within
:data:`FORCE_CONFIRM_NS` to confirm, the way a lighting desk confirms a destructive action. A
plain ``g`` does nothing but say so (Space is GO).

**Ctrl-C.** With terminal signals off, Ctrl-C arrives as a byte, not as SIGINT to the whole
foreground process group (which would also hit a simulated venue's child processes); the runtime
stops the show exactly as its SIGINT handler does, and gives the terminal back at once, so a
second Ctrl-C is an ordinary SIGINT.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import termios
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from controller.playback import (
    Arm,
    Command,
    Go,
    Panic,
    Pause,
    PlayheadNext,
    PlayheadPrevious,
    Resume,
    State,
    Stop,
)

__all__ = [
    "ESC_TIMEOUT_NS",
    "FORCE_CONFIRM_NS",
    "KEYS",
    "Intent",
    "KeyDecoder",
    "KeyboardControl",
    "Keymap",
    "Note",
    "Press",
    "RawTerminal",
    "StopShow",
    "ToggleHelp",
    "describe",
    "in_background",
    "is_terminal",
    "key_label",
]

ESC_TIMEOUT_NS = 100_000_000
"""A lone Esc counts once nothing has followed it for this long (0.1 s): arrow keys also begin
with the Esc byte. A second Esc makes the first one count at once."""

FORCE_CONFIRM_NS = 2_000_000_000
"""A forced GO needs its second ``G`` within this long (2 s) of the first."""

MAX_PENDING = 64
"""Bytes held for one unfinished sequence; past this it is dropped as garbage."""

KEYS: tuple[tuple[str, str], ...] = (
    ("Space", "GO: start the standby cue"),
    ("G G", "forced GO: GO past the sync gate (G twice within 2 s)"),
    ("Esc", "panic: every device to its safe state now"),
    ("P", "pause / resume"),
    ("S", "stop: every device to its safe state"),
    ("A", "arm (after stop, panic or the end of the show)"),
    ("Up / Left", "playhead to the previous cue"),
    ("Down / Right", "playhead to the next cue"),
    ("?", "show or hide this help"),
    ("Ctrl-C", "end the show and exit (as SIGINT)"),
)
"""Every key of the live view and what it does, in the order the help panel lists them."""


# --- intents --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Press:
    """A key pressed a transport command; ``label`` says which key, for the operator log."""

    label: str
    command: Command


@dataclass(frozen=True, slots=True)
class ToggleHelp:
    """Show or hide the key help in the view."""

    label: str = "?"


@dataclass(frozen=True, slots=True)
class StopShow:
    """End the show and exit, as SIGINT does (Ctrl-C)."""

    label: str = "Ctrl-C"


@dataclass(frozen=True, slots=True)
class Note:
    """Nothing happens; ``text`` tells the operator why (an unbound key, a GO waiting to be confirmed)."""

    label: str
    text: str


Intent: TypeAlias = Press | ToggleHelp | StopShow | Note


# --- decoding -------------------------------------------------------------------------------

ESC = 0x1B
_CSI_FINAL = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end", "Z": "shift-tab"}
_SS3_FINAL = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end",
              "P": "f1", "Q": "f2", "R": "f3", "S": "f4"}
_TILDE = {"1": "home", "2": "insert", "3": "delete", "4": "end", "5": "page-up", "6": "page-down",
          "7": "home", "8": "end", "15": "f5", "17": "f6", "18": "f7", "19": "f8", "20": "f9",
          "21": "f10", "23": "f11", "24": "f12"}
_MODS = {"2": "shift", "3": "alt", "4": "alt-shift", "5": "ctrl", "6": "ctrl-shift", "7": "ctrl-alt",
         "8": "ctrl-alt-shift"}
PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"


class KeyDecoder:
    """Terminal bytes to key names, incrementally (see the module docstring).

    Names: a printable character is itself (``"a"``, ``"A"``, ``"?"``, ``"ㅁ"``); otherwise
    ``space``, ``enter``, ``tab``, ``backspace``, ``escape``, ``up``, ``down``, ``left``,
    ``right``, ``home``, ``end``, ``page-up``, ``f1``..., ``ctrl-c`` (``ctrl-`` + letter for the
    control bytes), ``ctrl-space``, ``alt-x``, ``shift-up`` (modifiers first), ``paste`` (a
    bracketed paste, its text dropped), ``unknown`` (bytes that name no key).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pasting = False

    @property
    def pending(self) -> bool:
        """Whether bytes are held: a lone Esc, or the start of a sequence, awaiting what follows."""
        return bool(self._buf) and not self._pasting

    def feed(self, data: bytes) -> list[str]:
        """The keys completed by ``data`` (what is left incomplete is held for the next call)."""
        self._buf += data
        keys: list[str] = []
        while self._buf:
            if self._pasting:
                end = self._buf.find(PASTE_END)
                if end < 0:
                    # Keep only what could be the start of the end marker.
                    del self._buf[: max(0, len(self._buf) - len(PASTE_END) + 1)]
                    break
                del self._buf[: end + len(PASTE_END)]
                self._pasting = False
                keys.append("paste")
                continue
            took = self._one(keys)
            if took == 0:
                if len(self._buf) > MAX_PENDING:
                    self._buf.clear()
                    keys.append("unknown")
                break
            del self._buf[:took]
        return keys

    def expire(self) -> list[str]:
        """Nothing more arrived: what is held is complete as it is (a lone Esc is the Esc key)."""
        if not self.pending:
            return []
        buf = bytes(self._buf)
        self._buf.clear()
        if buf == b"\x1b":
            return ["escape"]
        if buf == b"\x1b\x1b":
            return ["escape", "escape"]
        return ["unknown"]

    def _one(self, keys: list[str]) -> int:
        """Decode one key at the start of the buffer; the bytes it took, or 0 if incomplete."""
        b = self._buf
        c = b[0]
        if c == ESC:
            return self._escape(keys)
        if c >= 0x80:
            return self._utf8(keys)
        keys.append(_plain(c))
        return 1

    def _escape(self, keys: list[str]) -> int:
        b = self._buf
        if len(b) == 1:
            return 0
        nxt = b[1]
        if nxt == ESC:
            keys.append("escape")  # a second Esc: the first was a lone one
            return 1
        if nxt == ord("["):
            return self._csi(keys)
        if nxt == ord("O"):
            if len(b) < 3:
                return 0
            keys.append(_SS3_FINAL.get(chr(b[2]), "unknown"))
            return 3
        if nxt >= 0x80:
            keys.append("escape")  # Esc, then a character of its own
            return 1
        keys.append("alt-" + _plain(nxt))
        return 2

    def _csi(self, keys: list[str]) -> int:
        """``ESC [`` parameters (0x30-0x3F), intermediates (0x20-0x2F), a final byte (0x40-0x7E)."""
        b = self._buf
        i = 2
        while i < len(b) and 0x30 <= b[i] <= 0x3F:
            i += 1
        while i < len(b) and 0x20 <= b[i] <= 0x2F:
            i += 1
        if i >= len(b):
            return 0
        final = b[i]
        if not 0x40 <= final <= 0x7E:
            keys.append("unknown")  # malformed: drop the introducer, decode the rest afresh
            return 2
        params = b[2:i].decode("ascii", "replace").split(";")
        f = chr(final)
        if f == "~" and params[0] == "200":
            self._pasting = True
            return i + 1
        name = _TILDE.get(params[0], "unknown") if f == "~" else _CSI_FINAL.get(f, "unknown")
        if name != "unknown" and len(params) > 1 and params[1] in _MODS:
            name = f"{_MODS[params[1]]}-{name}"
        keys.append(name)
        return i + 1

    def _utf8(self, keys: list[str]) -> int:
        b = self._buf
        c = b[0]
        n = 2 if c >> 5 == 0b110 else 3 if c >> 4 == 0b1110 else 4 if c >> 3 == 0b11110 else 0
        if n == 0:
            keys.append("unknown")
            return 1
        if len(b) < n:
            return 0
        try:
            keys.append(bytes(b[:n]).decode("utf-8"))
        except UnicodeDecodeError:
            keys.append("unknown")
            return 1
        return n


def _plain(c: int) -> str:
    """The name of one byte below 0x80 that is not Esc."""
    if c == 0x20:
        return "space"
    if c in (0x0D, 0x0A):
        return "enter"
    if c == 0x09:
        return "tab"
    if c in (0x7F, 0x08):
        return "backspace"
    if c == 0x00:
        return "ctrl-space"
    if c < 0x20:
        return "ctrl-" + chr(c + 0x60)
    return chr(c)


def key_label(key: str) -> str:
    """How the operator log names a key: ``Space``, ``Esc``, ``Up``, ``P``, ``Ctrl-C``."""
    special = {"space": "Space", "escape": "Esc", "enter": "Enter", "tab": "Tab", "backspace": "Backspace"}
    if key in special:
        return special[key]
    if len(key) == 1:
        return key
    return "-".join(p.capitalize() if len(p) > 1 else p.upper() for p in key.split("-"))


# --- the keymap -----------------------------------------------------------------------------


class Keymap:
    """One key (with the transport state and ``now``) to one :data:`Intent` (module docstring)."""

    def __init__(self, *, force_confirm_ns: int = FORCE_CONFIRM_NS) -> None:
        self.force_confirm_ns = force_confirm_ns
        self._force_at: int | None = None  # when the first G of a forced GO was pressed

    def press(self, key: str, state: State, now: int) -> Intent:
        """What ``key`` does in ``state`` at ``now``."""
        label = key_label(key)
        if key != "G":
            self._force_at = None  # any other key cancels a half-pressed forced GO
        if key == "space":
            return Press(label, Go(cue=None))
        if key == "G":
            if self._force_at is not None and now - self._force_at <= self.force_confirm_ns:
                self._force_at = None
                return Press("G G", Go(cue=None, force=True))
            self._force_at = now
            within = f"{self.force_confirm_ns / 1e9:g} s"
            return Note(label, f"press G again within {within} to GO past the sync gate")
        if key == "escape":
            return Press(label, Panic())
        if key in ("p", "P"):
            return Press(label, Resume() if state is State.PAUSED else Pause())
        if key in ("s", "S"):
            return Press(label, Stop())
        if key in ("a", "A"):
            return Press(label, Arm())
        if key in ("up", "left"):
            return Press(label, PlayheadPrevious())
        if key in ("down", "right"):
            return Press(label, PlayheadNext())
        if key == "?":
            return ToggleHelp()
        if key == "ctrl-c":
            return StopShow()
        return Note(label, _unbound(key))


def _unbound(key: str) -> str:
    if key == "g":
        return "g does nothing: Space is GO (G twice forces a GO); ? lists the keys"
    if key == "enter":
        return "Enter does nothing: Space is GO; ? lists the keys"
    if key == "paste":
        return "pasted text ignored"
    if len(key) == 1 and not key.isascii():
        return f"{key} does nothing (is a non-Latin input method on?); ? lists the keys"
    return f"{key_label(key)} does nothing; ? lists the keys"


class KeyboardControl:
    """A :class:`KeyDecoder` and a :class:`Keymap`: terminal bytes to intents (pure)."""

    def __init__(self, keymap: Keymap | None = None) -> None:
        self.decoder = KeyDecoder()
        self.keymap = keymap or Keymap()

    @property
    def pending(self) -> bool:
        """Whether :meth:`expire` should be called once :data:`ESC_TIMEOUT_NS` has passed."""
        return self.decoder.pending

    def feed(self, data: bytes, state: State, now: int) -> list[Intent]:
        """The intents of the keys that ``data`` completes."""
        return [self.keymap.press(k, state, now) for k in self.decoder.feed(data)]

    def expire(self, state: State, now: int) -> list[Intent]:
        """Nothing followed a held Esc for :data:`ESC_TIMEOUT_NS`: it is the Esc key."""
        return [self.keymap.press(k, state, now) for k in self.decoder.expire()]


# --- the terminal adapter -------------------------------------------------------------------


class RawTerminal:
    """A terminal in raw input mode for the duration of a ``with`` block.

    Off: echo, line buffering (``ICANON``), signals from keys (``ISIG``: Ctrl-C arrives as a
    byte), ``IEXTEN``, XON/XOFF flow control (Ctrl-S would freeze the view's output and with it the
    event loop), CR-to-NL translation. Output processing stays on, so the view's newlines still
    return the carriage. Bracketed paste is turned on (on ``out``, when given) so pasted text
    arrives marked. Everything is restored on exit, including on an exception, and by an
    ``atexit`` hook should the process end without unwinding; typed-ahead input is discarded then,
    so no key meant for the show reaches the shell.
    """

    def __init__(self, fd: int, *, out_fd: int | None = None) -> None:
        self.fd = fd
        self._out = out_fd
        self._saved: list[int | list[bytes | int]] | None = None

    def __enter__(self) -> RawTerminal:
        self._saved = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        iflag, lflag, cc = 0, 3, 6
        mode[iflag] = int(mode[iflag]) & ~(termios.IXON | termios.ICRNL | termios.INLCR | termios.ISTRIP)
        mode[lflag] = int(mode[lflag]) & ~(termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
        chars = mode[cc]
        assert isinstance(chars, list)
        chars[termios.VMIN] = 1
        chars[termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        atexit.register(self.restore)
        self._write("\x1b[?2004h")
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        """Give the terminal back as it was (idempotent)."""
        saved, self._saved = self._saved, None
        if saved is None:
            return
        atexit.unregister(self.restore)
        self._write("\x1b[?2004l")
        # The terminal may be gone (a closed SSH session): then there is nothing to restore.
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
            termios.tcflush(self.fd, termios.TCIFLUSH)

    def _write(self, seq: str) -> None:
        if self._out is None:
            return
        with contextlib.suppress(OSError):  # a closed or gone terminal: nothing to switch
            os.write(self._out, seq.encode("ascii"))


def describe(keys: Sequence[tuple[str, str]] = KEYS) -> list[str]:
    """The key help as lines (``Space  GO: start the standby cue``)."""
    width = max(len(k) for k, _ in keys)
    return [f"{k.ljust(width)}  {what}" for k, what in keys]


def is_terminal(fd: int) -> bool:
    """Whether ``fd`` is a terminal that keys can be read from."""
    try:
        return os.isatty(fd)
    except OSError:
        return False


def in_background(fd: int) -> bool:
    """Whether this process runs in the background of the terminal ``fd`` (``madang run ... &``):
    changing its modes would then stop the process with SIGTTOU, and the keys belong to the shell."""
    try:
        return os.tcgetpgrp(fd) != os.getpgrp()
    except OSError:  # not our controlling terminal: no job control applies to it
        return False
