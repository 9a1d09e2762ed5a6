"""``do:`` actions: a show speaks a device's profile verbs; check validates them at file:line:col,
and the real controller sends exactly the OSC the profile names, read back by python-osc's own
UDP server (an independent decoder)."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer

from cues import check_show, compile_show
from cues.timeline import OscSend

VENUE = """\
venue: stage
zones: [main]
devices:
  - id: media
    kind: server
    zone: main
    sync: none
    latency: 5ms
    osc: {{host: 127.0.0.1, port: {port}}}
    profile: resolume
    attrs: {{layer: 3}}
  - id: sound
    kind: audio
    zone: main
    sync: none
    osc: {{host: 127.0.0.1, port: {qport}}}
    profile: qlab
  - id: plain
    kind: facade
    zone: main
    sync: none
    osc: {{host: 127.0.0.1, port: {pport}}}
"""

SHOW = """\
show: Verbs
venue: venue.yaml
cues:
  - id: open
    go: manual
    actions:
      - do: {targets: media, clip: {layer: 2, column: 5}}
      - at: 100ms
        do: {targets: media, opacity: 0.4}
      - at: 200ms
        do: {targets: media, opacity: {layer: 1, value: 1}}
      - at: 300ms
        do: {targets: sound, start: 12}
      - at: 400ms
        do: {targets: sound, go: {}}
      - at: 500ms
        do: {targets: media, column: 7}
      - at: 600ms
        fade: {targets: media, param: opacity, from: 0, to: 1, over: 300ms, rate: 20}
