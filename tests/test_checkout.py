"""The suite runs in a checkout folder named like the project (``comfyui-pal``).

That folder holds the ComfyUI entry point ``__init__.py`` but is no importable package
name; pytest must neither import it nor pick up the editable install instead of the copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

WHERE_TEST = """
from pathlib import Path

import comfyui_pal


def test_the_copy_is_what_is_imported():
    assert Path(comfyui_pal.__file__).resolve().parents[1] == Path.cwd().resolve()
"""


def _checkout_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files of this checkout (what a clone would add)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout and git")
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    return [name for name in out.decode().split("\0") if name and (REPO / name).is_file()]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of this checkout in a folder named ``comfyui-pal``."""
    root = tmp_path_factory.mktemp("clone") / "comfyui-pal"
    for name in _checkout_files():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    return root


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_the_suite_collects_in_a_folder_named_comfyui_pal(checkout):
    run = _pytest(checkout, "--collect-only")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "ERROR" not in run.stdout, run.stdout[-3000:]
    assert " tests collected" in run.stdout


@pytest.mark.slow
def test_a_test_there_runs_and_imports_the_copys_own_library(checkout):
    (checkout / "tests" / "test_where.py").write_text(WHERE_TEST)
    run = _pytest(checkout, "tests/test_where.py")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
