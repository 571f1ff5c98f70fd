"""Settings and the files they come from: paths, YAML with positions, checks, trust, catalogs of
personas and presets, endpoint profiles, the embedded model's facts, and the one resolver
(flag > preset > env > project > user > default).

The bottom layer: imports nothing of council but `council.config.*` and `council.errors`,
and nothing outside the standard library but yaml and platformdirs; never typer, never
the local server manager (`council.endpoint.local` reads its facts from `local_model`).
"""
