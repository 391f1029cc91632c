"""Layer 1, tensors and geometry: input checks, layout conversion, masks, regions, previews.

Pure functions over tensors; imports torch and kornia only (plus numpy / json for the
serialisable plans in ``regions``). Nothing here knows about models, files or ComfyUI.
"""
