"""Rank image files by PAR into a folder of renamed copies (the ``rank`` command).

Scores are saved to ``scores.json`` after every image (keyed by path, with size and mtime),
so an interrupted run resumes without detecting again; copies are named
``NNN_parX.XXX_<name>`` (best first) and listed in ``ranking.csv``. Existing files are never
replaced unless ``overwrite``: an identical copy already there counts as done.
"""

from __future__ import annotations

import csv
import filecmp
import io
import json
from collections.abc import Callable
from pathlib import Path

from ..pipelines.curate import rank
from .images import write_atomic
from .journal import identity


def score_files(
    files: list[Path],
    out_dir: Path,
    score: Callable[[Path], float],
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, float], list[str]]:
    """PAR of every readable file (``{path: par}``) and the files that failed, resumably."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_path = out_dir / "scores.json"
    cache = json.loads(cache_path.read_text()) if resume and cache_path.exists() else {}
    scores, failed = {}, []
    for k, path in enumerate(files, 1):
        key, ident = str(path), identity(path)
        hit = cache.get(key)
        if hit is not None and hit["file"] == ident:
            scores[key] = hit["par"]
            log(f"[{k}/{len(files)}] {path.name}: PAR {hit['par']:.4f} (scored before)")
            continue
        try:
            value = float(score(path))
        except (ValueError, OSError) as exc:
            log(f"[{k}/{len(files)}] FAILED {path}: {exc}")
            failed.append(key)
            continue
        scores[key] = value
        cache[key] = {"par": value, "file": ident}
        write_atomic(cache_path, json.dumps(cache, indent=1))
        log(f"[{k}/{len(files)}] {path.name}: PAR {value:.4f}")
    return scores, failed


def _drop_stale(out_dir: Path, current: set[str], log: Callable[[str], None]) -> None:
    """Remove the copies an earlier ranking (its ``ranking.csv``) made that the new one no
    longer lists (the inputs or their scores changed), but only while they are still
    byte-identical to their source: a copy edited since, or whose source is gone, is kept."""
    old = out_dir / "ranking.csv"
    if not old.is_file():
        return
    try:
        rows = list(csv.DictReader(io.StringIO(old.read_text())))
    except (OSError, UnicodeDecodeError, csv.Error):
        return
    for row in rows:
        name, src = row.get("copy") or "", Path(row.get("image") or "")
        copy = out_dir / name
        if not name or name in current or Path(name).name != name or not copy.is_file():
            continue
        if src.is_file() and filecmp.cmp(src, copy, shallow=False):
            copy.unlink()
            log(f"removed {name}: an earlier ranking's copy, now ranked elsewhere")
        else:
            log(f"kept {name}: an earlier ranking's copy whose source changed or is gone")


def write_ranking(
    scores: dict[str, float],
    out_dir: Path,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Copy the files best first as ``NNN_parX.XXX_<name>`` and write ``ranking.csv``;
    copies of an earlier ranking that the new one does not list are removed (``_drop_stale``).

    Raises ``FileExistsError`` before copying anything if a different file already holds one
    of the names (and ``overwrite`` is off).
    """
    names = list(scores)
    order = rank([scores[n] for n in names]).tolist() if names else []
    width = max(3, len(str(len(names))))
    rows = []
    for pos, i in enumerate(order, 1):
        src = Path(names[i])
        dst = out_dir / f"{pos:0{width}d}_par{scores[names[i]]:.3f}_{src.name}"
        rows.append(
            {"rank": pos, "par": round(scores[names[i]], 6), "image": str(src), "copy": dst}
        )
    clashes = [
        r["copy"]
        for r in rows
        if r["copy"].exists() and not filecmp.cmp(r["image"], r["copy"], shallow=False)
    ]
    if clashes and not overwrite:
        raise FileExistsError(
            f"{len(clashes)} ranked name(s) already hold other files, e.g. {clashes[0]}; use "
            "another --out folder or --overwrite"
        )
    for r in rows:
        if r["copy"].exists() and r["copy"] not in clashes:
            continue  # an identical copy from an earlier run
        write_atomic(r["copy"], Path(r["image"]).read_bytes())
    _drop_stale(out_dir, {r["copy"].name for r in rows}, log)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["rank", "par", "image", "copy"])
    writer.writeheader()
    writer.writerows({**r, "copy": r["copy"].name} for r in rows)
    write_atomic(out_dir / "ranking.csv", buf.getvalue())
    return rows
