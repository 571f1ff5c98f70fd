"""Files in a repository that try to hang council: alias bombs, devices, FIFOs, broken links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from council.config.yamlfile import load_yaml_file
from council.errors import ConfigError
from tests.fake_openai import FakeOpenAI
from tests.helpers import invoke

# 9 levels of 9 aliases each: 9**9 (387 million) strings once expanded, in under 400 bytes.
BOMB = "".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
        *(
            f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]\n"
            for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)

needs_devices = pytest.mark.skipif(
    not Path("/dev/zero").exists() or not hasattr(os, "mkfifo"), reason="needs /dev/zero and FIFOs"
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with an empty `.council/` (presets/, personas/), as the current directory."""
    (tmp_path / ".git").mkdir()
    for kind in ("presets", "personas"):
        (tmp_path / ".council" / kind).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line_error(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- YAML aliases ------------------------------------------------------------------------------


def test_the_bomb_is_small() -> None:
    assert len(BOMB.encode()) < 400


def test_a_billion_laughs_preset_is_a_file_line_error_at_once(project: Path) -> None:
    path = project / ".council" / "presets" / "lol.yaml"
    path.write_text("name: lol\n" + BOMB)
    # The budget runs out in the collection of line 6 (e:): 9 * 7381 values.
    expected = f"{path}:6:4: YAML aliases expand to over 10,000 values"
    assert expected in one_line_error("presets", "show", "lol")
    validate = invoke("presets", "validate")
    assert validate.exit_code == 2
    assert expected in validate.stderr
    assert expected in one_line_error("oracle", "--preset", "lol", "--dry-run", "q")


def test_a_billion_laughs_project_config_is_a_file_line_error_for_every_run(
    project: Path, fake: FakeOpenAI
) -> None:
    path = project / ".council" / "config.yaml"
    path.write_text(BOMB)
    line = one_line_error("oracle", "--base-url", fake.base_url, "-p", "judge", "q")
    assert f"{path}:5:4: YAML aliases expand" in line  # no name: line here: one line up
    assert fake.requests == []


def test_small_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "defaults: &defaults {model: m, rounds: 2}\n"
        "profile:\n  <<: *defaults\n  name: x\n"
        "names: &names [judge, critic]\nagain: *names\n"
    )
    data = load_yaml_file(path, what="config file", max_bytes=10_000)
    assert data["profile"] == {"model": "m", "rounds": 2, "name": "x"}
    assert data["again"] == ["judge", "critic"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: &a [*a]\n", ":1:4: an alias refers to a collection it is part of"),
        ("a: " + "[" * 150 + "]" * 150 + "\n", "nested over 100 levels deep"),
    ],
    ids=["self-reference", "too-deep"],
)
def test_recursive_and_very_deep_yaml_are_refused(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_yaml_file(path, what="preset", max_bytes=10_000)
    assert problem in caught.value.message


# -- only regular files, never more than the cap plus one byte --------------------------------


@needs_devices
def test_a_persona_linked_to_dev_zero_or_a_fifo_is_left_out_unread(
    project: Path, fake: FakeOpenAI
) -> None:
    personas = project / ".council" / "personas"
    (personas / "zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(personas / "pipe.yaml")  # no writer: opening it would block for ever
    result = invoke("oracle", "--base-url", fake.base_url, "-p", "judge", "q")
    assert result.exit_code == 0, result.output
    assert "judge says:" in result.stdout
    listed = invoke("personas", "list")
    assert listed.exit_code == 0
    assert f"{personas / 'zero.yaml'}: a character device, not a regular file" in listed.stderr
    assert f"{personas / 'pipe.yaml'}: a named pipe (FIFO), not a regular file" in listed.stderr
    unknown = one_line_error("oracle", "--base-url", fake.base_url, "-p", "zero", "q")
    assert "unknown persona 'zero'" in unknown


@needs_devices
def test_yaml_files_are_read_only_when_regular(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for path, kind in ((Path("/dev/zero"), "a character device"), (fifo, "a named pipe (FIFO)")):
        with pytest.raises(ConfigError) as caught:
            load_yaml_file(path, what="preset", max_bytes=1024)
        assert f"{path}: preset is {kind}, not a regular file" in caught.value.message


def test_a_file_that_grows_past_its_size_is_read_no_further_than_the_cap(tmp_path: Path) -> None:
    from council.config.reading import read_limited

    path = tmp_path / "big.yaml"
    path.write_bytes(b"x" * 5000)
    assert len(read_limited(path, 1000)) == 1001
    with pytest.raises(ConfigError) as caught:
        load_yaml_file(path, what="preset", max_bytes=1000)
    assert "over the 1,000 byte limit" in caught.value.message


@needs_devices
def test_a_system_file_that_is_a_fifo_is_a_problem_not_a_hang(project: Path) -> None:
    presets = project / ".council" / "presets"
    os.mkfifo(presets / "prompt.md")
    (presets / "team.yaml").write_text(
        "name: team\npersonas:\n  - name: expert\n    system_file: prompt.md\n"
    )
    line = one_line_error("presets", "show", "team")
    assert "system_file: 'prompt.md' is a named pipe (FIFO), not a regular file" in line


# -- broken links: warnings from `presets validate`, problems with --strict -------------------


def test_presets_validate_warns_about_broken_symlinks_and_strict_fails(project: Path) -> None:
    presets = project / ".council" / "presets"
    (presets / "good.yaml").write_text("name: good\npersonas: [judge]\n")
    (presets / "gone.yaml").symlink_to(project / "nowhere.yaml")
    relaxed = invoke("presets", "validate")
    assert relaxed.exit_code == 0, relaxed.output
    warning = f"council: warning: {presets / 'gone.yaml'}: a broken symlink to "
    assert warning in relaxed.stderr and "council ignores it" in relaxed.stderr
    assert f"ok  {presets / 'good.yaml'}" in relaxed.stdout
    strict = invoke("presets", "validate", "--strict")
    assert strict.exit_code == 2
    assert f"council: error: {presets / 'gone.yaml'}: a broken symlink" in strict.stderr
    assert "1 of 6 preset files have problems" in strict.stderr  # 4 built in, good, gone
    given = invoke("presets", "validate", "--strict", str(presets / "gone.yaml"))
    assert given.exit_code == 2 and "a broken symlink" in given.stderr
