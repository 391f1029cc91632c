"""Fetch the official PAL4VST checkpoints (the ``download`` command, the loader's
"(download)" entries). Nothing here runs at import: only a call downloads.

The files are the ones the authors link in the Checkpoints table of their repository's
README (github.com/owenzlz/PAL4VST), on Google Drive: an mmseg ``.pth`` ("pytorch") and a
TorchScript ``end2end.pt`` per release. Drive answers a large file with a confirmation page
(a form, a ``confirm=`` link or a ``download_warning`` cookie, depending on its vintage);
``fetch`` follows redirects and that page, resumes a partial ``.NAME.part`` file with an HTTP
``Range`` request, and fails with ``DownloadError`` (keeping the part for the next try) when
the transfer stops early. ``download`` then checks the file is the released architecture
(read as data, never run: every key and shape of the Swin-B + UPerNet manifest, finite
weights), records its size and sha256 beside it (``NAME.json``), renames it into place
atomically and, on request, converts it to fp16 safetensors. The authors' licence terms apply
to these weights; they are never redistributed by this project.
"""

from __future__ import annotations

import html
import http.client
import http.cookiejar
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DRIVE = "https://drive.usercontent.google.com/download"
SOURCE = "https://github.com/owenzlz/PAL4VST#checkpoints"
FORMATS = ("pytorch", "torchscript")
CHUNK = 1 << 20
MAX_PAGE = 2 << 20  # a confirmation page larger than this is not one

Progress = Callable[[int, int], None]  # (bytes done, bytes in all or 0 when unknown)


class DownloadError(RuntimeError):
    """A download that did not give the checkpoint: what happened and what to do."""


@dataclass(frozen=True)
class Release:
    """One published checkpoint: its name, what it is for, its Drive file ids."""

    name: str
    title: str
    pytorch: str
    torchscript: str

    def file_name(self, fmt: str) -> str:
        return f"pal4vst_{self.name}.pth" if fmt == "pytorch" else f"pal4vst_{self.name}_end2end.pt"


RELEASES = {
    r.name: r
    for r in (
        Release(
            "unified",
            "trained on all synthesis tasks (the paper's general model)",
            "1414RYir0Q58Ix2CKrZoDmA5iilx8Gopb",
            "1bGjEKquWa4cZJ6v52NoRfViwKK15U7vd",
        ),
        Release(
            "stylegan2",
            "specialist for StyleGAN2 images",
            "1sHWQLwpt1eM36ttjdIdXLQIuLYftJoWR",
            "1FYId9CSmP0rEE1c-2E7aGaPD0WuRdX6o",
        ),
        Release(
            "shadow",
            "specialist for shadow removal (the unified model is weak there)",
            "1AOuSwSFwN5X1u6SYni8KehhjFquBpJ6Q",
            "1omx3lhYNRjJiPY49HoknVUwiy-J0uxcr",
        ),
    )
}


def release(name: str) -> Release:
    if name not in RELEASES:
        raise ValueError(f"no PAL4VST release {name!r}; choose one of {', '.join(RELEASES)}")
    return RELEASES[name]


