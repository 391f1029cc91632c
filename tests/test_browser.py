"""The templates in ComfyUI's real frontend: a real ComfyUI server with this pack, opened in
headless Chromium through Playwright (skipped unless ``COMFY_MIRROR`` is set as for
test_real_comfy.py, Playwright is installed and Chromium is at ``CHROMIUM``, default
/usr/bin/chromium: ``apt-get install chromium``, ``pip install playwright``; no
``playwright install`` needed).

Every template opens from the template browser with its thumbnail, without a missing-node
dialog or an error from the pack, keeps every widget value, shows its nodes at the saved
sizes without overlaps and opens at a readable zoom; templates 1 and 3 run from the Run button
and show their image and text; a node's help panel (the selection toolbox's info button)
shows its page with its picture. Screenshots land in the test's temporary folder (the path is
printed at the end).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, SHARED
from test_workflows import build_workflows

HARNESS = SHARED / "comfy" / "comfy_harness.sh"
COMFY_DIR = Path(os.environ.get("COMFY_DIR", "/tmp/comfyui"))
COMFY_PY = Path(os.environ.get("COMFY_VENV", "/tmp/comfy-venv")) / "bin" / "python"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
PACK = "comfyui-pal"  # the pack's folder name: its category in the template browser
WINDOW = {"width": 1600, "height": 900}
TEMPLATES = [title for title, _ in build_workflows.WORKFLOWS.values()]
REGISTRY = "https://api.comfy.org/"
MIN_ZOOM = 1.0  # the frontend's 10 px note and text-box font is readable from here


def _why_skip() -> str | None:
    if not os.environ.get("COMFY_MIRROR") or not HARNESS.exists():
        return (
            "set COMFY_MIRROR to a ComfyUI git checkout (bash .ci/comfy_mirror.sh makes one) "
            "and keep ../shared/comfy, to open the templates in ComfyUI's frontend"
        )
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed: pip install playwright (no browser download)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}: apt-get install chromium, or set CHROMIUM"
    return None


SKIP = _why_skip()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


def _template(title: str) -> dict:
    return json.loads((build_workflows.UI_DIR / f"{title}.json").read_text())


@pytest.fixture(scope="module")
def comfy(tmp_path_factory) -> tuple[Path, Path]:
    """ComfyUI's tree and venv python; made by the harness (with one workflow run) when
    test_real_comfy.py has not made them yet."""
    if not (COMFY_DIR / "main.py").exists() or not COMFY_PY.exists():
        tmp = tmp_path_factory.mktemp("setup")
        (tmp / "wf").mkdir()
        api = build_workflows.build("01_pal_detect_preview").api()
        (tmp / "wf" / "detect.json").write_text(json.dumps(api))
        env = dict(os.environ, COMFY_DIR=str(COMFY_DIR), COMFY_VENV=str(COMFY_PY.parents[1]))
        env["RUN_DIR"] = str(tmp / "run")
        out = subprocess.run(
            ["bash", str(HARNESS), str(REPO), str(tmp / "wf"), str(REPO / "examples/images")],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return COMFY_DIR, COMFY_PY


@pytest.fixture(scope="module")
def server(comfy, tmp_path_factory):
    """A real ComfyUI server with this pack and the example image in its input folder."""
    from real_comfy_server import comfyui_server

    run = tmp_path_factory.mktemp("server")
    image = REPO / "examples" / "images" / "rocket.png"
    with comfyui_server(*comfy, run, inputs=(image,)) as s:
        page = urllib.request.urlopen(s.url + "/", timeout=30).read().decode()
        assert "<script" in page and "app" in page, (
            "ComfyUI serves no frontend: is comfyui-frontend-package (ComfyUI's "
            f"requirements.txt) in {comfy[1]}'s venv? See {run / 'server.log'}"
        )
        yield s


class Frontend:
    """The frontend in one browser page, with what its console said and a folder for
    screenshots."""

    def __init__(self, page, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(f"{msg.text} ({msg.location.get('url', '')})")

    def pack_errors(self) -> list[str]:
        """Console errors that name this pack (its templates, thumbnails, nodes). Left out:
        the frontend's own look-ups of our nodes in the Comfy Registry (api.comfy.org),
        which a loopback-only server's content policy blocks."""
        ours = [e for e in self.errors if PACK in e or "PAL" in e]
        return [e for e in ours if REGISTRY not in e]

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=path)
        print(f"screenshot: {path}")
        return path

    def js(self, script: str, arg: object = None) -> object:
        return self.page.evaluate(script, arg)


