"""Device profiles as data: every shipped profile loads, a malformed one is refused at its line
and column, and venues find profiles by name (their own folders first, then config/profiles/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from venues.errors import SourceErrors
from venues.loader import load_venue
from venues.profiles import find_profile, load_profile, shipped_profiles

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "config" / "profiles").glob("*.yaml"))


def test_the_issue_s_profiles_are_shipped() -> None:
    assert set(shipped_profiles()) >= {
        "resolume", "touchdesigner", "madmapper", "millumin", "disguise", "qlab", "dmx-generic",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_profile_loads_and_cites_its_vendor_documentation(path: Path) -> None:
    profile = load_profile(path)
    assert profile.id == path.stem  # found by file name, named the same inside
    assert profile.references and all(r.startswith("https://") for r in profile.references)
    text = path.read_text(encoding="utf-8")
    assert "sources:" in text and "section:" in text
    if profile.protocol == "osc":
        assert profile.verbs
        for verb in profile.verbs.values():
            assert verb.address.startswith("/")
    else:
        assert profile.channels and profile.footprint is not None
        used = [c.offset + c.bits // 8 - 1 for c in profile.channels.values()]
        assert max(used) <= profile.footprint


GOOD = """\
profile: mine
name: My server
protocol: osc
sources:
  - {url: "https://example.org/osc", section: "OSC"}
verbs:
  scene:
    address: /scene/{n}
    params:
      n: {type: int, min: 1, max: 9}
    args: [{type: i, value: 1}]
"""


@pytest.mark.parametrize(
    ("old", "new", "needle", "says"),
    [
        ("    address: /scene/{n}", "    adress: /scene/{n}", "adress", "unknown key 'adress'"),
        ("/scene/{n}", "/scene/{m}", "/scene/{m}", "placeholder {m} of verb 'scene' is not one of"),
        ("n: {type: int, min: 1, max: 9}", "n: {type: int, min: 9, max: 1}", "9, max", "min 9 is above max"),
        ("n: {type: int, min: 1, max: 9}", "n: {type: int, min: 1, max: 9, default: 12}", "12",
         "default of n 12 is above its maximum 9"),
        ("n: {type: int, min: 1, max: 9}", "n: {type: integer}", "integer", "type"),
        ("[{type: i, value: 1}]", "[{type: i, value: 1}, {type: s, param: n}]", "s, param",
         "OSC type 's' cannot carry int param 'n'"),
        ("[{type: i, value: 1}]", "[{type: f, param: x}]", "x}", "sends unknown param 'x'"),
        ("[{type: i, value: 1}]", "[{type: i, value: go}]", "go}", "constant 'go' does not fit OSC type 'i'"),
        ("  scene:\n", "  targets:\n", "targets:", "'targets' cannot be a verb name"),
        ("  scene:\n", "  Scene:\n", "Scene:", "'Scene' is not a verb name"),
        ("n: {type: int, min: 1, max: 9}", "n: {type: int, choices: [1, x]}", "choices",
         "choice 'x' is not a whole number"),
        ("/scene/{n}", "/scene 1/{n}", "/scene 1", "is not an OSC address"),
        ("[{type: i, value: 1}]", "[{type: i, param: n, scale: [0, 9]}]", "scale", "scale maps a parameter"),
        ("  - {url: \"https://example.org/osc\", section: \"OSC\"}\n", "  []\n", "[]", "sources"),
        ("name: My server", "name: My: server", "My:", "YAML syntax error"),
    ],
)
def test_a_malformed_profile_is_refused_at_its_line_and_column(
    tmp_path: Path, old: str, new: str, needle: str, says: str
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    path = tmp_path / "mine.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceErrors) as err:
        load_profile(path)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if needle in t)
    found = [str(f) for f in err.value.findings]
    assert any(f.startswith(f"{path}:{line}:") and says in f for f in found), found


def test_a_good_profile_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD, encoding="utf-8")
    profile = load_profile(path)
    assert profile.verbs["scene"].value == "n"  # the only parameter takes a plain value


DMX = """\
profile: par
name: Par
protocol: dmx
footprint: 4
sources: [{url: "https://example.org/dmx", section: "DMX chart"}]
channels:
  dimmer: {offset: 1, bits: 16}
  red: {offset: 3}
  green: {offset: 4}
"""


@pytest.mark.parametrize(
    ("old", "new", "needle", "says"),
    [
        ("red: {offset: 3}", "red: {offset: 2}", "red:", "channel 'red' overlaps 'dimmer' at offset 2"),
        ("green: {offset: 4}", "green: {offset: 4, bits: 16}", "green:", "ends at 5, past the footprint 4"),
        ("green: {offset: 4}", "green: {offset: 4, default: 2}", "green:", "default 2 is outside 0..1"),
        ("footprint: 4\n", "", "channels:", "channels need a footprint"),
    ],
)
def test_a_dmx_profile_s_channels_fit_the_footprint_and_do_not_overlap(
    tmp_path: Path, old: str, new: str, needle: str, says: str
) -> None:
    text = DMX.replace(old, new, 1)
    path = tmp_path / "par.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceErrors) as err:
        load_profile(path)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if needle in t)
    found = [str(f) for f in err.value.findings]
    assert any(f.startswith(f"{path}:{line}:") and says in f for f in found), found


VENUE = """\
venue: v
zones: [main]
{profiles}devices:
  - {{id: media, kind: server, zone: main, sync: none, osc: {{port: 7000}}, profile: {name}}}
