"""Commands about the files a council is made of: personas, presets, and `council init`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from council.cli.base import app, handles_errors, personas_app, presets_app, say
from council.errors import ConfigError

if TYPE_CHECKING:
    from council.config.catalog import Catalog

__all__ = [
    "init_command",
    "personas_list",
    "personas_show",
    "presets_list",
    "presets_show",
    "presets_validate",
]


def _print_listing(catalog: Catalog[Any], json_output: bool, *, empty: str) -> None:
    """One line per file found, in search order, shadowed ones marked; or JSON."""
    rows = [
        {
            "name": e.name,
            "description": e.description,
            "origin": e.origin,
            "path": str(e.path),
            "shadowed_by": str(e.shadowed_by) if e.shadowed_by else None,
        }
        for e in catalog.entries
    ]
    for skipped in catalog.skipped:
        typer.echo(f"council: warning: {skipped}", err=True)
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps(rows))
        return
    if not rows:
        say(empty)
        return
    from council.render.listing import BUILT_IN, fit_row, shown_path, terminal_width

    width = max(len(r["name"]) for r in rows)
    columns = terminal_width()
    for entry in catalog.entries:
        # Built-in ones say so, not where pip put them; the others where they are.
        where = (
            BUILT_IN
            if entry.origin == "built-in"
            else f"[{entry.origin}: {shown_path(entry.path)}]"
        )
        if entry.shadowed_by:
            where += f" (shadowed by {shown_path(entry.shadowed_by)})"
        say(fit_row(f"{entry.name:<{width}}  ", entry.description, f"  {where}", columns))


def _shown(path: Any) -> str:
    from council.render.listing import shown_path

    return shown_path(path)


def _is_builtin(path: Path) -> bool:
    from council.render.listing import BUILT_IN, shown_path

    return shown_path(path).startswith(BUILT_IN)


def _list_command(
    sub_app: typer.Typer,
    kind: str,
    discover: Callable[[], Catalog[Any]],
    *,
    empty: str,
    note: str = "",
) -> Callable[..., None]:
    """`council personas list` and `council presets list`: one command over either catalog.

    `discover` imports its catalog when the command runs, so `--help` stays light.
    """

    def list_command(
        json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        _print_listing(discover(), json_output, empty=empty)

    list_command.__doc__ = (
        f"List the {kind} you can use, with where each comes from{note}.\n\n"
        f"\b\nExample:\n  council {kind} list\n"
    )
    return sub_app.command(name="list")(handles_errors(list_command))


def _discover_personas() -> Catalog[Any]:
    from council.config.personas import PersonaCatalog

    return PersonaCatalog.discover()


def _discover_presets() -> Catalog[Any]:
    from council.config.presets import PresetCatalog

    return PresetCatalog.discover()


personas_list = _list_command(
    personas_app, "personas", _discover_personas, empty="no personas found"
)


@personas_app.command(name="show")
@handles_errors
def personas_show(
    name: Annotated[str, typer.Argument(help="Persona name.")],
) -> None:
    """Show one persona: its settings, file and full system prompt.

    \b
    Example:
      council personas show skeptic
    """
    from council.config.personas import PersonaCatalog
    from council.render.listing import terminal_width, wrapped

    persona = PersonaCatalog.discover().get(name)
    width = terminal_width()  # in a terminal, long lines are broken at words here
    say(f"name: {persona.name}")
    for line in wrapped(f"description: {persona.description}", width):
        say(line)
    say(f"file: {_shown(persona.source)}")
    for key in ("model", "temperature", "max_tokens"):
        value = getattr(persona, key)
        if value is not None:
            say(f"{key}: {value}")
    say("system: |")
    for line in persona.system.splitlines():
        for part in wrapped(f"  {line}", width, indent="") if line else [""]:
            say(part)


def _user_and_personas() -> tuple[Any, Any]:
    from council.config.files import load_user_config
    from council.config.personas import PersonaCatalog

    return load_user_config(), PersonaCatalog.discover()


presets_list = _list_command(
    presets_app,
    "presets",
    _discover_presets,
    empty="no presets found; 'council init' writes a starter one",
    note=" (shadowed ones marked)",
)


@presets_app.command(name="show")
@handles_errors
def presets_show(
    name: Annotated[str, typer.Argument(help="Preset name.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a preset as council resolves it, with the file and line of every value.

    \b
    Example:
      council presets show review
    """
    from council.config.presets import PresetCatalog, profile_warnings

    user, personas = _user_and_personas()
    preset = PresetCatalog.discover().load(name, personas=personas, user=user)
    data = preset.to_dict()
    # A profile this user lacks is their setup, not a broken preset: show it anyway.
    data["warnings"] = profile_warnings(preset, user)
    for warning in data["warnings"]:
        typer.echo(f"council: warning: {warning}", err=True)
    if json_output:
        from council.render.json_out import dumps

        typer.echo(dumps(data))
        return
    from council.render.listing import terminal_width, wrapped

    columns = terminal_width()  # in a terminal, long lines are broken at words here
    say(f"name: {preset.name}")
    for line in wrapped(f"description: {preset.description}", columns):
        say(line)
    say(f"file: {_shown(preset.path)}")
    for parent in preset.chain[1:]:
        say(f"extends: {_shown(parent)}")
    from council.render.display import display_value
    from council.render.listing import shown_where

    width = max((len(k) for k in data["values"]), default=0)
    for key, value in data["values"].items():
        shown = display_value(value)
        line = f"{key + ':':<{width + 1}} {shown}  # {shown_where(preset.where.get(key, ''))}"
        for part in wrapped(line, columns, indent=" " * (width + 2)):
            say(part)