def _wait_for_app(ui: Frontend) -> None:
    """Until the frontend's app is up; fails with what the console said if it never is
    (a locale string vue-i18n cannot parse stops it at start-up, for one)."""
    from playwright.sync_api import TimeoutError as Timeout

    try:
        ui.page.wait_for_function(
            "window.app && window.app.graph && window.app.canvas", timeout=60_000
        )
    except Timeout:
        pytest.fail("the frontend did not start; its console said:\n" + "\n".join(ui.errors))


@pytest.fixture(scope="module")
def frontend(server, tmp_path_factory, request) -> Iterator[Frontend]:
    """The real frontend of ``server`` in headless Chromium, the app started."""
    from playwright.sync_api import sync_playwright

    shots = tmp_path_factory.mktemp("screenshots")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport=WINDOW)
        ui = Frontend(page, shots)
        page.goto(server.url)
        _wait_for_app(ui)
        yield ui
        browser.close()
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nbrowser screenshots: {shots}")


OPEN_TEMPLATE = """async (name) => {
  const reply = await fetch(`api/workflow_templates/${PACK}/${encodeURIComponent(name)}.json`);
  await app.loadGraphData(await reply.json(), true, true, name);
}""".replace("${PACK}", PACK)

GRAPH = """() => ({
  scale: app.canvas.ds.scale,
  nodes: app.graph._nodes.map(n => ({
    id: n.id, type: n.type, title: n.title, pos: Array.from(n.pos), size: Array.from(n.size),
    needs: Array.from(n.computeSize()), box: Array.from(n.getBounding()),
    known: !!LiteGraph.registered_node_types[n.type], errors: !!n.has_errors,
  })),
  saved: app.graph.serialize().nodes.map(n => ({id: n.id, values: n.widgets_values})),
})"""

NOTE_FIT = """() => app.graph._nodes.filter(n => n.type === 'MarkdownNote').map(n => {
  const box = n.widgets[0].element, text = box.querySelector('.tiptap') || box;
  const last = text.lastElementChild, s = app.canvas.ds.scale;
  const used = (last.getBoundingClientRect().bottom - box.getBoundingClientRect().top) / s;
  return {id: n.id, used, height: box.getBoundingClientRect().height / s};
})"""


def _dialogs(ui: Frontend) -> list[str]:
    return ui.js(
        "() => Array.from(document.querySelectorAll('[role=dialog]')).map(d => d.innerText)"
    )


def _overlaps(nodes: list[dict]) -> list[tuple[str, str]]:
    """Pairs of nodes whose boxes (title bar included) overlap."""
    out = []
    for i, a in enumerate(nodes):
        ax, ay, aw, ah = a["box"]
        for b in nodes[i + 1 :]:
            bx, by, bw, bh = b["box"]
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                out.append((a["title"], b["title"]))
    return out


def _open_template_browser(ui: Frontend) -> None:
    """The template browser at the pack's category, opened as a user does: on a fresh
    start it opens by itself, else from the sidebar's Templates button."""
    from playwright.sync_api import TimeoutError as Timeout

    category = ui.page.get_by_text(PACK, exact=True).first
    try:
        category.wait_for(state="visible", timeout=10_000)
    except Timeout:
        ui.page.get_by_text("Templates", exact=True).first.click()
    category.click()
    ui.page.get_by_text(TEMPLATES[0], exact=True).first.wait_for(timeout=30_000)


def _close_dialogs(ui: Frontend) -> None:
    """Close what dialogs are open (their close button, else Escape), as a user would
    before working on the graph."""
    for _ in range(3):
        if not _dialogs(ui):
            return
        close = ui.page.locator("[role=dialog] button:has(.pi-times)")
        if close.count():
            close.first.click()
        else:
            ui.page.keyboard.press("Escape")
        ui.page.wait_for_timeout(400)
    assert not _dialogs(ui), _dialogs(ui)


