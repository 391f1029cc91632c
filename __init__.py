"""ComfyUI entry point of comfyui-pal: exports NODE_CLASS_MAPPINGS and NODE_DISPLAY_NAME_MAPPINGS.

ComfyUI imports this folder as a package by path. The library ``comfyui_pal`` beside this
file is registered under its own top-level name (unless it is already imported, e.g. from an
editable install), so every node and every other pack share one copy and one model cache.
Nothing here imports ComfyUI; the nodes do that lazily, with fallbacks.
"""

import importlib.util
import os
import sys


def _register_library() -> None:
    if "comfyui_pal" in sys.modules:
        return
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "comfyui_pal")
    spec = importlib.util.spec_from_file_location(
        "comfyui_pal", os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["comfyui_pal"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["comfyui_pal"]
        raise


_register_library()

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

WEB_DIRECTORY = "./web"  # docs/<NodeName>.md: each node's help page in the frontend

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