@presets_app.command(name="validate")
@handles_errors
def presets_validate(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Preset files to check. [default: every preset council can find]",
            show_default=False,
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Count warnings as problems: a preset file council ignores "
            "(a broken symlink, a FIFO, a device) or an endpoint profile missing from "
            "your config fails the check too.",
        ),
    ] = False,
) -> None:
    """Check preset files, every problem on its own line; exit 0 when all are fine, 2 if not.

    For a team's CI: the same checks council makes before using a preset, including
    the trust rules (no keys, no endpoints you did not configure, no files outside
    the preset's directory). A preset file council ignores (a broken symlink, or
    anything but a regular file) is a warning, or a problem with --strict; so is an
    endpoint profile the preset names that your own config does not define.

    \b
    Examples:
      council presets validate                      # every preset council can find
      council presets validate --strict .council/presets/*.yaml
    """
    from council.config.catalog import Skipped, not_a_regular_file
    from council.config.presets import PresetCatalog

    user, personas = _user_and_personas()
    catalog = PresetCatalog.discover()
    if files:
        # A path given that is there but no regular file is one discovery would ignore.
        given = [Path(f) for f in files]
        reasons = {p: not_a_regular_file(p) for p in given if p.exists() or p.is_symlink()}
        ignored = [Skipped(p, "argument", r) for p, r in reasons.items() if r is not None]
        paths = [p for p in given if reasons.get(p) is None]
    else:
        ignored = catalog.skipped
        paths = [e.path for e in catalog.entries]
    for skipped in ignored:
        typer.echo(f"council: {'error' if strict else 'warning'}: {skipped}", err=True)
    bad = len(ignored) if strict else 0
    checked = len(paths) + len(ignored)
    for path in paths:
        if not path.is_file():
            say(f"{path}: no such file", err=True)
            bad += 1
            continue
        problems = catalog.problems(path.resolve(), personas, user)
        for problem in problems:
            say(str(problem), err=True)
        warnings = [] if problems else _preset_warnings(catalog, path, personas, user)
        for warning in warnings:
            typer.echo(f"council: {'error' if strict else 'warning'}: {warning}", err=True)
        if problems or (strict and warnings):
            bad += 1
        else:
            # A built-in one as such; the others by the path a CI log can point at.
            say(f"ok  {_shown(path) if _is_builtin(path) else path}")
    if bad:
        raise ConfigError(
            f"{bad} of {checked} preset files have problems (listed above)",
            "fix them and run 'council presets validate' again",
        )


def _preset_warnings(catalog: Any, path: Path, personas: Any, user: Any) -> list[str]:
    """Endpoint profiles a valid preset file names that the user's config lacks."""
    from council.config.presets import profile_warnings

    preset = catalog.load_file(path.resolve(), personas=personas, user=user)
    return profile_warnings(preset, user)


STARTER_PRESET = """\
# A council preset: commit this file so everyone on the team runs the same council.
#   council oracle --preset starter "question"
#   council deliberate --preset starter "question"
# Flags on the command line still win over anything set here.
name: starter
description: A starter council; edit me.

# Persona names (see 'council personas list'), or definitions inline:
personas:
  - judge
  - critic
  - name: domain-expert
    description: Knows this project.
    system_file: domain-expert.md      # a prompt file next to this one
arbiter: arbiter

# Where calls go: the name of an endpoint profile in each user's own config
# ('council endpoints list'). A preset never holds a key or a remote URL.
# endpoint: openrouter
# model: gpt-4o-mini

rounds: 2             # for council deliberate
speculative: true
threshold: 0.8
# temperature: 0.7
# max_tokens: 800
# max_concurrency: 8
# timeout: 120
# retries: 2
"""

STARTER_PROMPT = """\
You are the council's domain expert for this project. Answer from what you know of
its code, its users and its history; say plainly when something is outside it.
"""

STARTER_PERSONA = """\
# A persona of this project: use it by name, e.g. --personas judge,reviewer
name: reviewer
description: Reviews changes the way this team does.
system: |
  You review changes for this team. Check correctness first, then clarity, then
  whether the change fits how the codebase already does things. Be specific.
# temperature: 0.5
# model: gpt-4o
"""


@app.command(name="init")
@handles_errors
def init_command(
    directory: Annotated[
        Path, typer.Argument(help="Where to create .council/. [default: the current directory]")
    ] = Path("."),
) -> None:
    """Write a commented starter preset and persona into ./.council/, never overwriting.

    \b
    Example:
      council init && council presets show starter
    """
    root = directory / ".council"
    files = {
        root / "presets" / "starter.yaml": STARTER_PRESET,
        root / "presets" / "domain-expert.md": STARTER_PROMPT,
        root / "personas" / "reviewer.yaml": STARTER_PERSONA,
    }
    for path, text in files.items():
        if path.exists():
            say(f"kept     {path} (already there)")
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as handle:  # "x": never overwrite
                handle.write(text)
        except OSError as exc:
            raise ConfigError(f"cannot write {path} ({exc.strerror})") from exc
        say(f"created  {path}")
    say('next: council presets validate && council deliberate --preset starter --dry-run "q"')
