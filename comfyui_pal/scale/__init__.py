"""Folder runs at scale, used by the CLI's ``rank`` and ``detect``: the per-image work both
engines run (``job``), the Ray executor (``ray_engine``, the ``scale`` extra) and its
resumable Parquet results (``results``). The local engine is the commands' own loop over
``Job``; Ray and pyarrow are imported by ``ray_engine`` and ``results`` alone, only when
``--engine ray`` asks.
"""
