"""Renderers: live view (rich, stderr), Markdown for pipes, rich for terminals, JSON for programs.

Renderers read results and events; they never call the network.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["OutputMode", "choose_mode"]


class OutputMode(StrEnum):
    RICH = "rich"  # stdout is a terminal
    MARKDOWN = "markdown"  # stdout is a pipe or file
    JSON = "json"  # one document at the end
    JSONL = "jsonl"  # the event stream, one JSON object a line


def choose_mode(*, json_output: bool, jsonl_output: bool, stdout_is_tty: bool) -> OutputMode:
    if jsonl_output:
        return OutputMode.JSONL
    if json_output:
        return OutputMode.JSON
    return OutputMode.RICH if stdout_is_tty else OutputMode.MARKDOWN
