"""Build ComfyUI workflows in Python and write them in both formats ComfyUI reads.

A ``Graph`` holds nodes (a type, a canvas position, widget values by name) and links
(``(node, output slot)`` pairs given as keyword inputs). ``Graph.ui`` gives the UI format the
frontend saves and the template browser serves; ``Graph.api`` gives the API format
(``Export (API)``) that ``/prompt`` takes. Widgets left out get their definition's default,
so a workflow stays valid when a node gains a widget. Node definitions come from
``workflow_check.node_defs``; no ComfyUI import.
"""

from __future__ import annotations

import json

from .workflow_check import NodeDef, has_control, has_upload, is_widget, widget_default

NOTE = "Note"
NODE_SIZE = [320, 260]  # canvas size of every node, px
NOTE_SIZE = [320, 180]

Output = tuple[dict, int]  # (node from Graph.add, output slot)


class Graph:
    """A workflow under construction: nodes with widget values, and links between them.

    ``defs`` maps node type to ``NodeDef`` (``workflow_check.node_defs``). Node ids are
    1, 2, ... in the order nodes are added; that is also the UI execution ``order``.
    """

    def __init__(self, defs: dict[str, NodeDef]) -> None:
        self.defs = defs
        self.nodes: list[dict] = []

    def add(
        self, kind: str, pos: tuple[int, int], widgets: dict | None = None, **inputs: Output
    ) -> dict:
        """Add a node of type ``kind`` at canvas ``pos`` (px); ``inputs`` are ``Output`` pairs.

        ``widgets`` maps widget name to value. Returns the node, to link from.
        """
        if kind not in self.defs:
            raise ValueError(f"unknown node type {kind!r}; add its definition to defs")
        nd, widgets = self.defs[kind], widgets or {}
        unknown = [n for n in [*widgets, *inputs] if nd.spec(n) is None]
        if unknown:
            raise ValueError(f"{kind} has no inputs named {unknown}; check the spelling")
        return self._append(kind, pos, widgets, inputs)

    def note(self, pos: tuple[int, int], text: str) -> dict:
        """Add a Note (UI only: not in the API format) showing ``text``."""
        return self._append(NOTE, pos, {"text": text}, {})

    def _append(self, kind: str, pos: tuple[int, int], widgets: dict, inputs: dict) -> dict:
        node = {
            "id": len(self.nodes) + 1,
            "type": kind,
            "pos": list(pos),
            "widgets": widgets,
            "inputs": inputs,
        }
        self.nodes.append(node)
        return node

    def _widget_values(self, node: dict) -> list:
        """``widgets_values`` as the frontend stores them (control / upload values included)."""
        if node["type"] == NOTE:
            return [node["widgets"]["text"]]
        nd = self.defs[node["type"]]
        values = []
        for name in nd.widgets():
            spec = nd.spec(name)
            values.append(node["widgets"].get(name, widget_default(spec)))
            if has_control(name, spec):
                values.append("fixed")
            if has_upload(spec):
                values.append("image")
        return values

    def ui(self, title: str) -> dict:
        """UI format (what the frontend saves and the template browser serves)."""
        links: list[list] = []
        out_links: dict[tuple[int, int], list[int]] = {}
        nodes = []
        for order, node in enumerate(self.nodes):
            inputs = []
            if node["type"] != NOTE:
                nd = self.defs[node["type"]]
                for part in ("required", "optional"):
                    for name, spec in nd.inputs.get(part, {}).items():
                        if name in node["inputs"]:
                            src, slot = node["inputs"][name]
                            lid = len(links) + 1
                            links.append([lid, src["id"], slot, node["id"], len(inputs), spec[0]])
                            out_links.setdefault((src["id"], slot), []).append(lid)
                            inputs.append({"name": name, "type": spec[0], "link": lid})
                        elif part == "required" and not is_widget(spec):
                            inputs.append({"name": name, "type": spec[0], "link": None})
            nodes.append(
                {
                    "id": node["id"],
                    "type": node["type"],
                    "pos": node["pos"],
                    "size": list(NOTE_SIZE if node["type"] == NOTE else NODE_SIZE),
                    "flags": {},
                    "order": order,
                    "mode": 0,
                    "inputs": inputs,
                    "properties": {"Node name for S&R": node["type"]},
                    "widgets_values": self._widget_values(node),
                }
            )
        for n in nodes:
            if n["type"] == NOTE:
                n["outputs"] = []
                continue
            n["outputs"] = [
                {"name": t, "type": t, "links": out_links.get((n["id"], i), []), "slot_index": i}
                for i, t in enumerate(self.defs[n["type"]].outputs)
            ]
        return {
            "last_node_id": len(nodes),
            "last_link_id": len(links),
            "nodes": nodes,
            "links": links,
            "groups": [],
            "config": {},
            "extra": {"info": {"name": title}},
            "version": 0.4,
        }

    def api(self) -> dict:
        """API format (``Export (API)``): node id -> class_type and inputs; Notes left out."""
        out = {}
        for node in self.nodes:
            if node["type"] == NOTE:
                continue
            nd = self.defs[node["type"]]
            inputs = {}
            for name in nd.widgets():
                inputs[name] = node["widgets"].get(name, widget_default(nd.spec(name)))
            for name, (src, slot) in node["inputs"].items():
                inputs[name] = [str(src["id"]), slot]
            out[str(node["id"])] = {
                "class_type": node["type"],
                "inputs": inputs,
                "_meta": {"title": node["type"]},
            }
        return out


def dumps(workflow: dict) -> str:
    """A workflow as the text of its file: JSON, one-space indent, final newline."""
    return json.dumps(workflow, indent=1) + "\n"
