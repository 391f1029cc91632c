"""Per-image results of a Ray folder run, as Parquet parts that a resumed run reads back.

``<out>/results/part-00000.parquet``, ``part-00001.parquet``, ... are each written whole and
atomically (temp file + rename) by the driver as results stream in: a driver killed mid-run
loses at most the part it was filling, and ``--resume`` skips every file a written part holds
unchanged. A row (``SCHEMA``): ``image`` (the path as given), ``bytes`` and ``mtime_ns`` (its
identity when read, ``io.journal.identity``), ``width`` / ``height`` (px), ``par`` (0..1),
``regions`` (count), ``seconds`` (decode + score + outputs), ``error`` (null when scored; the
reason when the file failed). A later row of an image supersedes earlier ones.

``claimed.json`` lists the files a run writes outputs for while it runs, so a resumed run
knows which existing outputs are an interrupted run's own (and may be replaced).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..io.images import write_atomic
from ..io.journal import identity

SCHEMA = pa.schema(
    [
        ("image", pa.string()),
        ("bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("par", pa.float64()),
        ("regions", pa.int32()),
        ("seconds", pa.float64()),
        ("error", pa.string()),
    ]
)
PART = re.compile(r"part-(\d{5,})\.parquet")


class Results:
    """The results folder of a run into ``out_dir``.

    Raises ``FileExistsError`` when an earlier run's parts are there and neither ``resume``
    (continue: its rows are read) nor ``overwrite`` (start over: its parts are removed) is
    set, so a second run never mixes with, or silently drops, the first one's results.
    """

    def __init__(self, out_dir: Path, resume: bool, overwrite: bool) -> None:
        self.folder = Path(out_dir) / "results"
        self.claims = self.folder / "claimed.json"
        parts = sorted(
            (p for p in self.folder.glob("part-*.parquet") if PART.fullmatch(p.name)),
            key=lambda p: int(PART.fullmatch(p.name)[1]),
        )
        if parts and not resume:
            if not overwrite:
                raise FileExistsError(
                    f"{self.folder} holds the results of an earlier run: pass --resume to "
                    "continue it, --overwrite to start over, or choose another --out"
                )
            for p in [*parts, self.claims]:
                p.unlink(missing_ok=True)
            parts = []
        self.rows: dict[str, dict] = {}
        for p in parts:
            for row in _read(p):
                self.rows[row["image"]] = row
        self.next = int(PART.fullmatch(parts[-1].name)[1]) + 1 if parts else 0
        self.claimed: set[str] = set()
        if resume and self.claims.is_file():
            self.claimed = set(json.loads(self.claims.read_text()))

    def scored(self, image: str, identity: list[int]) -> dict | None:
        """The stored row of ``image`` if it was scored (no error) with this ``identity``
        (``[bytes, mtime_ns]``), else None."""
        row = self.rows.get(image)
        if row is None or row["error"] is not None:
            return None
        return row if [row["bytes"], row["mtime_ns"]] == identity else None

    def current(self, files: list[Path]) -> dict[str, dict]:
        """The rows of the ``files`` scored with their present identity, by path (as given)
        in the order of ``files``."""
        rows = {str(p): self.scored(str(p), identity(p)) for p in files}
        return {k: row for k, row in rows.items() if row is not None}

    def write(self, rows: list[dict]) -> Path:
        """Save ``rows`` (``SCHEMA``'s fields) as the next part, atomically."""
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        name = f"part-{self.next:05d}.parquet"
        path = write_atomic(self.folder / name, buf.getvalue().to_pybytes())
        self.next += 1
        for row in rows:
            self.rows[row["image"]] = row
        return path

    def claim(self, images: list[str]) -> None:
        """Record that this run writes the outputs of ``images`` (with the earlier claims)."""
        self.claimed |= set(images)
        write_atomic(self.claims, json.dumps(sorted(self.claimed)))

    def release(self) -> None:
        """Drop the claims: the run finished, every output it wrote is in a part."""
        self.claimed = set()
        self.claims.unlink(missing_ok=True)


def _read(path: Path) -> list[dict]:
    """The rows of one part; a ``ValueError`` naming it when it is not one of ours."""
    try:
        table = pq.read_table(path)
        if not set(SCHEMA.names) <= set(table.column_names):
            raise ValueError(f"columns {table.column_names}, not {SCHEMA.names}")
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise ValueError(
            f"{path} is not a results part this tool wrote ({exc}): move it away or pass "
            "--overwrite instead of --resume"
        ) from None
    return table.select(SCHEMA.names).to_pylist()