"""


def _venue(tmp_path: Path, name: str, profiles: str = "") -> Path:
    path = tmp_path / "venue.yaml"
    path.write_text(VENUE.format(name=name, profiles=profiles), encoding="utf-8")
    return path


def test_a_venue_device_names_a_shipped_profile(tmp_path: Path) -> None:
    venue = load_venue(_venue(tmp_path, "resolume"))
    assert venue.by_id["media"].profile == "resolume"
    assert "clip" in venue.profiles["resolume"].verbs


def test_an_unknown_profile_is_reported_at_the_device_with_the_profiles_there_are(tmp_path: Path) -> None:
    path = _venue(tmp_path, "resolum")
    with pytest.raises(SourceErrors) as err:
        load_venue(path)
    (finding,) = err.value.findings
    assert str(finding).startswith(f"{path}:4:")
    assert "profile 'resolum' not found" in str(finding)
    assert "did you mean 'resolume'?" in str(finding) and "qlab" in str(finding)


def test_a_venue_s_own_profiles_folder_comes_first(tmp_path: Path) -> None:
    (tmp_path / "my-profiles").mkdir()
    own = tmp_path / "my-profiles" / "resolume.yaml"
    own.write_text(GOOD.replace("mine", "resolume"), encoding="utf-8")
    venue = load_venue(_venue(tmp_path, "resolume", "profiles: [my-profiles]\n"))
    assert list(venue.profiles["resolume"].verbs) == ["scene"]  # the venue's own, not the shipped one
    assert find_profile("resolume", [tmp_path / "my-profiles"]) == tmp_path / "my-profiles" / "resolume.yaml"


def test_a_broken_profile_of_a_venue_is_reported_in_its_file_and_at_the_device(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(GOOD.replace("/scene/{n}", "/scene/{m}"), encoding="utf-8")
    path = _venue(tmp_path, "mine.yaml")
    with pytest.raises(SourceErrors) as err:
        load_venue(path)
    found = [str(f) for f in err.value.findings]
    assert any(f.startswith(f"{tmp_path / 'mine.yaml'}:8:") and "{m}" in f for f in found), found
    assert any(f.startswith(f"{path}:4:") and "profile 'mine.yaml'" in f for f in found), found


def test_a_missing_profiles_folder_is_reported(tmp_path: Path) -> None:
    path = _venue(tmp_path, "qlab", "profiles: nowhere\n")
    with pytest.raises(SourceErrors) as err:
        load_venue(path)
    assert any(str(f).startswith(f"{path}:3:") and "profiles folder 'nowhere' not found" in str(f)
               for f in err.value.findings)


def test_the_profile_written_in_docs_profiles_md_loads(tmp_path: Path) -> None:
    text = (REPO / "docs" / "profiles.md").read_text(encoding="utf-8")
    block = next(b for b in text.split("```yaml\n")[1:] if b.startswith("profile: my-wall"))
    path = tmp_path / "my-wall.yaml"
    path.write_text(block.split("```")[0], encoding="utf-8")
    profile = load_profile(path)
    assert list(profile.verbs) == ["scene", "brightness", "mode"]
    assert profile.verbs["mode"].value == "name" and profile.verbs["brightness"].value == "value"


def test_a_venue_written_back_out_keeps_its_devices_profiles(tmp_path: Path) -> None:
    from venues.writer import venue_yaml

    (tmp_path / "mine.yaml").write_text(GOOD, encoding="utf-8")
    path = tmp_path / "venue.yaml"
    path.write_text(
        VENUE.format(name="resolume", profiles="")
        + "  - {id: other, kind: server, zone: main, sync: none, osc: {port: 7001}, profile: mine.yaml}\n",
        encoding="utf-8",
    )
    venue = load_venue(path)
    elsewhere = tmp_path / "out"
    elsewhere.mkdir()
    (elsewhere / "venue.yaml").write_text(venue_yaml(venue), encoding="utf-8")
    again = load_venue(elsewhere / "venue.yaml")
    assert again.by_id["media"].profile == "resolume"  # shipped: by name
    other = again.by_id["other"].profile
    assert other == str((tmp_path / "mine.yaml").resolve())  # the venue's own: where it is
    assert other is not None and again.profiles[other].verbs.keys() == {"scene"}


def test_the_profile_json_schema_describes_verbs_and_channels() -> None:
    from venues.profiles import profile_json_schema

    schema = profile_json_schema()
    assert {"profile", "protocol", "sources", "verbs", "channels"} <= schema["properties"].keys()
    assert schema["required"] == ["profile", "name", "protocol", "sources"]
