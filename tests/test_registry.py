"""What the Comfy Registry would publish: ``[tool.comfy]`` and the archive ``.comfyignore`` leaves.

``comfy node pack`` archives the git-tracked files minus ``.comfyignore`` (gitignore-style
patterns); this checks the same selection without comfy-cli.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess

import pytest
from conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _published() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    patterns = [
        line.strip()
        for line in (REPO / ".comfyignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        for pat in patterns:
            if pat.endswith("/") and (path.startswith(pat) or f"/{pat}" in f"/{path}"):
                return True
            if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path.rsplit("/", 1)[-1], pat):
                return True
        return False

    return [f for f in files if not ignored(f)]


def test_the_registry_metadata_is_complete():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    comfy, project = meta["tool"]["comfy"], meta["project"]
    assert {"PublisherId", "DisplayName", "Icon", "requires-comfyui"} <= set(comfy)
    assert comfy["DisplayName"] and comfy["requires-comfyui"].startswith(">=")
    assert project["classifiers"] and project["license"] and project["version"]


def test_the_archive_holds_the_pack_and_not_the_development_files():
    files = _published()
    for needed in ("__init__.py", "nodes/__init__.py", "comfyui_pal/__init__.py",
                   "weights/pal_lite.safetensors", "example_workflows/01_pal_detect_preview.json",
                   "pyproject.toml", "LICENSE", "README.md"):  # fmt: skip
        assert needed in files, needed
    assert not [f for f in files if f.startswith(("tests/", "benchmarks/", ".ci/", ".github/"))]