"""

# What Resolume's and QLab's OSC documentation say these verbs are (config/profiles/*.yaml).
EXPECTED_MEDIA = [
    ("/composition/layers/2/clips/5/connect", [1]),
    ("/composition/layers/3/video/opacity", [pytest.approx(0.4)]),  # layer from the device's attrs
    ("/composition/layers/1/video/opacity", [1.0]),
    ("/composition/columns/7/connect", [1]),
]
EXPECTED_SOUND = [("/cue/12/start", []), ("/go", [])]
FADED = "/composition/layers/3/video/opacity"  # the fade of opacity, on the device's layer


def _write(tmp_path: Path, show: str = SHOW, *, port: int = 9, qport: int = 10, pport: int = 11) -> Path:
    (tmp_path / "venue.yaml").write_text(VENUE.format(port=port, qport=qport, pport=pport), encoding="utf-8")
    path = tmp_path / "show.yaml"
    path.write_text(show, encoding="utf-8")
    return path


def _line_col(text: str, needle: str) -> tuple[int, int]:
    for n, line in enumerate(text.splitlines(), 1):
        col = line.find(needle)
        if col >= 0:
            return n, col + 1
    raise AssertionError(needle)


def test_a_show_of_resolume_and_qlab_verbs_checks_clean_and_compiles_to_their_addresses(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path)
    report = check_show(path)
    assert report.ok, [str(f) for f in report.findings]
    timeline, _ = compile_show(path)
    sends = [(a.devices, a.op) for a in timeline.actions]
    assert sends[0] == (("media",), OscSend("/composition/layers/2/clips/5/connect", (1,), replay=False))
    assert sends[1] == (("media",), OscSend("/composition/layers/{layer}/video/opacity", (0.4,)))
    assert sends[3] == (("sound",), OscSend("/cue/12/start", (), replay=False))


def test_a_scaled_argument_sends_the_value_mapped_to_0_1(tmp_path: Path) -> None:
    show = SHOW.split("    actions:\n")[0] + "    actions:\n      - do: {targets: media, tempo: 128}\n"
    timeline, _ = compile_show(_write(tmp_path, show))
    (action,) = timeline.actions
    assert action.op == OscSend("/composition/tempocontroller/tempo", (pytest.approx((128 - 20) / 480),))
    show, errors = _errors(tmp_path, "fade: {targets: media, param: tempo, to: 140, over: 1s}")
    assert any("sends its value rescaled, which a fade cannot do" in e for e in errors), errors


def test_events_are_not_part_of_the_state_a_device_catches_up_to(tmp_path: Path) -> None:
    from controller.state import StateIndex

    timeline, venue = compile_show(_write(tmp_path))
    index = StateIndex(timeline, venue)
    end = timeline.duration_ns + 1
    media = index.state_for_device("media", end)
    assert media.osc == {  # the opacities (states), not the clip and column connects (events)
        "/composition/layers/{layer}/video/opacity": (0.4,),
        "/composition/layers/1/video/opacity": (1.0,),
    }
    assert media.params == {"opacity": pytest.approx(1.0)}
    assert index.state_for_device("sound", end).osc == {}  # QLab's go and start are events


def _errors(tmp_path: Path, action: str) -> tuple[str, list[str]]:
    show = SHOW.split("    actions:\n")[0] + "    actions:\n      - " + action + "\n"
    path = _write(tmp_path, show)
    report = check_show(path)
    assert not report.ok
    return show, [str(f) for f in report.errors]


def test_a_wrong_verb_is_reported_at_its_line_and_column_with_the_valid_verbs(tmp_path: Path) -> None:
    show, errors = _errors(tmp_path, "do: {targets: media, clipp: {layer: 2, column: 5}}")
    line, col = _line_col(show, "clipp")
    assert len(errors) == 1, errors
    where = f"{tmp_path / 'show.yaml'}:{line}:{col}"
    assert errors[0].startswith(f"{where}: 'clipp' is not a verb of profile 'resolume'"), errors
    assert "did you mean 'clip'?" in errors[0]
    for verb in ("clip", "column", "opacity", "master", "clear", "bypass"):
        assert re.search(rf"\b{verb}\b", errors[0].split("its verbs:")[1]), verb


@pytest.mark.parametrize(
    ("action", "needle", "says"),
    [
        ("do: {targets: media, opacity: 1.5}", "1.5", "value 1.5 is above its maximum 1"),
        ("do: {targets: media, clip: {layer: 0, column: 5}}", "0, column", "layer 0 is below its minimum 1"),
        ("do: {targets: media, clip: {layer: 2, colum: 5}}", "colum:", "has no parameter 'colum'"),
        ("do: {targets: media, clip: {layer: two, column: 5}}", "two", "expected a whole number for layer"),
        ("do: {targets: media, clip: 5}", "5}", "verb 'clip' takes no single value"),
        ("do: {targets: plain, clip: {layer: 2, column: 5}}", "plain", "have no device profile"),
        ("do: {targets: media}", "{targets", "exactly one verb"),
    ],
)
def test_bad_verb_values_are_reported_where_they_are_written(
    tmp_path: Path, action: str, needle: str, says: str
) -> None:
    show, errors = _errors(tmp_path, action)
    line, col = _line_col(show, needle)
    assert any(e.startswith(f"{tmp_path / 'show.yaml'}:{line}:") and says in e for e in errors), errors
    assert any(f":{line}:{col}:" in e for e in errors), (col, errors)


def test_a_fade_of_a_verb_moves_the_verb_s_address_within_its_range(tmp_path: Path) -> None:
    timeline, _ = compile_show(_write(tmp_path))
    (fade,) = [a.op for a in timeline.actions if not isinstance(a.op, OscSend)]
    assert fade.address == "/composition/layers/{layer}/video/opacity"
    show, errors = _errors(tmp_path, "fade: {targets: media, param: opacity, to: 2, over: 1s}")
    line, col = _line_col(show, "2, over")
    assert any(f":{line}:{col}: value 2 is above its maximum 1" in e for e in errors), errors
    show, errors = _errors(tmp_path, "fade: {targets: media, param: clip, to: 2, over: 1s}")
    assert any("verb 'clip' of profile 'resolume' is not a number that can be faded" in e for e in errors)


def test_a_layer_left_out_must_be_an_attribute_of_every_target(tmp_path: Path) -> None:
    show = SHOW.replace("attrs: {{layer: 3}}", "")
    (tmp_path / "venue.yaml").write_text(
        VENUE.replace("    attrs: {{layer: 3}}\n", "").format(port=9, qport=10, pport=11), encoding="utf-8"
    )
    (tmp_path / "show.yaml").write_text(show, encoding="utf-8")
    errors = [str(f) for f in check_show(tmp_path / "show.yaml").errors]
    # the opacity verb (layer not given) and the fade of opacity, which takes it from the device too
    assert errors and all("verb 'opacity' needs 'layer'" in e for e in errors), errors
    assert errors[0].startswith(f"{tmp_path / 'show.yaml'}:9:"), errors


# --- played on the real controller, received by python-osc ------------------------------------


class _Receiver:
    """python-osc's threading UDP server on a free loopback port, recording (address, args)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, list[Any]]] = []
        self._lock = threading.Lock()
        d = Dispatcher()
        d.set_default_handler(self._on)
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def _on(self, address: str, *args: Any) -> None:
        with self._lock:
            self.got.append((address, list(args)))

    def messages(self) -> list[tuple[str, list[Any]]]:
        with self._lock:
            return [m for m in self.got if not m[0].startswith("/madang/")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_controller_sends_exactly_the_addresses_and_args_the_profiles_name(tmp_path: Path) -> None:
    from controller.runtime import Runtime, RuntimeOptions

    media, sound = _Receiver(), _Receiver()
    try:
        path = _write(tmp_path, port=media.port, qport=sound.port, pport=_free_port())
        timeline, venue = compile_show(path)
        opts = RuntimeOptions(
            sync=False, view=False, control_port=None, go=True, exit_at_end=True, go_delay_ms=50,
            broker_url="mqtt://127.0.0.1:1", degrade=["all"], ready_timeout_s=30,
        )
        code = asyncio.run(asyncio.wait_for(Runtime(timeline, venue, opts).run(), 60))
        assert code == 0
        # UDP on loopback: give the receivers' threads a moment to take the last datagrams.
        pause = threading.Event()  # never set: a sleep that reads no clock of ours
        for _ in range(100):  # until the fade's last value (1.0) is in
            last = media.messages()[-1:]
            if last == [(FADED, [1.0])] and len(sound.messages()) >= len(EXPECTED_SOUND):
                break
            pause.wait(0.05)
        got = media.messages()
        assert got[: len(EXPECTED_MEDIA)] == EXPECTED_MEDIA
        assert sound.messages() == EXPECTED_SOUND
        # The fade of opacity streams to the verb's address (its layer from the device), 0 to 1.
        frames = got[len(EXPECTED_MEDIA) :]
        assert len(frames) >= 3, got
        assert {a for a, _ in frames} == {FADED}
        values = [args[0] for _, args in frames]
        assert all(len(args) == 1 and isinstance(args[0], float) for _, args in frames)
        assert values == sorted(values) and values[-1] == pytest.approx(1.0) and values[0] < 0.5
    finally:
        media.close()
        sound.close()


def test_madang_check_takes_a_profile_file_alone(tmp_path: Path) -> None:
    from cues.check import ProfileCheckReport, check_file

    repo = Path(__file__).resolve().parents[2]
    report = check_file(repo / "config" / "profiles" / "resolume.yaml")
    assert isinstance(report, ProfileCheckReport) and report.ok
    assert report.summary() == "resolume.yaml: ok: profile resolume (osc), 10 verbs"
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: bad\nname: Bad\nprotocol: osc\nsources: []\nverbs: {}\n", encoding="utf-8")
    report = check_file(bad)
    assert not report.ok and report.to_json()["kind"] == "profile"
    assert str(report.findings[0]).startswith(f"{bad}:4:")


def test_a_verb_on_a_dmx_fixture_profile_is_refused_at_the_verb(tmp_path: Path) -> None:
    endpoint = "    osc: {host: 127.0.0.1, port: 11}\n"
    venue = VENUE.format(port=9, qport=10, pport=11)
    venue = venue.replace(endpoint, endpoint + "    profile: dmx-generic\n")
    (tmp_path / "venue.yaml").write_text(venue, encoding="utf-8")
    show = SHOW.split("    actions:\n")[0] + "    actions:\n      - do: {targets: plain, dimmer: 1}\n"
    (tmp_path / "show.yaml").write_text(show, encoding="utf-8")
    errors = [str(f) for f in check_show(tmp_path / "show.yaml").errors]
    line, col = _line_col(show, "dimmer")
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path / 'show.yaml'}:{line}:{col}: "), errors
    assert "profile 'dmx-generic' of 'plain' is a dmx channel layout" in errors[0]
