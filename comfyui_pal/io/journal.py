"""A per-image report saved after every image, so an interrupted folder run resumes.

``report.json`` (and ``report.csv``) are rewritten atomically after each image: a run killed at
any point leaves the report of every image finished so far. Before an image's outputs are
written its row is marked ``pending``; a resumed run redoes pending images (replacing only the
outputs that image's interrupted attempt left), skips finished ones whose input file is
unchanged (size and mtime) and whose outputs are all there, and writes the rows in input
order, so the final report is the one an uninterrupted run writes.

Layout of a row: the command's own fields plus ``image`` (the input path), ``input``
(``[bytes, mtime_ns]``) and ``status`` (``done`` or ``pending``; only ``done`` rows are
written to the CSV).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .images import write_atomic

REPORT = "report.json"


def identity(path: Path) -> list[int]:
    """``[size in bytes, mtime in ns]`` of ``path``: what says a file changed."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


class Journal:
    """The report of a folder run in ``out_dir``, saved as it goes.

    ``fields`` are the CSV columns. Raises ``FileExistsError`` when a report from an earlier
    run is there and neither ``resume`` (continue it) nor ``overwrite`` (start over) is set,
    so a second run never silently replaces the first one's report.
    """

    def __init__(self, out_dir: Path, fields: list[str], resume: bool, overwrite: bool) -> None:
        self.out_dir, self.fields = Path(out_dir), fields
        self.path = self.out_dir / REPORT
        self.rows: dict[str, dict] = {}
        if self.path.exists():
            if not (resume or overwrite):
                raise FileExistsError(
                    f"{self.path} holds the report of an earlier run: pass --resume to continue "
                    "it, --overwrite to start over, or choose another --out"
                )
            if resume:
                self.rows = {r["image"]: r for r in self._load()}

    def _load(self) -> list[dict]:
        try:
            rows = json.loads(self.path.read_text())
            if not isinstance(rows, list) or not all("image" in r for r in rows):
                raise ValueError("not a list of rows with an 'image'")
        except ValueError as exc:
            raise ValueError(
                f"{self.path} is not a report this tool wrote ({exc}): move it away or pass "
                "--overwrite instead of --resume"
            ) from None
        return rows

    def finished(self, path: Path, outputs: list[Path]) -> dict | None:
        """The earlier row of ``path`` if that run finished it, the input is unchanged and
        every one of ``outputs`` is still there; else None (the image must be done)."""
        row = self.rows.get(str(path))
        if row is None or row.get("status", "done") != "done":
            return None
        if row.get("input") != identity(path) or not all(p.exists() for p in outputs):
            return None
        return row

    def interrupted(self, path: Path) -> bool:
        """Whether an earlier attempt at ``path`` was cut off while writing its outputs (so
        they are this run's own, partly written, and may be replaced)."""
        row = self.rows.get(str(path))
        return row is not None and row.get("status") == "pending"

    def start(self, path: Path) -> None:
        """Mark ``path`` as being written, before its first output file."""
        self.rows[str(path)] = {"image": str(path), "status": "pending"}
        self._save()

    def record(self, path: Path, row: dict) -> dict:
        """Save ``row`` (the command's fields) as the finished result of ``path``."""
        full = {"image": str(path), **row, "input": identity(path), "status": "done"}
        self.rows[str(path)] = full
        self._save()
        return full

    def forget(self, path: Path) -> None:
        """Drop ``path``'s row (it failed): the report lists only what exists."""
        if self.rows.pop(str(path), None) is not None:
            self._save()

    def finish(self, order: list[Path]) -> None:
        """Write the final report, rows in ``order`` (then rows of other earlier inputs)."""
        first = [str(p) for p in order if str(p) in self.rows]
        rest = [k for k in self.rows if k not in set(first)]
        self.rows = {k: self.rows[k] for k in first + rest}
        self._save()

    def _save(self) -> None:
        rows = list(self.rows.values())
        write_atomic(self.path, json.dumps(rows, indent=1))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(r for r in rows if r.get("status") == "done")
        write_atomic(self.out_dir / "report.csv", buf.getvalue())
