"""The flags the model-asking commands share, as the CLI hands them to the application layer.

Light on purpose (dataclasses only): the CLI imports it at start-up. A flag that was
not given is None, so that a preset or a config file can supply the value and
`--dry-run` can say which one did.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["SETTING_FLAGS", "AskFlags"]

# Flags that map to a setting: parameter name -> (setting, flag as typed).
SETTING_FLAGS = {
    "personas": ("personas", "--personas"),
    "arbiter": ("arbiter", "--arbiter"),
    "endpoint": ("endpoint", "--endpoint"),
    "base_url": ("base_url", "--base-url"),
    "model": ("model", "--model"),
    "api_key_env": ("api_key_env", "--api-key-env"),
    "timeout": ("timeout", "--timeout"),
    "retries": ("retries", "--retries"),
    "max_concurrency": ("max_concurrency", "--max-concurrency"),
    "rounds": ("rounds", "--rounds"),
    "speculative": ("speculative", "--speculative"),
    "threshold": ("threshold", "--threshold"),
    "model_path": ("model_path", "--model-path"),
}


@dataclass(frozen=True)
class AskFlags:
    """Every flag `council oracle` and `council deliberate` both take, as given."""

    query: str | None = None
    preset: str | None = None
    personas: str | None = None
    arbiter: str | None = None
    context: list[Path] | None = None
    endpoint: str | None = None
    base_url: str | None = None
    model_path: Path | None = None
    # One model, or several (-m a -m b@profile): each persona then runs once per model.
    model: list[str] | None = None
    api_key_env: str | None = None
    timeout: float | None = None
    retries: int | None = None
    max_concurrency: int | None = None
    json_output: bool = False
    jsonl_output: bool = False
    quiet: bool = False
    dry_run: bool = False
    no_history: bool = False
    no_store_text: bool = False
    # In a terminal: the final round's answers and the timeline (deliberate), a table
    # of every call (oracle). Markdown and JSON always carry everything.
    verbose: bool = False
    # Standard input is not read unasked (it still is with `-` or `-c -`).
    no_stdin: bool = False
    # An instruction appended to every persona's system prompt for this run.
    system: str | None = None
    # Model options for the request body (-o KEY VALUE), as typed: see app/model_options.py.
    option: list[tuple[str, str]] | None = None
    # --vote: every persona gives a ballot (--choices A,B,C or yes,no; free answers
    # without); --rank (oracle): each persona ranks the others' answers anonymously.
    vote: bool = False
    choices: str | None = None
    rank: bool = False
    # --rank's bias checks (engine/bias.py): reviewers re-asked in the reverse order
    # (None: DEFAULT_POSITION_CHECKS), and the share shown their own answer in a shadow
    # review (None: none).
    position_checks: int | None = None
    self_check_rate: float | None = None
    # --vote's stopping rule, "NAME[:THRESHOLD]" (engine/stopping.py; None: the
    # default), and --weighting equal|confidence.
    stop_rule: str | None = None
    weighting: str | None = None
    # The run's spending limits (engine/budget.py): USD, and prompt plus answer tokens.
    budget_usd: float | None = None
    max_tokens_total: int | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def setting_values(self, **command_settings: Any) -> dict[str, Any]:
        """The setting flags (given or not) by parameter name, with a command's own ones."""
        shared = {name: getattr(self, name) for name in SETTING_FLAGS if hasattr(self, name)}
        models = self.model or []
        shared["model"] = models[0] if len(models) == 1 else None  # several: see `models`
        return {**shared, **command_settings}

    @property
    def models(self) -> list[str]:
        """The models of a council of models (-m given more than once); [] otherwise."""
        return list(self.model or []) if len(self.model or []) > 1 else []
