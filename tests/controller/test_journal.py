"""The journal file: records round-trip, a torn or corrupt tail is dropped (never misread), and
appending after a torn tail never leaves garbage in the middle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.journal import MAGIC, Journal, JournalError, decode_records, encode_record, read_journal

RECORDS = [
    {"k": "cmd", "cmd": "go", "now": 1_763_694_000_000_000_000},
    {"k": "sent", "key": ["show", "bloom", 42], "due": 12_500_000_000, "to": ["xr-1", "xr-2"]},
    {"k": "cmd", "cmd": "seek", "now": 5, "show_ns": 60_000_000_000},
]


def _journal(tmp_path: Path) -> Path:
    path = tmp_path / "show" / "journal"
    j = Journal(path)
    for r in RECORDS:
        j.append(r, sync=True)
    j.close()
    return path


def test_records_round_trip(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    got = read_journal(path)
    assert got.records == RECORDS and got.dropped == 0 and got.reason == ""
    assert got.end == path.stat().st_size


def test_a_journal_torn_at_every_byte_of_its_last_record_keeps_the_ones_before(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    data = path.read_bytes()
    last = len(encode_record(RECORDS[-1]))
    whole = len(data) - last
    for cut in range(whole, len(data)):
        got = decode_records(data[:cut])
        assert got.records == RECORDS[:-1], cut
        assert got.end == whole and got.dropped == cut - whole
        assert (got.reason != "") == (cut > whole)


def test_a_flipped_bit_ends_the_journal_there(tmp_path: Path) -> None:
    data = bytearray(_journal(tmp_path).read_bytes())
    second = len(MAGIC) + len(encode_record(RECORDS[0]))
    data[second + 12] ^= 0x04  # inside the second record's payload
    got = decode_records(bytes(data))
    assert got.records == RECORDS[:1] and "checksum" in got.reason
    assert got.dropped == len(data) - second  # the third record is not trusted either


def test_appending_after_a_torn_tail_cuts_it_off_first(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    with open(path, "ab") as fh:
        fh.write(encode_record({"k": "cmd", "cmd": "panic"})[:7])  # power lost mid-write
    j = Journal(path)
    assert j.contents.records == RECORDS and j.contents.dropped == 7
    j.append({"k": "cmd", "cmd": "arm"}, sync=True)
    j.close()
    assert read_journal(path).records == [*RECORDS, {"k": "cmd", "cmd": "arm"}]


def test_a_torn_header_is_an_empty_journal_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    path.write_bytes(MAGIC[:3])
    j = Journal(path)
    assert j.contents.records == []
    j.append({"k": "x"})
    j.close()
    assert read_journal(path).records == [{"k": "x"}]
    other = tmp_path / "notes.txt"
    other.write_text("hello, this is not a journal\n")
    with pytest.raises(JournalError, match="not a Madang journal"):
        Journal(other)
    assert read_journal(tmp_path / "absent").records == []


def test_compaction_replaces_the_journal_whole(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    j = Journal(path)
    j.compact([{"k": "checkpoint", "show_ns": 7}])
    j.append({"k": "cmd", "cmd": "pause"}, sync=True)
    j.close()
    assert read_journal(path).records == [{"k": "checkpoint", "show_ns": 7}, {"k": "cmd", "cmd": "pause"}]
    assert not any(p.name.endswith(".compact") for p in path.parent.iterdir())


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_garbage_after_the_header_never_raises(tail: bytes) -> None:
    got = decode_records(MAGIC + tail)
    assert got.end + got.dropped == len(MAGIC) + len(tail)


def test_a_record_over_the_limit_is_refused_before_it_is_written(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal")
    with pytest.raises(ValueError, match="over the"):
        j.append({"k": "x", "blob": "a" * (1 << 20)})
    j.close()
    assert os.path.getsize(tmp_path / "journal") == len(MAGIC)
