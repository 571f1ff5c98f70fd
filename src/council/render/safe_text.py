"""Text from models, servers and input files, made safe to show a person in a terminal.

A model's answer (or a server's error message, or a file attached with `-c`) is
untrusted: a prompt injection can put terminal control sequences in it, and a
terminal would obey them — write the clipboard (`ESC ] 52`), set the window title
(`ESC ] 0`), show a link whose target differs from its text (`ESC ] 8`), clear the
screen or move the cursor over other personas' lines (CSI). `strip_controls` removes
every such sequence and every other C0 and C1 control character except newline and
tab, before any human-facing output. JSON output keeps the text exactly: `json_safe`
escapes what `json.dumps(ensure_ascii=False)` would otherwise leave raw (C1 controls).

    strip_controls("ok\\x1b]52;c;aGk=\\x07 done")   # "ok done"
"""

from __future__ import annotations

import re

__all__ = ["json_safe", "strip_controls"]

_ESC = "\x1b"
# A control sequence, in its 7-bit (ESC ...) or 8-bit (C1) form:
_SEQUENCE = re.compile(
    # CSI: parameters, intermediates, a final byte (missing when the text ends first).
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    # OSC, DCS, SOS, PM, APC: a string up to BEL or ST. A terminal would swallow the
    # rest of the text when the terminator never comes; we stop at the line's end, so
    # the answer after it stays readable.
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\n]*?(?:\x07|\x1b\\|\x9c|(?=\n)|$)"
    # Any other escape: ESC, intermediates, a final byte (ESC c resets the terminal).
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)
# What is left: C0 controls but tab and newline, DEL, and the C1 range.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_C1_AND_DEL = re.compile(r"[\x7f-\x9f]")
# The C1 range that can start a sequence (\x90-\x9f), looked for in C: a Python loop
# over every character of the output cost more than the rest of rendering it.
_C1_STRING = re.compile(r"[\x90-\x9f]")


def strip_controls(text: str) -> str:
    """`text` without control sequences or control characters, newlines and tabs kept.

    A carriage return would let a line overwrite itself, so `\\r\\n` becomes `\\n` and
    any other `\\r` goes.
    """
    if text.isprintable():  # the common case, checked in C: nothing to strip
        return text
    text = text.replace("\r\n", "\n")
    if _ESC in text or _C1_STRING.search(text):
        text = _SEQUENCE.sub("", text)
    return _CONTROL.sub("", text)


def json_safe(encoded: str) -> str:
    """JSON text with DEL and C1 controls escaped as \\u00XX, so a terminal never sees them.

    `json.dumps(..., ensure_ascii=False)` escapes C0 controls but writes DEL and the C1
    range raw. They can only stand inside JSON strings, so escaping them keeps the
    document valid and every string exactly as it was.
    """
    return _C1_AND_DEL.sub(lambda match: f"\\u{ord(match.group()):04x}", encoded)
