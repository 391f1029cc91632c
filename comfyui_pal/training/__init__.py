"""Training tooling (optional extra ``[train]``): synthetic artifacts, datasets, training,
calibration, evaluation and metrics.

Never imported by runtime code (nodes, detection, fix); the CLI imports it lazily.
"""
