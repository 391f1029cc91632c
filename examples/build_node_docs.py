"""Node docs and English locale, written from the node definitions themselves.

    python examples/build_node_docs.py          # rewrite web/docs/*.md and locales/en/nodeDefs.json
    python examples/build_node_docs.py --check  # exit 1 if a file is out of date

ComfyUI's frontend shows ``WEB_DIRECTORY/docs/<NodeName>.md`` in the node's help panel and
reads ``locales/<lang>/nodeDefs.json`` (display names, descriptions, input / output names and
tooltips). Both come from each node's DESCRIPTION, INPUT_TYPES, RETURN_NAMES and
OUTPUT_TOOLTIPS, and the docs list the templates that use the node, so they cannot drift.
A node with image inputs or outputs shows a picture of them (``web/docs/images/<Node>.jpg``,
written by ``examples/build_node_pictures.py``), linked relatively: the frontend rewrites a
relative image ``src`` against the page's folder, ``/extensions/<pack folder>/docs/``
(``renderMarkdownToHtml(text, getNodeHelpBaseUrl(node))`` in comfyui-frontend-package).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_node_pictures import PICTURES, picture_path
from build_workflows import REPO, load_pack, write_or_check

DOCS_DIR = REPO / "web" / "docs"
LOCALE = REPO / "locales" / "en" / "nodeDefs.json"


def _kind(spec: tuple) -> str:
    kind = spec[0]
    return "choice" if isinstance(kind, (list, tuple)) else str(kind)


DYNAMIC = {  # choices that depend on the machine: described, not listed
    "model_name": "the shipped model and every checkpoint in models/pal",
    "sampler_name": "ComfyUI's samplers",
    "scheduler": "ComfyUI's schedulers",
}


def _allowed(key: str, spec: tuple) -> str:
    kind, extra = spec[0], spec[1] if len(spec) > 1 else {}
    if key in DYNAMIC:
        return DYNAMIC[key] + (f" (default `{extra['default']}`)" if "default" in extra else "")
    if isinstance(kind, (list, tuple)):
        shown = ", ".join(f"`{c}`" for c in kind[:8]) + (", ..." if len(kind) > 8 else "")
        return shown + (f" (default `{extra['default']}`)" if "default" in extra else "")
    parts = []
    if "default" in extra:
        parts.append(f"default `{extra['default']}`")
    if "min" in extra or "max" in extra:
        parts.append(f"{extra.get('min', '')}..{extra.get('max', '')}")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def templates_using(name: str) -> list[str]:
    out = []
    for path in sorted((REPO / "example_workflows").glob("*.json")):
        graph = json.loads(path.read_text())
        if any(n.get("type") == name for n in graph.get("nodes", [])):
            out.append(path.stem)
    return out


def node_doc(name: str, title: str, cls: type) -> str:
    """The markdown help page of one node."""
    spec = cls.INPUT_TYPES()
    lines = [f"# {title}", "", cls.DESCRIPTION, ""]
    if name in PICTURES:
        link = picture_path(name).relative_to(DOCS_DIR).as_posix()
        lines += [f"![{title}: inputs and outputs on the example image]({link})", ""]
    lines += ["## Inputs", ""]
    lines += ["| input | type | values | what it is |", "|---|---|---|---|"]
    for section in ("required", "optional"):
        for key, value in spec.get(section, {}).items():
            extra = value[1] if len(value) > 1 else {}
            opt = " (optional)" if section == "optional" else ""
            lines.append(
                f"| `{key}`{opt} | {_kind(value)} | {_cell(_allowed(key, value))} | "
                f"{_cell(extra.get('tooltip', ''))} |"
            )
    lines += ["", "## Outputs", "", "| output | type | what it is |", "|---|---|---|"]
    for out, kind, tip in zip(cls.RETURN_NAMES, cls.RETURN_TYPES, cls.OUTPUT_TOOLTIPS, strict=True):
        lines.append(f"| `{out}` | {kind} | {_cell(tip)} |")
    used = templates_using(name)
    if used:
        lines += ["", "## In the templates", ""]
        lines += [f"- `{u}` (Workflow > Browse Templates > comfyui-pal)" for u in used]
    lines += ["", f"Category `{cls.CATEGORY}`; search: {', '.join(cls.SEARCH_ALIASES)}.", ""]
    return "\n".join(lines)


I18N_SPECIAL = "{}@$|"  # vue-i18n's message syntax: the frontend fails to start on a stray one


def i18n_text(text: str) -> str:
    """``text`` as a vue-i18n message that shows it as it is: each of ``I18N_SPECIAL`` as a
    literal interpolation (``{'{'}``)."""
    return "".join(f"{{'{c}'}}" if c in I18N_SPECIAL else c for c in text)


def node_defs_locale(pack: object) -> dict:
    """``nodeDefs.json`` of the English locale, in the frontend's layout (every text a
    vue-i18n message: see ``i18n_text``)."""
    out = {}
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        inputs = {}
        for section in ("required", "optional"):
            for key, v in spec.get(section, {}).items():
                tip = v[1].get("tooltip") if len(v) > 1 else None
                inputs[key] = {"name": key, **({"tooltip": i18n_text(tip)} if tip else {})}
        outputs = {
            str(i): {"name": n, "tooltip": i18n_text(t)}
            for i, (n, t) in enumerate(zip(cls.RETURN_NAMES, cls.OUTPUT_TOOLTIPS, strict=True))
        }
        out[name] = {
            "display_name": i18n_text(pack.NODE_DISPLAY_NAME_MAPPINGS[name]),
            "description": i18n_text(cls.DESCRIPTION),
            "inputs": inputs,
            "outputs": outputs,
        }
    return out


def files() -> dict[Path, str]:
    """Every generated file and its text."""
    pack = load_pack()
    out = {
        DOCS_DIR / f"{name}.md": node_doc(name, pack.NODE_DISPLAY_NAME_MAPPINGS[name], cls)
        for name, cls in pack.NODE_CLASS_MAPPINGS.items()
    }
    out[LOCALE] = json.dumps(node_defs_locale(pack), indent=2, ensure_ascii=False) + "\n"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    return write_or_check(files(), ap.parse_args().check)


if __name__ == "__main__":
    raise SystemExit(main())