def _opener() -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]:
    """An opener for http(s) only (no file:// or ftp:// however a redirect points) that keeps
    cookies across the requests of one download (Drive's confirmation may set one)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.HTTPCookieProcessor(jar),
    ):
        opener.add_handler(handler)
    return opener, jar


def confirm_url(page: str, page_url: str, cookies: dict[str, str]) -> str | None:
    """The URL that Drive's "can't scan this file for viruses" page confirms to: its download
    form (action + hidden inputs), a ``confirm=`` link in it, or the page's own URL with the
    token of a ``download_warning`` cookie; None when the page is none of these (a quota or
    permission page)."""
    form = re.search(r"<form[^>]*id=\"download-form\"[^>]*>(.*?)</form>", page, re.S | re.I)
    form = form or re.search(
        r"<form[^>]*action=\"[^\"]*download[^\"]*\"[^>]*>(.*?)</form>", page, re.S | re.I
    )
    if form:
        action = re.search(r"action=\"([^\"]+)\"", form.group(0), re.I)
        fields = re.findall(
            r"<input[^>]*type=\"hidden\"[^>]*name=\"([^\"]+)\"[^>]*value=\"([^\"]*)\"",
            form.group(1),
            re.I,
        )
        if action:
            target = urllib.parse.urljoin(page_url, html.unescape(action.group(1)))
            query = urllib.parse.urlencode([(k, html.unescape(v)) for k, v in fields])
            return f"{target}?{query}" if query else target
    link = re.search(r"href=\"([^\"]*confirm=[^\"]+)\"", page, re.I)
    if link:
        return urllib.parse.urljoin(page_url, html.unescape(link.group(1)))
    token = next((v for k, v in cookies.items() if k.startswith("download_warning")), None)
    if token:
        sep = "&" if "?" in page_url else "?"
        return f"{page_url}{sep}confirm={urllib.parse.quote(token)}"
    return None


def _page_title(page: str) -> str:
    found = re.search(r"<title>(.*?)</title>", page, re.S | re.I)
    return " ".join(html.unescape(found.group(1)).split()) if found else page[:80]


def fetch(url: str, part: Path, progress: Progress | None = None, timeout: float = 60) -> None:
    """Download ``url`` into ``part``, going on from the bytes already there.

    Raises ``DownloadError`` when the server answers a web page that is no confirmation,
    an HTTP error, or the transfer stops before the announced size (``part`` is kept).
    """
    opener, jar = _opener()
    for _ in range(5):  # confirmation pages followed
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "comfyui-pal", **({"Range": f"bytes={have}-"} if have else {})}
        try:
            resp = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # nothing after what we have: the part is whole
                return
            raise DownloadError(f"{url} answered HTTP {exc.code} {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"cannot reach {url} ({exc}); check the connection") from None
        if resp is None:  # no handler took it (not an http(s) URL)
            raise DownloadError(f"cannot download {url}: give an http(s) URL")
        with resp:
            if resp.headers.get_content_type() == "text/html":
                page = resp.read(MAX_PAGE).decode("utf-8", "replace")
                cookies = {c.name: c.value for c in jar}
                nxt = confirm_url(page, resp.url, cookies)
                if nxt is None:
                    raise DownloadError(
                        f"the server sent a web page instead of the file ({_page_title(page)!r}); "
                        "Drive says this when a file was downloaded too often today: try later, "
                        "or download it in a browser and put it in models/pal"
                    )
                url = nxt
                continue
            _save(resp, part, have, progress)
            return
    raise DownloadError(f"{url} kept answering confirmation pages; download it in a browser")


def _save(resp, part: Path, have: int, progress: Progress | None) -> None:
    """Write the body of ``resp`` to ``part``: appended after ``have`` bytes for a 206
    answer that starts there, from the start otherwise."""
    span = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range") or "")
    if resp.status == 206 and span and int(span.group(1)) == have:
        total = int(span.group(2)) if span.group(2) != "*" else 0
        mode = "ab"
    else:  # the server ignored the range: start over
        have, mode = 0, "wb"
        size = resp.headers.get("Content-Length") or ""
        total = int(size) if size.isdigit() else 0
    done = have
    with open(part, mode) as f:
        while True:
            try:
                block = resp.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:  # the transfer, not our disk
                raise DownloadError(_interrupted(done, total, exc)) from None
            if not block:
                break
            f.write(block)
            done += len(block)
            if progress:
                progress(done, total)
    if total and done < total:
        raise DownloadError(_interrupted(done, total, "connection closed"))


def _interrupted(done: int, total: int, why: object) -> str:
    of = f" of {total / 2**20:.1f} MiB" if total else ""
    return (
        f"the transfer stopped after {done / 2**20:.1f} MiB{of} ({why}); run the same "
        "command again to resume it"
    )


def verify(path: Path, fmt: str, expected: dict | None = None) -> dict:
    """Check that ``path`` is the released PAL4VST architecture in format ``fmt``: read as
    data (never run), every key and shape of Swin-B + UPerNet (``expected`` config, default
    the released one), finite weights. Returns the checkpoint's config; raises
    ``DownloadError`` naming what the file is instead."""
    from ..models.loading import build_model, read_checkpoint
    from ..models.swin_upernet import ARCH, SwinUperNetConfig

    want = expected or SwinUperNetConfig().to_dict()
    wanted_format = "mmseg-pth" if fmt == "pytorch" else "torchscript"
    try:
        ckpt = read_checkpoint(path)
        if ckpt.arch != ARCH or ckpt.source_format != wanted_format:
            raise ValueError(f"a {ckpt.source_format} file of a {ckpt.arch} model")
        if ckpt.config != want:
            diff = {k: v for k, v in ckpt.config.items() if want.get(k) != v}
            raise ValueError(f"a Swin + UPerNet of another size ({diff})")
        build_model(ckpt)  # every key and shape, finite weights
    except (ValueError, OSError) as exc:
        raise DownloadError(
            f"the downloaded file is not the PAL4VST {fmt} checkpoint: {exc}"
        ) from None
    return ckpt.config


def download(
    name: str,
    to: Path,
    fmt: str = "pytorch",
    *,
    base: str = DRIVE,
    safetensors: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
    expected: dict | None = None,
) -> Path:
    """Download release ``name`` (``RELEASES``) as ``fmt`` into folder ``to`` and return the
    checkpoint's path (the fp16 ``.safetensors`` conversion with ``safetensors``).

    A file already in place is kept (and returned) unless ``overwrite``; a partial
    ``.NAME.part`` from an interrupted try is resumed; a file that fails ``verify`` is
    removed. ``base`` is the Drive download endpoint (a mirror or a test server).
    """
    rel = release(name)
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: choose {' or '.join(FORMATS)}")
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    dst = to / rel.file_name(fmt)
    out = dst.with_suffix(".safetensors") if safetensors else dst
    if dst.exists() and not overwrite:
        log(f"{dst} is already there (pass --overwrite to download it again)")
    else:
        file_id = rel.pytorch if fmt == "pytorch" else rel.torchscript
        part = to / f".{dst.name}.part"
        if overwrite and part.exists():
            part.unlink()
        t0 = time.monotonic()
        fetch(
            f"{base}?{urllib.parse.urlencode({'id': file_id, 'export': 'download'})}",
            part,
            progress,
        )
        try:
            config = verify(part, fmt, expected)
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
        from ..models.loading import sha256_file

        record = {
            "release": name,
            "format": fmt,
            "source": SOURCE,
            "drive_id": file_id,
            "bytes": part.stat().st_size,
            "sha256": sha256_file(part),
            "config": config,
            "downloaded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "licence": "the PAL4VST authors' terms (see their repository); not redistributed",
        }
        os.replace(part, dst)
        (to / f"{dst.name}.json").write_text(json.dumps(record, indent=1))
        log(
            f"{dst}: {record['bytes'] / 2**20:.1f} MiB in {time.monotonic() - t0:.0f} s, "
            f"sha256 {record['sha256'][:16]}..."
        )
    if safetensors and (overwrite or not out.exists()):
        from ..models.loading import convert

        convert(dst, out, half=True, overwrite=overwrite)
        log(f"{out}: fp16 safetensors")
    return out
