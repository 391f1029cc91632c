"""Files and network, used by the front ends only: image files, ranking reports, the
ComfyUI HTTP client (``comfy_client``), workflow validation and the workflow builder.

The runtime layers below never import this package.
"""
