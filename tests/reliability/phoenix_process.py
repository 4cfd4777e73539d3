"""A real Arize Phoenix server that a test can kill and restart on the same ports.

(The session-wide Phoenix of the other tests cannot be killed; this one is the
test's own, with its own working directory, so its SQLite data survives a
restart like a real deployment's volume would.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PhoenixProcess:
    def __init__(self, workdir: Path, http_port: int = 0, grpc_port: int = 0) -> None:
        self.workdir = workdir
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def start(self) -> PhoenixProcess:
        env = {
            **os.environ,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.http_port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_WORKING_DIR": str(self.workdir),
        }
        log = (self.workdir / "phoenix.log").open("ab")
        self._process = subprocess.Popen(
            [str(Path(sys.executable).parent / "phoenix"), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"phoenix exited: see {self.workdir / 'phoenix.log'}")
            try:
                if httpx.get(f"{self.http_url}/v1/projects", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)  # a subprocess start-up: nothing to wait on but the port
        self.kill()
        raise RuntimeError(f"phoenix did not start in {START_TIMEOUT_S}s")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no graceful shutdown."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(30)

    def spans(self, project: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.http_url}/v1/projects/{project}/spans", params={"limit": 1000}, timeout=10
        )
        if response.status_code == 404:
            return []
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data
