"""What council keeps between runs: the SQLite history, its migrations, the recorder that
writes a run's events, resuming from it, and the statistics read from it.

Imports the engine's events and outcomes and config; never the endpoint client.
"""
