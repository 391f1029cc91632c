"""Lay out a UI-format workflow for reading in ComfyUI's frontend.

``lay_out(wf, defs, titles)`` sizes every node to what it draws (slot rows, widget rows, an
image or text box) and places the graph left to right: each node one column after the nodes
that feed it, a source (loader, empty latent) just before its first consumer, the columns
stacked top down without overlap and the notes in a row above. ``view(wf)`` is the
``extra.ds`` (zoom and pan) the workflow opens with: readable text, the notes and the first
columns in sight.

Sizes are in canvas px at 100 % zoom, LiteGraph's metrics as ComfyUI's frontend draws them
(1.32 and 1.35, the frontends of ComfyUI 0.3.75 and 0.8.0); tests/test_browser.py checks them
against the frontend's own ``computeSize`` and the notes' rendered height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from comfyui_pal.io.workflow_check import NodeDef, has_control, has_upload, is_widget

TITLE_H = 30  # title bar height; drawn above a node's pos
SLOT_H = 20  # one row of input / output slots
WIDGET_H = 24  # one widget row (20) with its spacing (4)
CHAR_W = 7.5  # mean advance of the frontend's 14 px sans-serif, px per character
SMALL_CHAR_W = 6.5  # slot labels (12 px)
MIN_W, MAX_W = 240, 460  # node width bounds
GAP_X, GAP_Y = 70, 30  # between columns; between a node and the title bar below it
NOTE_W = 480  # a note's width
NOTE_CHARS = 80  # characters per line of a note at NOTE_W (the frontend's 10 px text)
NOTE_LINE_H = 12  # a note's line
NOTE_HEADING_H = 32  # a ## heading with its margin
NOTE_PARA_GAP = 10  # between paragraphs
NOTE_PAD = 40  # the note's widget inset and a line to spare
SCREEN = (1480, 760)  # the canvas a 1600x900 browser window leaves, px
MARGIN = (90, 150)  # screen px kept free for the sidebar and the menu bar
ZOOM = (1.0, 1.25)  # the range the view's zoom is fitted in: text stays readable
NOTES = ("Note", "MarkdownNote")
IMAGES = ("SaveImage", "PreviewImage")  # output nodes that show images
TEXT_DISPLAYS = ("PreviewAny",)  # output nodes that show text


@dataclass(frozen=True)
class Look:
    """What a node type draws besides its slots and widgets."""

    min_width: int = 0
    extra_height: int = 0  # an image preview or a text box below the widgets, px


LOOKS = {
    "LoadImage": Look(300, 290),  # the loaded image
    "SaveImage": Look(320, 310),  # the saved image, once it ran
    "PreviewImage": Look(320, 310),
    "CLIPTextEncode": Look(380, 90),  # the prompt box
    "PreviewAny": Look(400, 230),  # the text it shows, once it ran
}


def _text_width(text: str, char_w: float = CHAR_W) -> float:
    return len(text) * char_w


def _slot_rows(node: dict, nd: NodeDef) -> tuple[list[str], list[str]]:
    """The labels of the input slots (every connection input, linked or not) and outputs."""
    ins = [
        name
        for part in ("required", "optional")
        for name, spec in nd.inputs.get(part, {}).items()
        if not is_widget(spec)
    ]
    return ins, [o["name"] for o in node.get("outputs", [])]


def _widgets(node: dict, nd: NodeDef) -> list[tuple[str, object]]:
    """(label, value) of each widget row that shows a value: the definition's widgets (a
    multiline text box wraps, so not those) and the frontend's seed control; upload buttons
    are left out."""
    values, out = list(node.get("widgets_values", [])), []
    for name in nd.widgets():
        spec = nd.spec(name)
        value = values.pop(0) if values else None
        if value is not None and not (len(spec) > 1 and spec[1].get("multiline")):
            out.append((name, value))  # a multiline text box wraps: no width of its own
        if has_control(name, spec) and values:
            out.append(("control after generate", values.pop(0)))
        if has_upload(spec) and values:
            values.pop(0)
    return out


def node_size(node: dict, nd: NodeDef, title: str, extra: int | None = None) -> list[int]:
    """``[width, height]`` of a (non-note) node: its slot rows, one row per widget value
    (control and upload values are widgets too) and ``extra`` px below them (default: its
    type's ``LOOKS`` extra)."""
    ins, outs = _slot_rows(node, nd)
    rows = max(len(ins), len(outs), 1)
    widgets = len(node.get("widgets_values", []))
    look = LOOKS.get(node["type"], Look())
    extra = look.extra_height if extra is None else extra
    height = rows * SLOT_H + 6 + (widgets * WIDGET_H + 8 if widgets else 0) + extra
    slots = max(
        _text_width(ins[i] if i < len(ins) else "", SMALL_CHAR_W)
        + _text_width(outs[i] if i < len(outs) else "", SMALL_CHAR_W)
        for i in range(rows)
    )
    widget = max((_text_width(n) + _text_width(str(v)) for n, v in _widgets(node, nd)), default=0)
    width = max(MIN_W, look.min_width, _text_width(title) + 60, slots + 70, widget + 80)
    return [_round(min(width, MAX_W)), _round(height)]


def note_size(text: str) -> list[int]:
    """``[width, height]`` of a markdown note showing ``text``: its paragraphs (blank-line
    separated) wrapped at ``NOTE_W``, a ``##`` heading taller."""
    height = NOTE_PAD
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    for p in paragraphs:
        if p.startswith("#"):
            height += NOTE_HEADING_H
            continue
        shown = p.replace("**", "").replace("`", "").replace("*", "")
        height += math.ceil(len(shown) / NOTE_CHARS) * NOTE_LINE_H + NOTE_PARA_GAP
    return [NOTE_W, _round(height)]


def _round(px: float) -> int:
    return int(math.ceil(px / 10) * 10)


def columns(wf: dict) -> dict[int, int]:
    """Column of each non-note node: as late as the nodes it feeds allow (just left of the
    first of them), so a loader or prompt sits next to where it is used; a node that feeds
    nothing (an output) one right of its furthest input, a text display one right of the
    images its source node also shows."""
    feeds: dict[int, list[int]] = {n["id"]: [] for n in wf["nodes"] if n["type"] not in NOTES}
    for _, src, _, dst, _, _ in wf["links"]:
        feeds[dst].append(src)
    col: dict[int, int] = {}

    def depth(nid: int) -> int:
        if nid not in col:
            col[nid] = 1 + max((depth(s) for s in feeds[nid]), default=-1)
        return col[nid]

    for nid in feeds:
        depth(nid)
    for nid in sorted(col, key=lambda n: -col[n]):  # consumers first
        consumers = [d for d, ss in feeds.items() if nid in ss]
        if consumers:
            col[nid] = min(col[c] for c in consumers) - 1
    types = {n["id"]: n["type"] for n in wf["nodes"]}
    for nid, srcs in feeds.items():  # a text display goes beside the images it explains
        if types[nid] in TEXT_DISPLAYS:
            images = [d for d, ss in feeds.items() if set(ss) & set(srcs) and types[d] in IMAGES]
            col[nid] = max([col[nid], *(col[d] + 1 for d in images)])
    low = min(col.values(), default=0)
    return {nid: c - low for nid, c in col.items()}


def _column_order(wf: dict, col: dict[int, int]) -> list[list[int]]:
    """Node ids per column, each column ordered by where its inputs sit in the columns to
    its left (fewer crossing links), ties by id."""
    feeds: dict[int, list[int]] = {nid: [] for nid in col}
    for _, src, _, dst, _, _ in wf["links"]:
        feeds[dst].append(src)
    consumers: dict[int, list[int]] = {nid: [] for nid in col}
    for dst, srcs in feeds.items():
        for s in srcs:
            consumers[s].append(dst)
    order: list[list[int]] = [[] for _ in range(max(col.values(), default=-1) + 1)]
    rank: dict[int, float] = {}
    for c, ids in enumerate(order):
        ids.extend(nid for nid in sorted(col) if col[nid] == c)

        def key(nid: int) -> tuple[float, int]:
            near = [rank[s] for s in feeds[nid] if s in rank]
            if not near:  # a source: beside what it feeds
                near = [rank[d] for d in consumers[nid] if d in rank] or [nid]
            return (sum(near) / len(near), nid)

        ids.sort(key=key)
        rank.update({nid: i for i, nid in enumerate(ids)})
    return order


def lay_out(
    wf: dict, defs: dict[str, NodeDef], titles: dict[str, str], extra: dict[int, int]
) -> dict:
    """``wf`` (UI format) with every node sized and placed, the notes in a row above the
    graph, and the opening view in ``extra.ds``. ``titles`` maps node type to the title the
    frontend shows (for the width; a node's own ``title`` comes first); ``extra`` maps a
    node id to the height of what it shows below its widgets, where that is not its type's
    ``LOOKS`` extra."""
    by_id = {n["id"]: n for n in wf["nodes"]}
    notes = [n for n in wf["nodes"] if n["type"] in NOTES]
    for node in wf["nodes"]:
        if node["type"] in NOTES:
            node["size"] = note_size(node["widgets_values"][0])
        else:
            title = node.get("title") or titles.get(node["type"], node["type"])
            node["size"] = node_size(node, defs[node["type"]], title, extra.get(node["id"]))
    x = 0
    for ids in _column_order(wf, columns(wf)):
        y = 0
        for nid in ids:
            by_id[nid]["pos"] = [x, y]
            y += by_id[nid]["size"][1] + GAP_Y + TITLE_H
        x += max(by_id[i]["size"][0] for i in ids) + GAP_X
    note_h = max((n["size"][1] for n in notes), default=0)
    x = 0
    for note in notes:
        note["pos"] = [x, -(note_h + GAP_Y + TITLE_H)]
        x += note["size"][0] + GAP_X
    wf["extra"]["ds"] = view(wf)
    return wf


def bounds(wf: dict) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` around every node, title bars included, canvas px."""
    boxes = [
        (n["pos"][0], n["pos"][1] - TITLE_H, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
        for n in wf["nodes"]
    ]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def view(wf: dict) -> dict:
    """``extra.ds``: the zoom that fits the whole graph in ``SCREEN``, held in ``ZOOM`` (a
    larger graph opens at its top-left corner, notes first), and the pan that puts the graph's
    top-left corner ``MARGIN`` screen px from the window's. The frontend draws canvas point
    ``p`` at screen ``(p + offset) * scale``."""
    x0, y0, x1, y1 = bounds(wf)
    fit = min(SCREEN[0] / (x1 - x0), SCREEN[1] / (y1 - y0))
    scale = round(min(max(fit, ZOOM[0]), ZOOM[1]), 3)
    offset = [round(MARGIN[0] / scale - x0, 1), round(MARGIN[1] / scale - y0, 1)]
    return {"scale": scale, "offset": offset}
