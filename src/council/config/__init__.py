"""Settings and the files they come from: paths, YAML with positions, checks, trust, personas,
presets, endpoint profiles, and the one resolver (flag > preset > env > project > user > default).

The bottom layer: imports nothing of council but `council.errors`, never typer, never
the local server manager.
"""
