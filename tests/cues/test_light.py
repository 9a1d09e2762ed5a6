"""``light:`` actions (crowd effects): compiled to one ``madang/light`` message, the image checked
as a PNG of the show folder, every mistake at its line and column."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from cues.compiler import LIGHT_TOPIC, compile_show, png_size
from cues.schema import show_schema
from cues.timeline import MqttSend
from venues.errors import SourceErrors

VENUE = """\
venue: stand
zones: [east]
devices:
  - {id: led-1, kind: facade, zone: east, sync: none, osc: {port: 9000}}
audience:
  capacity: 3
  seats:
    - {section: E, zone: east, rows: 2, seats: 2}
"""


def _png(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x10\x20\x30" * w for _ in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def show(tmp_path: Path, actions: str) -> Path:
    (tmp_path / "venue.yaml").write_text(VENUE, encoding="utf-8")
    (tmp_path / "lotus.png").write_bytes(_png(4, 2))
    (tmp_path / "fake.png").write_bytes(b"not a png at all, really not" * 3)
    path = tmp_path / "show.yaml"
    path.write_text(
        f"show: Lights\nvenue: venue.yaml\ncues:\n  - id: c\n    actions:\n{actions}", encoding="utf-8"
    )
    return path


def errors(path: Path) -> list[str]:
    with pytest.raises(SourceErrors) as ei:
        compile_show(path)
    return [str(f) for f in ei.value.findings if f.severity == "error"]


def test_lights_compile_to_one_message_each(tmp_path: Path) -> None:
    path = show(
        tmp_path,
        '      - light: {targets: "kind:phone", color: "#ff2d95", strobe: 4}\n'
        '      - light: {targets: "kind:phone", wave: {colors: [red, "#00f"], speed: 3}}\n'
        '      - light: {targets: "kind:phone", image: lotus.png, scene: lotus}\n',
    )
    timeline, _ = compile_show(path)
    ops = [a.op for a in timeline.actions]
    assert all(isinstance(op, MqttSend) and op.topic == LIGHT_TOPIC and op.qos == 1 for op in ops)
    payloads = [op.payload for op in ops if isinstance(op, MqttSend)]
    assert payloads[0] == {"color": "#ff2d95", "strobe": 4.0}
    assert payloads[1] == {"wave": {"colors": ["red", "#00f"], "speed": 3.0, "direction": 0.0, "width": 5.0}}
    assert payloads[2] == {"scene": "lotus", "image": {"name": "lotus.png", "width": 4, "height": 2}}
    assert timeline.media == {"lotus.png": str((tmp_path / "lotus.png").resolve())}
    assert all(len(a.devices) == 3 for a in timeline.actions)


def test_an_image_must_be_a_png_of_the_show_folder(tmp_path: Path) -> None:
    found = errors(
        show(
            tmp_path,
            '      - light: {targets: "kind:phone", image: missing.png}\n'
            '      - light: {targets: "kind:phone", image: fake.png}\n'
            '      - light: {targets: "kind:phone", image: ../etc/x.png}\n',
        )
    )
    assert any("show.yaml:6:" in f and "image 'missing.png' not found" in f for f in found), found
    assert any("show.yaml:7:" in f and "image 'fake.png' is not a PNG" in f for f in found), found
    assert any("show.yaml:8:" in f and "is not a PNG file name of the show folder" in f for f in found)


def test_a_light_needs_a_look(tmp_path: Path) -> None:
    found = errors(show(tmp_path, '      - light: {targets: "kind:phone", strobe: 3}\n'))
    assert any(
        "show.yaml:6:" in f and "a light needs a color, a scene, a wave or an image" in f for f in found
    )
    found = errors(show(tmp_path, '      - light: {targets: "kind:phone", color: "#zz0000"}\n'))
    assert any("show.yaml:6:" in f and "color" in f for f in found), found


def test_png_size_and_the_schema() -> None:
    assert png_size(_png(7, 3)) == (7, 3)
    assert png_size(b"GIF89a") is None
    text = str(show_schema())
    assert "'light'" in text and "'wave'" in text