def test_the_template_browser_shows_every_template_with_its_thumbnail_and_opens_one(frontend):
    ui = frontend
    _open_template_browser(ui)
    for title in TEMPLATES:
        ui.page.get_by_text(title, exact=True).first.wait_for(timeout=10_000)
    ui.page.wait_for_function(  # each card's thumbnail (the frontend loads it as a blob)
        """(titles) => titles.every(t => Array.from(document.querySelectorAll('[role=dialog] img'))
             .some(i => i.alt === t && i.complete && i.naturalWidth > 0))""",
        arg=TEMPLATES,
        timeout=30_000,
    )
    ui.shot("template_browser")
    ui.page.get_by_text(TEMPLATES[0], exact=True).first.click()
    ui.page.wait_for_function(
        "(n) => app.graph._nodes.length === n", arg=len(_template(TEMPLATES[0])["nodes"])
    )
    ui.page.wait_for_timeout(500)
    assert not any("missing" in d.lower() for d in _dialogs(ui)), _dialogs(ui)
    ui.shot("template_browser_opened")
    assert ui.pack_errors() == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("PAL", TEMPLATES),
        ("artifact", [t for t in TEMPLATES if "artifact" in t.lower()]),
        ("fix", [t for t in TEMPLATES if "fix" in t.lower()]),
    ],
)
def test_searching_the_template_browser_finds_the_templates(frontend, query, expected):
    ui = frontend
    _close_dialogs(ui)
    _open_template_browser(ui)
    box = ui.page.locator("[role=dialog] input[placeholder^='Search']").first
    box.fill(query)
    assert expected
    for title in expected:  # what a user typing the word sees among the cards
        ui.page.get_by_text(title, exact=True).first.wait_for(timeout=10_000)
    ui.shot(f"template_search_{query}")
    _close_dialogs(ui)


@pytest.mark.parametrize("title", TEMPLATES)
def test_a_template_opens_whole_readable_and_without_overlaps(frontend, title):
    ui = frontend
    saved = _template(title)
    _close_dialogs(ui)
    ui.errors.clear()
    ui.js(OPEN_TEMPLATE, title)
    ui.page.wait_for_timeout(800)
    graph = ui.js(GRAPH)
    nodes = graph["nodes"]
    assert not any("missing" in d.lower() for d in _dialogs(ui)), _dialogs(ui)
    assert all(n["known"] and not n["errors"] for n in nodes), nodes
    assert sorted(n["id"] for n in nodes) == sorted(n["id"] for n in saved["nodes"])
    values = {n["id"]: n["values"] for n in graph["saved"]}
    for node in saved["nodes"]:
        if node["type"] != "PreviewAny":  # its text box is the frontend's own widget
            assert values[node["id"]] == node["widgets_values"], (node["type"], node["id"])
    ours = {n["id"]: n for n in saved["nodes"]}
    for n in nodes:
        assert n["size"] == ours[n["id"]]["size"], f"the frontend resized {n['title']}"
        assert n["needs"][0] <= n["size"][0] and n["needs"][1] <= n["size"][1], n
    assert _overlaps(nodes) == []
    for note in ui.js(NOTE_FIT):
        assert note["used"] <= note["height"], f"the note's text overflows: {note}"
        assert note["used"] > 0.6 * note["height"], f"the note is much taller than its text: {note}"
    assert graph["scale"] == saved["extra"]["ds"]["scale"] >= MIN_ZOOM
    ui.shot(title.split(" - ")[0].replace(" ", "_").lower())
    assert ui.pack_errors() == []


SHOWN = """(ids) => ids.every(id => {
  const n = app.graph.getNodeById(id);
  if (n.type === 'SaveImage') return n.imgs?.length && n.imgs[0].complete && n.imgs[0].naturalWidth;
  return n.widgets?.some(w => w.name === 'preview' && typeof w.value === 'string' && w.value);
})"""

TEXTS = """() => Object.fromEntries(app.graph._nodes.filter(n => n.type === 'PreviewAny').map(n =>
  [n.title, n.widgets.filter(w => w.name === 'preview' && typeof w.value === 'string')
     .map(w => w.value).join('')]))"""

CENTER_ON = """(id) => { app.canvas.centerOnNode(app.graph.getNodeById(id));
  app.canvas.setDirty(true, true); }"""

RUNS = {  # template -> (what its text boxes must say, the box to look at)
    TEMPLATES[0]: ({"PAR (lower is better)": "0.", "Detection summary": '"par"'}, "PAR"),
    TEMPLATES[2]: ({"History: why each fix was kept or undone": '"outcome"'}, "History"),
}


