"""Shell completion, through the variables the installed scripts set: command names,
persona names (a comma list too), preset names and endpoint profiles, with no openai
imported; and `--show-completion` / `--install-completion` from a real bash."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Runs council as its console script does, then says whether completing imported openai.
COMPLETE_SCRIPT = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("OPENAI IMPORTED" if "openai" in sys.modules else ""))
from council.cli import main
main()
"""


def complete(env: dict[str, str], cwd: Path | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", COMPLETE_SCRIPT],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "OPENAI IMPORTED" not in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def bash(line: str, cwd: Path | None = None) -> list[str]:
    """What bash's completion of `line` (Tab at its end) is offered."""
    words = line.split(" ")
    env = {"COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    return complete({"_COUNCIL_COMPLETE": "complete_bash", **env}, cwd)


def test_bash_completes_commands_and_options() -> None:
    assert {"oracle", "deliberate", "batch", "personas", "history"} <= set(bash("council "))
    assert bash("council del") == ["deliberate"]
    assert bash("council personas sh") == ["show"]
    assert bash("council oracle --pers") == ["--personas"]


def test_persona_names_complete_in_a_comma_list() -> None:
    assert {"judge", "critic", "skeptic"} <= set(bash("council oracle -p "))
    assert bash("council oracle -p judge,cr") == ["judge,critic"]
    # A name already in the list is not offered again.
    offered = bash("council deliberate --personas judge,")
    assert "judge,critic" in offered and "judge,judge" not in offered
    assert bash("council oracle --arbiter ju") == ["judge"]


def test_presets_and_profiles_complete(tmp_path: Path) -> None:
    (Path(os.environ["COUNCIL_HOME"]) / "config.yaml").write_text(
        "endpoints:\n  - name: ollama\n    base_url: http://127.0.0.1:11434/v1\n"
    )
    project = tmp_path / "project" / ".council" / "presets"
    project.mkdir(parents=True)
    (project / "team-review.yaml").write_text("personas: [judge]\n")
    assert "review" in bash("council oracle --preset ")
    assert bash("council oracle -P team", cwd=project.parent.parent) == ["team-review"]
    assert bash("council batch -e oll") == ["ollama"]
    assert "local" in bash("council oracle --endpoint ")


def test_a_broken_config_completes_nothing_without_a_traceback() -> None:
    (Path(os.environ["COUNCIL_HOME"]) / "config.yaml").write_text("endpoints: [\n")
    assert bash("council oracle -e ") == []


def test_zsh_and_fish_complete_through_their_scripts_variables() -> None:
    zsh = complete(
        {"_COUNCIL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "council oracle -p judge,sk"}
    )
    assert zsh == ["_arguments '*: :((\"judge,skeptic\"))'"]
    fish = complete(
        {
            "_COUNCIL_COMPLETE": "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            "_TYPER_COMPLETE_ARGS": "council oracle --preset rev",
        }
    )
    assert fish == ["review"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_show_and_install_completion_from_bash(tmp_path: Path) -> None:
    home = tmp_path / "user"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}

    def in_bash(option: str) -> str:
        done = subprocess.run(
            ["bash", "-c", f"{sys.executable} -m council.cli {option}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = in_bash("--show-completion")
    assert "_COUNCIL_COMPLETE=complete_bash" in shown
    assert "complete -o default -F _council_completion council" in shown
    in_bash("--install-completion")
    script = home / ".bash_completions" / "council.sh"
    assert "_COUNCIL_COMPLETE=complete_bash" in script.read_text()
    assert str(script) in (home / ".bashrc").read_text()
