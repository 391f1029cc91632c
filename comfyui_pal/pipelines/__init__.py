"""Layer 4, pipelines: detection, zoom-in inpainting, the fix loop, curation, built-in fills.

Every function takes the library layout (``[B,C,H,W]`` float 0..1 images, ``[B,H,W]``
masks) and builds on ``core``, ``models`` and ``cache``. Import the modules directly
(``comfyui_pal.pipelines.detect``); this package re-exports nothing, so a module name is
never shadowed by a function of the same name.
"""
