"""A run's journal on disk (controller.journal.ShowJournal) and resuming from it: bounded by
checkpoints, locked against a second writer, the last run archived, and a journal torn at every
byte of its last record still resumes without a new key (issue 11). Real files, literal times."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.core import ControllerCore
from controller.journal import JOURNAL_FILE, JournalError, ShowJournal, encode_record, last_run
from controller.playback import Arm, Go, Stop
from controller.playback import Load as LoadCmd
from controller.records import LEFT
from tests.controller.test_engine import MS
from tests.controller.test_follow import T0, S, _core, _keys

STEP = 10 * MS


def _journalled_run(folder: Path, until: int, **kw: int) -> tuple[ControllerCore, list[object], ShowJournal]:
    """A live core playing the test show from T0 + 1 s, its records written as the runtime does."""
    core = _core()
    journal = ShowJournal(folder, fresh=True, **kw)
    journal.write([core.start_record(T0)], T0)
    core.command(LoadCmd(), T0)
    core.command(Arm(), T0)
    core.command(Go(), T0 + S)
    items: list[object] = []
    now = T0 + S
    while now < until:
        got = core.poll(now)
        records = core.take_records()
        journal.write(records, now)
        items.extend(got)
        if any(r["k"] == "sent" for r in records):
            journal.write([{**LEFT, "at": now}], now)  # as the runtime does once they left
        now += STEP
    return core, items, journal


def _resume(folder: Path, at: int) -> tuple[ControllerCore, list[object]]:
    run = last_run(folder / JOURNAL_FILE)
    follower = _core(live=False)
    for r in run.records:
        follower.follow(r)
    follower.take_over(at, follower.term + 1)
    items: list[object] = []
    now = at
    while now < T0 + 20 * S:
        items.extend(follower.poll(now))
        now += STEP
    return follower, items


def test_a_journal_stays_small_at_checkpoints_and_still_resumes(tmp_path: Path) -> None:
    _, _, journal = _journalled_run(
        tmp_path, T0 + 9 * S, checkpoint_every_ns=S, settle_ns=2 * S, compact_over=512
    )
    assert journal.checkpoints >= 3
    size = journal.size
    journal.close()  # as if killed: no end record
    records = last_run(tmp_path / JOURNAL_FILE).records
    kinds = [r["k"] for r in records]
    assert kinds.count("checkpoint") == 1 and "start" in kinds and kinds.count("cmd") == 3
    settled = next(r["settled_before"] for r in records if r["k"] == "checkpoint")
    dues = [s[3] for r in records if r["k"] == "sent" for s in r["sends"]]
    assert dues and min(dues) >= settled  # the sends of long ago are gone
    uncompacted = tmp_path / "plain"
    _, _, plain = _journalled_run(uncompacted, T0 + 9 * S, compact_over=1 << 40)
    assert size < plain.size
    plain.close()
    follower, after = _resume(tmp_path, T0 + 9 * S + 50 * MS)
    assert follower.last_takeover is not None and follower.last_takeover.missed == []
    assert not _keys(after) - _reference_keys()  # nothing under a new key


def _reference_keys() -> set[tuple[str, str, int]]:
    core = _core()
    core.command(LoadCmd(), T0)
    core.command(Arm(), T0)
    core.command(Go(), T0 + S)
    items: list[object] = []
    now = T0 + S
    while now < T0 + 20 * S:
        items.extend(core.poll(now))
        now += STEP
    return _keys(items)


def test_a_journal_torn_at_every_byte_of_its_last_records_still_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "live"
    _, before, journal = _journalled_run(folder, T0 + 6 * S + 600 * MS)
    journal.close()  # no end record: cut short
    data = (folder / JOURNAL_FILE).read_bytes()
    records = last_run(folder / JOURNAL_FILE).records
    assert records[-1]["k"] == "left" and records[-2]["k"] == "sent"
    last_keys = {(x[0], x[1], x[2]) for x in records[-2]["sends"]}
    last = encode_record(records[-1])
    sent = encode_record(records[-2])
    assert data.endswith(sent + last)
    start = len(data) - len(last) - len(sent)  # every byte of the last two records
    reference = _reference_keys()
    sent_before = _keys(before)
    for cut in range(start, len(data)):
        torn = tmp_path / f"cut-{cut}"
        torn.mkdir()
        (torn / JOURNAL_FILE).write_bytes(data[:cut])
        run = last_run(torn / JOURNAL_FILE)
        whole = 2 if cut < start + len(sent) else 1  # records cut (the torn one is ignored)
        assert len(run.records) == len(records) - whole, cut  # never misread
        kept = start + (len(sent) if whole == 1 else 0)
        assert run.dropped == cut - kept and (run.dropped == 0 or run.reason)
        follower, after = _resume(torn, T0 + 6 * S + 700 * MS)
        assert not _keys(after) - reference, cut  # every key is one the show has
        assert sent_before | _keys(after) == reference, cut  # and none is lost
        report = follower.last_takeover
        assert report is not None and report.mismatches == 0
        # The torn record is the ``left`` of the last sends: they may not all have left, so what
        # of them fell due is reported missed, as uncertain (and nothing else is).
        assert all(m.uncertain and m.key in last_keys for m in report.missed), report.missed


def test_a_torn_tail_is_cut_before_the_resumed_run_appends(tmp_path: Path) -> None:
    _, _, journal = _journalled_run(tmp_path, T0 + 3 * S)
    journal.close()  # no end record: cut short
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(path.read_bytes()[:-3])  # power lost mid-write
    n = len(last_run(path).records)
    again = ShowJournal(tmp_path, fresh=False)
    again.write([{"k": "term", "at": T0 + 4 * S, "term": 2}], T0 + 4 * S)
    again.close(end={"k": "end", "at": T0 + 5 * S, "state": "stopped"})
    run = last_run(path)
    assert run.dropped == 0 and len(run.records) == n + 2
    assert run.ended and not run.live and run.term == 2


def test_the_journal_says_whether_the_show_was_cut_short_while_live(tmp_path: Path) -> None:
    core, _, journal = _journalled_run(tmp_path / "a", T0 + 3 * S)
    journal.close()  # no end record: cut short
    run = last_run(tmp_path / "a" / JOURNAL_FILE)
    assert run.live and run.state == "playing" and not run.ended and run.show == "show"
    core.command(Stop(), T0 + 3 * S)
    ended = ShowJournal(tmp_path / "b", fresh=True)
    ended.write([core.start_record(T0), *core.take_records()], T0 + 3 * S)
    ended.close(end={"k": "end", "at": T0 + 3 * S, "state": "stopped"})
    assert not last_run(tmp_path / "b" / JOURNAL_FILE).live


def test_a_second_writer_is_refused_and_a_fresh_run_archives_the_last(tmp_path: Path) -> None:
    _, _, first = _journalled_run(tmp_path, T0 + 2 * S)
    with pytest.raises(JournalError, match="in use by another madang run"):
        ShowJournal(tmp_path, fresh=True)
    first.close(end={"k": "end", "at": T0 + 2 * S, "state": "stopped"})
    second = ShowJournal(tmp_path, fresh=True)
    assert second.archived is not None and second.archived.name.startswith("journal-")
    assert last_run(second.archived).ended
    assert last_run(tmp_path / JOURNAL_FILE).records == []
    second.close()


def test_a_journal_folder_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JournalError, match="cannot be created") as err:
        ShowJournal(blocker / "journal", fresh=True)
    assert "--journal" in str(err.value)


def test_the_automatic_offer_asks_only_after_a_run_cut_short_while_live(tmp_path: Path) -> None:
    from madang.show import offer_resume

    _, _, journal = _journalled_run(tmp_path, T0 + 3 * S)
    journal.close()  # cut short
    run = last_run(tmp_path / JOURNAL_FILE)
    asked: list[str] = []

    def ask(answer: str) -> object:
        def f(question: str) -> str:
            asked.append(question)
            return answer

        return f

    assert offer_resume(run, ask(""))  # type: ignore[arg-type]  # Enter resumes
    assert "cut short while playing" in asked[-1] and "[Y/n]" in asked[-1]
    assert not offer_resume(run, ask("n"))  # type: ignore[arg-type]
    ended = ShowJournal(tmp_path / "ended", fresh=True)
    ended.close(end={"k": "end", "at": T0, "state": "stopped"})
    n = len(asked)
    assert not offer_resume(last_run(tmp_path / "ended" / JOURNAL_FILE), ask("y"))  # type: ignore[arg-type]
    assert len(asked) == n  # nothing to offer: not asked
