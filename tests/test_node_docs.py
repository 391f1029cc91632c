"""Node help pages and the English locale: current, and one per node."""

from __future__ import annotations

import importlib.util
import json
import sys

from conftest import REPO
from PIL import Image

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


IMAGE_TYPES = {"IMAGE", "MASK"}


def _has_images(cls: type) -> bool:
    spec = cls.INPUT_TYPES()
    kinds = [v[0] for s in ("required", "optional") for v in spec.get(s, {}).values()]
    return any(k in IMAGE_TYPES for k in [*kinds, *cls.RETURN_TYPES] if isinstance(k, str))


def test_every_image_node_page_shows_a_small_picture_of_its_inputs_and_outputs():
    pictures = sys.modules["build_node_pictures"]  # imported by the docs builder
    pack = build_node_docs.load_pack()
    image_nodes = {n for n, cls in pack.NODE_CLASS_MAPPINGS.items() if _has_images(cls)}
    assert image_nodes == set(pictures.PICTURES) | set(pictures.NO_PICTURE)
    for name in pictures.PICTURES:
        path = pictures.picture_path(name)
        assert path.is_file(), f"{path} is missing: run python examples/build_node_pictures.py"
        assert path.stat().st_size <= pictures.MAX_BYTES, f"{path} is over {pictures.MAX_BYTES}"
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.width == pictures.WIDTH, (path, im.size)
        page = (REPO / "web" / "docs" / f"{name}.md").read_text()
        assert f"](images/{path.name})" in page, f"{name}.md does not show {path.name}"


def test_pages_link_pictures_relatively_so_any_pack_folder_name_serves_them():
    for page in (REPO / "web" / "docs").glob("*.md"):
        assert "/extensions/" not in page.read_text(), page
