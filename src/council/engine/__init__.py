"""Running councils: the data model (outcomes, verdicts, results), events, prompts, plans,
calls, the oracle and deliberation engines.

Imports the endpoint client and config; never render, store, app or cli.
"""
