"""What the Comfy Registry would publish: ``[tool.comfy]`` and the archive ``.comfyignore`` leaves.

``comfy node pack`` archives the git-tracked files minus ``.comfyignore`` (gitignore-style
patterns): one test reads that selection itself, one runs comfy-cli's own ``comfy node pack``
(offline, telemetry off) on a copy of the checkout and opens the archive it makes.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _published() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
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

    # a file deleted but not yet committed is still listed: only what is there is packed
    return [f for f in files if not ignored(f) and (REPO / f).is_file()]


def test_the_registry_metadata_is_complete():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    comfy, project = meta["tool"]["comfy"], meta["project"]
    assert {"PublisherId", "DisplayName", "Icon", "requires-comfyui"} <= set(comfy)
    assert comfy["DisplayName"] and comfy["requires-comfyui"].startswith(">=")
    assert project["classifiers"] and project["license"] and project["version"]


def test_the_archive_holds_the_pack_and_not_the_development_files():
    files = _published()
    template = "example_workflows/PAL 1 - Detect and preview artifacts"  # names hold spaces
    for needed in ("__init__.py", "nodes/__init__.py", "comfyui_pal/__init__.py",
                   "weights/pal_lite.safetensors", f"{template}.json", f"{template}.jpg",
                   "pyproject.toml", "LICENSE", "README.md"):  # fmt: skip
        assert needed in files, needed
    assert not [f for f in files if f.startswith(("tests/", "benchmarks/", ".ci/", ".github/"))]


def _comfy_cli() -> str:
    beside = Path(sys.executable).with_name("comfy")  # the test extra installs comfy-cli
    found = str(beside) if beside.is_file() else shutil.which("comfy")
    if found is None:
        pytest.skip("comfy-cli is not installed (pip install -e '.[test]' installs it)")
    return found


@pytest.mark.slow
def test_comfy_node_pack_makes_an_archive_of_the_pack_that_imports(tmp_path):
    files = _published()
    tree = tmp_path / "comfyui-pal"
    for name in subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.splitlines():  # fmt: skip
        if (REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    subprocess.run(["git", "init", "-q"], cwd=tree, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tree, check=True)
    env = {**os.environ, "HOME": str(tmp_path / "home")}  # comfy-cli's config stays here
    run = subprocess.run(
        [_comfy_cli(), "--skip-prompt", "--no-enable-telemetry", "node", "pack"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    with zipfile.ZipFile(tree / "node.zip") as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        assert archive.testzip() is None
        archive.extractall(tmp_path / "unpacked")
    assert sorted(names) == sorted(files)  # exactly the selection .comfyignore leaves
    unpacked = tmp_path / "unpacked"
    init, lib = unpacked / "__init__.py", unpacked / "comfyui_pal"
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('pack', {str(init)!r},\n"
        f"    submodule_search_locations=[{str(unpacked)!r}])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['pack'] = m\n"
        "spec.loader.exec_module(m)\n"
        "print(sys.modules['comfyui_pal'].__file__, len(m.NODE_CLASS_MAPPINGS))\n"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert imported.returncode == 0, imported.stderr
    library, nodes = imported.stdout.split()[-2:]
    assert Path(library).parent == lib and int(nodes) >= 11  # the archive's own library
