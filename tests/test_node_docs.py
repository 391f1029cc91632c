"""Node help pages and the English locale: current, and one per node."""

from __future__ import annotations

import importlib.util
import json
import sys

from conftest import REPO

spec = importlib.util.spec_from_file_location(
    "build_node_docs", REPO / "examples" / "build_node_docs.py"
)
build_node_docs = importlib.util.module_from_spec(spec)
sys.modules["build_node_docs"] = build_node_docs
spec.loader.exec_module(build_node_docs)


def test_the_committed_docs_and_locale_are_what_the_builder_writes():
    for path, text in build_node_docs.files().items():
        assert path.read_text() == text, f"{path} is stale: run python examples/build_node_docs.py"


def test_every_node_has_a_help_page_and_a_locale_entry_served_by_comfyui():
    pack = build_node_docs.load_pack()
    names = set(pack.NODE_CLASS_MAPPINGS)
    assert {p.stem for p in (REPO / "web" / "docs").glob("*.md")} == names
    locale = json.loads((REPO / "locales" / "en" / "nodeDefs.json").read_text())
    assert set(locale) == names
    for name, entry in locale.items():
        cls = pack.NODE_CLASS_MAPPINGS[name]
        assert entry["display_name"] == pack.NODE_DISPLAY_NAME_MAPPINGS[name]
        assert [o["name"] for o in entry["outputs"].values()] == list(cls.RETURN_NAMES)
    assert pack.WEB_DIRECTORY == "./web" and (REPO / "web" / "docs").is_dir()
