"""`council eval`: strategies compared on labelled questions (accuracy, cost).

    command.py     items x strategies run in one run context, scored, written to --out
    strategies.py  the strategies (a registry: each one's plan and the answer it gives)
    setup.py       what produced a line (each strategy's setup), and whether a stored line
                   is this council's, to be asked again, or re-scored

Nothing is imported here: the CLI loads `command` when `council eval` runs.
"""
