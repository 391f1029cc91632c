"""Start a real ComfyUI server with this pack, for tests/test_real_comfy.py and the server soak.

Uses the ComfyUI tree and venv that ``../shared/comfy/comfy_harness.sh`` prepares (``--cpu``,
loopback only, a fresh ``--base-directory``, in-memory database).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    url: str
    pid: int
    run_dir: Path


@contextmanager
def comfyui_server(
    comfy_dir: Path,
    python: Path,
    run_dir: Path,
    extra_packs: tuple[Path, ...] = (),
    inputs: tuple[Path, ...] = (),
    startup_timeout: float = 240,
) -> Iterator[Server]:
    """A running server with this pack (and ``extra_packs``) in ``run_dir/custom_nodes`` and
    ``inputs`` copied into its input folder; stopped on exit. The log is ``run_dir/server.log``.
    """
    for sub in ("custom_nodes", "input", "output", "temp", "user", "models"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    for pack in (REPO, *extra_packs):
        name = "comfyui-pal" if pack == REPO else pack.name
        (run_dir / "custom_nodes" / name).symlink_to(pack, target_is_directory=True)
    for path in inputs:
        (run_dir / "input" / path.name).write_bytes(path.read_bytes())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port)]
    cmd += ["--disable-auto-launch", "--disable-api-nodes", "--base-directory", str(run_dir)]
    cmd += ["--database-url", "sqlite:///:memory:"]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", HF_HUB_OFFLINE="1")
    url = f"http://127.0.0.1:{port}"
    with open(run_dir / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=comfy_dir, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"ComfyUI exited at start-up; see {run_dir / 'server.log'}")
                try:
                    urllib.request.urlopen(url + "/system_stats", timeout=2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"ComfyUI did not start in {startup_timeout:.0f} s; see "
                            f"{run_dir / 'server.log'}"
                        ) from None
                    time.sleep(1)
            yield Server(url, proc.pid, run_dir)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
