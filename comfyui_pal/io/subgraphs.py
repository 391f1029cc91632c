"""Subgraph blueprints: a ``Graph`` wrapped as one reusable node of the ComfyUI frontend.

ComfyUI (0.3.6x and newer) serves every ``<pack>/subgraphs/*.json`` at ``/global_subgraphs``;
the frontend offers each as a node in its library. A blueprint file is a UI-format workflow
(``version`` 0.4) with the subgraph's definition under ``definitions.subgraphs`` and one
node whose ``type`` is the definition's id. Inside the definition, the node ids ``-10`` and
``-20`` stand for its input and output boundary: a link from ``-10`` slot k carries the
subgraph's k-th input to the inner nodes, a link into ``-20`` slot k gives its k-th output.
"""

from __future__ import annotations

import uuid

from .workflows import Graph, Output

INPUT_NODE, OUTPUT_NODE = -10, -20
Port = tuple[dict, str]  # (node from Graph.add, name of one of its inputs)


def blueprint(
    graph: Graph,
    name: str,
    inputs: list[tuple[str, str, list[Port]]],
    outputs: list[tuple[str, str, Output]],
    description: str = "",
) -> dict:
    """The blueprint file of ``graph`` as one node named ``name``.

    ``inputs``: (name, type, the inner inputs it feeds, left unlinked in ``graph``);
    ``outputs``: (name, type, the inner output it gives). The id is derived from ``name``,
    so rebuilding writes the same file.
    """
    inner = graph.ui(name)
    sub_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-pal/subgraphs/{name}"))
    links = [
        dict(
            zip(
                ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"),
                link,
                strict=True,
            )
        )
        for link in inner["links"]
    ]
    nodes = {n["id"]: n for n in inner["nodes"]}
    ports_in, ports_out = [], []
    for slot, (port, kind, targets) in enumerate(inputs):
        ids = []
        for node, input_name in targets:
            target = nodes[node["id"]]
            index = next(i for i, x in enumerate(target["inputs"]) if x["name"] == input_name)
            if target["inputs"][index]["link"] is not None:
                raise ValueError(f"{target['type']}.{input_name} is linked inside the graph")
            lid = len(links) + 1
            links.append(_link(lid, INPUT_NODE, slot, node["id"], index, kind))
            target["inputs"][index]["link"] = lid
            ids.append(lid)
        ports_in.append(_port(name, "in", port, kind, ids))
    for slot, (port, kind, (node, out_slot)) in enumerate(outputs):
        lid = len(links) + 1
        links.append(_link(lid, node["id"], out_slot, OUTPUT_NODE, slot, kind))
        nodes[node["id"]]["outputs"][out_slot]["links"].append(lid)
        ports_out.append(_port(name, "out", port, kind, [lid]))
    left = min(n["pos"][0] for n in nodes.values()) - 300
    right = max(n["pos"][0] + n["size"][0] for n in nodes.values()) + 100
    definition = {
        "id": sub_id,
        "version": 1,
        "state": {
            "lastGroupId": 0,
            "lastNodeId": max(nodes),
            "lastLinkId": len(links),
            "lastRerouteId": 0,
        },
        "revision": 0,
        "config": {},
        "name": name,
        "description": description,
        "inputNode": {"id": INPUT_NODE, "bounding": [left, 0, 160, 40 + 24 * len(inputs)]},
        "outputNode": {"id": OUTPUT_NODE, "bounding": [right, 0, 160, 40 + 24 * len(outputs)]},
        "inputs": ports_in,
        "outputs": ports_out,
        "widgets": [],
        "nodes": list(nodes.values()),
        "groups": [],
        "links": links,
        "extra": {},
    }
    host_inputs = [{"name": p["name"], "type": p["type"], "link": None} for p in ports_in]
    host_outputs = [{"name": p["name"], "type": p["type"], "links": []} for p in ports_out]
    host = {
        "id": 1,
        "type": sub_id,
        "pos": [0, 0],
        "size": [320, 40 + 24 * max(len(inputs), len(outputs))],
        "flags": {},
        "order": 0,
        "mode": 0,
        "inputs": host_inputs,
        "outputs": host_outputs,
        "title": name,
        "properties": {},
        "widgets_values": [],
    }
    return {
        "last_node_id": 1,
        "last_link_id": 0,
        "nodes": [host],
        "links": [],
        "groups": [],
        "definitions": {"subgraphs": [definition]},
        "config": {},
        "extra": {"info": {"name": name}},
        "version": 0.4,
    }


def _link(lid: int, origin: int, origin_slot: int, target: int, slot: int, kind: str) -> dict:
    return {
        "id": lid,
        "origin_id": origin,
        "origin_slot": origin_slot,
        "target_id": target,
        "target_slot": slot,
        "type": kind,
    }


def _port(graph: str, side: str, name: str, kind: str, link_ids: list[int]) -> dict:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-pal/subgraphs/{graph}/{side}/{name}")),
        "name": name,
        "type": kind,
        "linkIds": link_ids,
        "localized_name": name,
    }


def flatten(workflow: dict) -> dict:
    """The API format of a blueprint file's inner graph, with the boundary's inputs as
    ``["input", k]`` and a ``"__outputs__"`` entry listing ``[node, slot]`` per output: what
    ComfyUI runs once the frontend expands the node (for tests and checks)."""
    (definition,) = workflow["definitions"]["subgraphs"]
    by_id = {link["id"]: link for link in definition["links"]}
    api: dict = {}
    for node in definition["nodes"]:
        values = {}
        for entry in node["inputs"]:
            link = by_id.get(entry["link"]) if entry["link"] is not None else None
            if link is None:
                continue
            origin = link["origin_id"]
            values[entry["name"]] = (
                ["input", link["origin_slot"]]
                if origin == INPUT_NODE
                else [str(origin), link["origin_slot"]]
            )
        api[str(node["id"])] = {"class_type": node["type"], "links": values}
    outs = sorted(
        (link["target_slot"], [str(link["origin_id"]), link["origin_slot"]])
        for link in definition["links"]
        if link["target_id"] == OUTPUT_NODE
    )
    api["__outputs__"] = [o for _, o in outs]
    return api
