"""`council batch`: the same council over every item of a file, resumable, within limits.

    command.py  flags -> a plan per item -> the fan-out engine -> one line per item in --out
    items.py    input files (JSONL, CSV, text, stdin; templates; bad lines), read as streamed
    output.py   the --out file: whole lines, resume sets, --ordered, created 0600, one writer
    files.py    request lines from the plans and results read back by custom_id
    api.py      --via batch-api: the provider's Batch API (split, upload, poll, collect)
    tools.py    `council batch prepare` and `council batch collect`

Nothing is imported here: the CLI loads the module a command needs, when it runs.
"""