@pytest.mark.parametrize("title", list(RUNS), ids=["detect", "auto_fix"])
def test_a_template_runs_from_the_run_button_and_shows_its_image_and_text(frontend, title):
    ui = frontend
    _close_dialogs(ui)
    ui.errors.clear()
    ui.js(OPEN_TEMPLATE, title)
    ui.page.wait_for_timeout(500)
    nodes = _template(title)["nodes"]
    shown = [n["id"] for n in nodes if n["type"] in ("SaveImage", "PreviewAny")]
    ui.page.get_by_role("button", name="Run", exact=True).first.click()
    ui.page.wait_for_function(SHOWN, arg=shown, timeout=120_000, polling=500)
    ui.page.wait_for_timeout(500)
    name = title.split(" - ")[0].replace(" ", "_").lower()
    ui.shot(f"{name}_ran")
    expected, look_at = RUNS[title]
    texts = ui.js(TEXTS)
    for box, says in expected.items():
        assert says in texts[box], (box, texts[box][:300])
    ui.js(CENTER_ON, next(n["id"] for n in nodes if n.get("title", "").startswith(look_at)))
    ui.page.wait_for_timeout(300)
    ui.shot(f"{name}_ran_text")
    assert ui.pack_errors() == []


SELECT = """(type) => { const n = app.graph._nodes.find(n => n.type === type);
  app.canvas.centerOnNode(n); app.canvas.deselectAll(); app.canvas.selectNode(n);
  app.canvas.setDirty(true, true); return n.id; }"""

HELP_PICTURE = """(name) => Array.from(document.querySelectorAll('.node-help-content img'))
  .filter(i => i.getAttribute('src').endsWith(`/docs/images/${name}.jpg`))
  .map(i => ({src: i.getAttribute('src'), loaded: i.complete && i.naturalWidth > 0,
              width: i.naturalWidth}))"""


def test_a_node_help_panel_shows_its_page_with_its_picture(frontend):
    """Select PAL Detect Artifacts, click the selection toolbox's info button: the help
    panel shows the node's page, whose relative picture link the frontend serves from
    /extensions/<pack folder>/docs/images/."""
    ui = frontend
    name = "PALDetectArtifacts"
    _close_dialogs(ui)
    ui.errors.clear()
    ui.js(OPEN_TEMPLATE, TEMPLATES[0])
    ui.page.wait_for_timeout(500)
    ui.js(SELECT, name)
    info = ui.page.locator("[data-testid=info-button]").first
    info.wait_for(state="visible", timeout=10_000)
    info.click()
    ui.page.get_by_text("Find perceptual artifacts").first.wait_for(timeout=15_000)
    ui.page.wait_for_function(
        f"(name) => ({HELP_PICTURE})(name).some(p => p.loaded)", arg=name, timeout=15_000
    )
    shown = ui.js(HELP_PICTURE, name)
    assert shown[0]["src"] == f"/extensions/{PACK}/docs/images/{name}.jpg", shown
    assert shown[0]["width"] == 640, shown
    ui.page.locator(".node-help-content img").first.scroll_into_view_if_needed()
    ui.shot("help_panel_detect_artifacts")
    locale_first = f"/docs/{name}/en.md"  # the frontend tries a page per locale first (404)
    assert [e for e in ui.pack_errors() if locale_first not in e] == []


def test_a_new_pal_node_starts_with_a_fixed_seed(frontend):
    """web/js/fixed_seeds.js: PAL Auto Fix and PAL Zoom-In Inpaint added to the graph keep
    their seed (ComfyUI's own nodes start at 'randomize')."""
    ui = frontend
    _close_dialogs(ui)
    ui.errors.clear()
    modes = ui.js(
        """(types) => types.map(t => {
            const node = LiteGraph.createNode(t);
            app.graph.add(node);
            const w = (node.widgets || []).find(w => w.name === "control_after_generate");
            const mode = w ? w.value : null;
            app.graph.remove(node);
            return mode;
        })""",
        ["PALAutoFix", "PALZoomInpaint", "KSampler"],
    )
    assert modes == ["fixed", "fixed", "randomize"], modes
    assert ui.pack_errors() == []
