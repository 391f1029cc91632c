"""One image file's work in a folder run, as both engines run it.

``--engine local`` calls ``Job.load`` and ``Job.apply`` one after the other in one process;
``--engine ray`` calls ``load`` in CPU tasks and ``apply`` in the actors that hold the model.
Both are thin: decoding is ``io.images.load_image``, the tensor work ``pipelines.score``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..core.preview import overlay
from ..io.images import load_image, save_image
from ..pipelines.detect import DetectOptions, input_resample, upsamples_input
from ..pipelines.score import Prepared, prepare, score

OUTPUT_KINDS = ("mask", "overlay")


@dataclass(frozen=True)
class Job:
    """How to score each image and what to write for it (picklable: Ray ships it).

    ``model`` is the checkpoint path (each worker loads it once), ``resample`` its input
    filter (``detect.input_resample``), ``upsample`` whether small images are enlarged to
    512 (``detect.upsamples_input``), ``options`` and ``threshold`` how to detect and score;
    ``out_dir`` is where each image's ``<stem>_mask.png`` and ``<stem>_overlay.png`` go
    (``detect``), None to write nothing (``rank``).
    """

    model: str
    resample: str
    options: DetectOptions
    threshold: float
    out_dir: Path | None = None
    upsample: bool = True  # the model's upsamples_input

    @classmethod
    def of(
        cls,
        model: nn.Module,
        path: Path,
        options: DetectOptions,
        threshold: float,
        out_dir: Path | None = None,
    ) -> Job:
        """The job for ``model`` loaded from ``path`` (made absolute: workers may run in
        another folder)."""
        return cls(
            str(path.resolve()),
            input_resample(model),
            options,
            threshold,
            out_dir,
            upsamples_input(model),
        )

    @property
    def keep_full(self) -> bool:
        """Whether ``apply`` needs the full image (the tiled mode, overlays)."""
        return self.out_dir is not None or self.options.mode == "tiled"

    def outputs(self, path: Path) -> list[Path]:
        """The files ``apply`` writes for ``path`` (none without ``out_dir``)."""
        if self.out_dir is None:
            return []
        return [self.out_dir / f"{path.stem}_{kind}.png" for kind in OUTPUT_KINDS]

    def load(self, path: Path) -> Prepared:
        """Decode ``path`` and prepare it for the model (CPU only). Raises ``ValueError``
        for a file that is not a readable still image."""
        return prepare(load_image(path), self.resample, self.keep_full, self.upsample)

    def apply(self, model: nn.Module, path: Path, prepared: Prepared, replace: bool) -> dict:
        """Score ``prepared`` (the image of ``path``) and write its outputs (``replace``:
        over existing ones); returns ``{"par", "regions", "height", "width"}``."""
        result = score(model, prepared, self.options, self.threshold)
        if self.out_dir is not None:
            mask_path, overlay_path = self.outputs(path)
            save_image((result.probs[0] > self.threshold).float(), mask_path, replace)
            tinted = overlay(prepared.full, result.probs, self.threshold)[0]
            save_image(tinted, overlay_path, replace)
        h, w = prepared.size
        return {"par": result.par, "regions": result.regions, "height": h, "width": w}
