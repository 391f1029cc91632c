"""``download`` against a stand-in Google Drive on 127.0.0.1 (never the network).

The stand-in answers like Drive does for a large file: ``/uc`` redirects to ``/download``,
which answers a "can't scan for viruses" page (a form, a ``confirm=`` link or a
``download_warning`` cookie) before the file; it honours ``Range`` and can cut a transfer
short, serve a quota page, or serve the wrong file. The file is the mmseg-made reduced
PAL4VST checkpoint of ``../shared/fixtures`` (the released architecture at a small size),
so the check is the real one with that size as the expected config.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import FIXTURES, REPO, requires_fixtures

from comfyui_pal import cli
from comfyui_pal.io import download as dl

pytestmark = requires_fixtures()
PAGE_FORM = (
    "<html><head><title>Google Drive - Virus scan warning</title></head><body>"
    '<form id="download-form" action="{base}/download" method="get">'
    '<input type="hidden" name="id" value="{id}"><input type="hidden" name="export" '
    'value="download"><input type="hidden" name="confirm" value="t"><input type="hidden" '
    'name="uuid" value="u-1"></form></body></html>'
)
PAGE_LINK = '<html><a href="/download?id={id}&amp;export=download&amp;confirm=AbC">Download</a>'
QUOTA = "<html><title>Google Drive - Quota exceeded</title><p>Too many users</p></html>"


class FakeDrive:
    """Serves ``files`` ({drive id: bytes}) the way Drive does; see the module docstring.
    ``style``: "form", "link" or "cookie" confirmation; ``cut``: bytes after which the next
    transfer drops; ``quota``: answer the quota page."""

    def __init__(self, files: dict[str, bytes], style: str = "form") -> None:
        self.files, self.style, self.cut, self.quota = files, style, None, False
        self.ranges: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _html(self, page: str, cookie: str | None = None) -> None:
                data = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                if cookie:
                    self.send_header("Set-Cookie", cookie)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path, _, query = self.path.partition("?")
                args = dict(re.findall(r"([^&=]+)=([^&]*)", query))
                if path == "/uc":
                    self.send_response(303)
                    self.send_header("Location", f"{owner.url}/download?{query}")
                    self.end_headers()
                    return
                fid = args.get("id", "")
                if path != "/download" or fid not in owner.files:
                    self.send_error(404)
                    return
                if owner.quota:
                    return self._html(QUOTA)
                confirmed = "confirm" in args
                if not confirmed and owner.style == "form":
                    return self._html(PAGE_FORM.format(base=owner.url, id=fid))
                if not confirmed and owner.style == "link":
                    return self._html(PAGE_LINK.format(id=fid))
                if not confirmed:
                    return self._html(QUOTA, cookie="download_warning_1=AbC; Path=/")
                data = owner.files[fid]
                ask = self.headers.get("Range")
                owner.ranges.append(ask)
                start = int(re.match(r"bytes=(\d+)-", ask).group(1)) if ask else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if owner.cut is not None:
                    body, owner.cut = body[: owner.cut], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.base = f"{self.url}/download"  # the download endpoint, as DRIVE
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


UNIFIED = dl.RELEASES["unified"]
RELEASED_VERIFY = dl.verify  # before any test narrows it to the fixtures' size


@pytest.fixture
def reduced(monkeypatch) -> tuple[bytes, bytes]:
    """(the reduced .pth, the reduced end2end.pt), with the check expecting their size."""
    from comfyui_pal.models.loading import read_checkpoint

    config = read_checkpoint(FIXTURES / "reduced.pth").config
    real_verify = dl.verify
    monkeypatch.setattr(
        dl, "verify", lambda path, fmt, expected=None: real_verify(path, fmt, config)
    )
    return (FIXTURES / "reduced.pth").read_bytes(), (FIXTURES / "end2end_reduced.pt").read_bytes()


@pytest.fixture
def drive(reduced):
    servers = []

    def make(style: str = "form", files: dict | None = None) -> FakeDrive:
        pth, ts = reduced
        servers.append(FakeDrive(files or {UNIFIED.pytorch: pth, UNIFIED.torchscript: ts}, style))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.mark.parametrize("style", ["form", "link", "cookie"])
def test_redirects_and_the_confirmation_page_lead_to_a_checked_recorded_file(
    drive, tmp_path, style
):
    server = drive(style)
    seen = []
    path = dl.download(
        "unified", tmp_path, base=f"{server.url}/uc", progress=lambda d, t: seen.append((d, t))
    )
    data = server.files[UNIFIED.pytorch]
    assert path == tmp_path / "pal4vst_unified.pth" and path.read_bytes() == data
    record = json.loads((tmp_path / "pal4vst_unified.pth.json").read_text())
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["bytes"] == len(data)
    assert record["release"] == "unified" and "owenzlz/PAL4VST" in record["source"]
    assert seen[-1] == (len(data), len(data))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pal4vst_unified.pth",
        "pal4vst_unified.pth.json",
    ]


def test_an_interrupted_transfer_is_kept_and_resumed_from_where_it_stopped(drive, tmp_path):
    server = drive()
    data = server.files[UNIFIED.pytorch]
    server.cut = len(data) // 3
    with pytest.raises(dl.DownloadError, match=r"stopped after .* run the same command again"):
        dl.download("unified", tmp_path, base=server.base)
    part = tmp_path / ".pal4vst_unified.pth.part"
    assert part.stat().st_size == len(data) // 3 and not (tmp_path / "pal4vst_unified.pth").exists()
    path = dl.download("unified", tmp_path, base=server.base)
    assert server.ranges[-1] == f"bytes={len(data) // 3}-"  # only the rest was asked for
    assert path.read_bytes() == data and not part.exists()


def test_the_torchscript_release_and_the_fp16_conversion(drive, tmp_path):
    from comfyui_pal.models.loading import read_checkpoint

    server = drive()
    path = dl.download("unified", tmp_path, "torchscript", base=server.base, safetensors=True)
    assert path == tmp_path / "pal4vst_unified_end2end.safetensors"
    assert (tmp_path / "pal4vst_unified_end2end.pt").read_bytes() == server.files[
        UNIFIED.torchscript
    ]
    ckpt = read_checkpoint(path)
    assert ckpt.metadata["dtype"] == "float16" and ckpt.arch == "swin_upernet"


def test_a_quota_page_or_the_wrong_file_is_named_and_nothing_is_left(drive, tmp_path):
    server = drive()
    server.quota = True
    with pytest.raises(dl.DownloadError, match="Quota exceeded"):
        dl.download("unified", tmp_path / "a", base=server.base)
    shipped = (REPO / "weights" / "pal_lite.safetensors").read_bytes()
    wrong = drive(files={UNIFIED.pytorch: shipped, UNIFIED.torchscript: b"PK\x03\x04junk"})
    with pytest.raises(dl.DownloadError, match="not the PAL4VST pytorch checkpoint: a safetensors"):
        dl.download("unified", tmp_path / "b", base=wrong.base)
    with pytest.raises(dl.DownloadError, match="not the PAL4VST torchscript checkpoint"):
        dl.download("unified", tmp_path / "c", "torchscript", base=wrong.base)
    for folder in ("a", "b", "c"):
        assert list((tmp_path / folder).iterdir()) == []


def test_the_check_expects_the_released_size_of_the_architecture():
    with pytest.raises(dl.DownloadError, match="another size"):
        RELEASED_VERIFY(FIXTURES / "reduced.pth", "pytorch")  # Swin-B expected, a tiny one read
    with pytest.raises(dl.DownloadError, match="a torchscript file"):
        RELEASED_VERIFY(FIXTURES / "end2end_reduced.pt", "pytorch")


def test_an_existing_checkpoint_is_kept_and_the_cli_names_problems(drive, tmp_path, capsys):
    server = drive()
    mine = tmp_path / "pal4vst_unified.pth"
    mine.write_bytes(b"the user's own file")
    args = ["download", "unified", "--to", str(tmp_path), "--base-url", server.base]
    assert cli.main(args) == 0
    assert (
        mine.read_bytes() == b"the user's own file" and "already there" in capsys.readouterr().out
    )
    assert cli.main([*args, "--overwrite"]) == 0
    assert mine.read_bytes() == server.files[UNIFIED.pytorch]
    server.quota = True
    assert cli.main(["download", "shadow", "--to", str(tmp_path), "--base-url", server.base]) == 1
    assert "download failed" in capsys.readouterr().err
    assert (
        cli.main(
            ["download", "stylegan2", "--to", str(tmp_path), "--base-url", "http://127.0.0.1:9"]
        )
        == 1
    )
    assert "cannot reach" in capsys.readouterr().err


def test_the_loader_offers_the_releases_and_fetches_one_when_chosen(
    drive, pack, tmp_path, monkeypatch
):
    server = drive()
    monkeypatch.setenv("PAL_MODELS_DIR", str(tmp_path))
    real_download = dl.download
    monkeypatch.setattr(
        dl, "download", lambda *a, **kw: real_download(*a, **{**kw, "base": server.base})
    )
    loader = pack.NODE_CLASS_MAPPINGS["PALModelLoader"]
    choices = loader.INPUT_TYPES()["required"]["model_name"][0]
    assert {"PAL4VST unified (download)", "PAL4VST stylegan2 (download)"} <= set(choices)
    assert (
        loader.IS_CHANGED("PAL4VST unified (download)", "cpu", "auto")
        == "PAL4VST unified (download)"
    )
    (model,) = loader().load("PAL4VST unified (download)", "cpu", "auto")
    assert model.model.arch == "swin_upernet" and (tmp_path / "pal4vst_unified.pth").is_file()
    choices = loader.INPUT_TYPES()["required"]["model_name"][0]
    assert "pal4vst_unified.pth" in choices and "PAL4VST unified (download)" not in choices
