"""PAL detections as Impact Pack SEGS and as an Impact detector, checked against SEGS' documented
structure: ``((H, W), [SEG])``, SEG fields by name, ``[x1, y1, x2, y2]`` boxes, numpy masks."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from conftest import load_pack_like_comfyui

from comfyui_pal.core import masks as M
from comfyui_pal.core.detections import artifact_detections, crop_region

IMPACT_SEG_FIELDS = (
    "cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label",
    "control_net_wrapper",
)  # fmt: skip


@pytest.fixture(scope="module")
def interop():
    pack = load_pack_like_comfyui("custom_nodes.comfyui-pal-interop")
    return inspect.getmodule(pack.NODE_CLASS_MAPPINGS["PALArtifactsToSEGS"])


def _probs(h: int = 96, w: int = 128) -> torch.Tensor:
    p = torch.full((h, w), 0.1)
    p[10:30, 20:60] = 0.9  # 800 px
    p[60:70, 100:110] = 0.7  # 100 px
    p[80, 5] = 0.95  # a speck
    return p


def _combined(segs) -> torch.Tensor:
    """What Impact does with SEGS to get one mask: OR of every cropped_mask at its crop_region."""
    (h, w), items = segs
    out = np.zeros((h, w), np.uint8)
    for s in items:
        x1, y1, x2, y2 = s.crop_region
        out[y1:y2, x1:x2] |= (s.cropped_mask * 255).astype(np.uint8)
    return torch.from_numpy(out.astype(np.float32) / 255)


def test_detections_are_the_regions_largest_first_with_context_crops():
    dets = artifact_detections(_probs(), 0.5, crop_factor=2.0, min_area=4)
    assert [d.bbox for d in dets] == [(20, 10, 60, 30), (100, 60, 110, 70)]  # speck dropped
    assert [d.area_px for d in dets] == [800, 100]
    assert dets[0].confidence == pytest.approx(0.9, abs=1e-4)
    assert dets[1].confidence == pytest.approx(0.7, abs=1e-4)
    big = dets[0]
    assert big.crop_region == (0, 0, 80, 40)  # 80x40 around the centre, shifted inside
    x0, y0, x1, y1 = big.crop_region
    assert big.mask.shape == (y1 - y0, x1 - x0) and big.mask.sum() == 800


def test_crop_regions_stay_inside_the_image_and_hold_their_box():
    assert crop_region((0, 0, 10, 10), 3.0, 100, 50) == (0, 0, 30, 30)
    assert crop_region((90, 40, 100, 50), 3.0, 100, 50) == (70, 20, 100, 50)
    assert crop_region((10, 10, 90, 40), 5.0, 100, 50) == (0, 0, 100, 50)  # capped by the image
    with pytest.raises(ValueError, match="crop_factor"):
        artifact_detections(_probs(), crop_factor=0.5)


def test_pal_artifacts_to_segs_builds_impact_segs(interop):
    image = torch.rand(1, 96, 128, 3)
    probs = _probs()[None]
    node = interop.PALArtifactsToSEGS()
    (segs,) = node.convert(image, probs, 0.5, 0, 3.0, 4, "artifact")
    (h, w), items = segs
    assert (h, w) == (96, 128) and len(items) == 2
    for s in items:
        assert s._fields == IMPACT_SEG_FIELDS and s.label == "artifact"
        assert s.control_net_wrapper is None
        x1, y1, x2, y2 = s.crop_region
        bx1, by1, bx2, by2 = s.bbox
        assert all(isinstance(v, int) for v in [*s.crop_region, *s.bbox])
        assert x1 <= bx1 < bx2 <= x2 and y1 <= by1 < by2 <= y2
        assert isinstance(s.cropped_mask, np.ndarray) and s.cropped_mask.dtype == np.float32
        assert s.cropped_mask.shape == (y2 - y1, x2 - x1)
        assert torch.equal(s.cropped_image, image[:, y1:y2, x1:x2, :])
    expected = M.remove_small((probs > 0.5).float(), 4)[0]
    assert torch.equal(_combined(segs), expected)


def test_dilation_grows_the_segments_like_pal_mask_refine(interop):
    image = torch.rand(1, 96, 128, 3)
    (segs,) = interop.PALArtifactsToSEGS().convert(image, _probs()[None], 0.5, 6, 3.0, 4, "a")
    grown = M.remove_small(M.grow((_probs()[None] > 0.5).float(), 6), 4)[0]
    assert torch.equal(_combined(segs), grown)


def test_segs_refuse_a_batch_and_a_map_of_another_image(interop):
    node = interop.PALArtifactsToSEGS()
    with pytest.raises(ValueError, match="one image"):
        node.convert(torch.rand(2, 96, 128, 3), _probs()[None], 0.5, 0, 3.0, 1, "a")
    with pytest.raises(ValueError, match="does not match"):
        node.convert(torch.rand(1, 64, 64, 3), _probs()[None], 0.5, 0, 3.0, 1, "a")


class _FlagsMagenta(torch.nn.Module):
    """A stand-in detector: logits that flag magenta pixels (normalised input)."""

    input_resample = "bilinear"

    def forward(self, x):
        magenta = (x[:, 0] > 1) & (x[:, 1] < 0) & (x[:, 2] > 1)
        return torch.stack([~magenta, magenta], 1).float() * 10 - 5


def test_the_detector_provider_works_like_an_impact_detector(interop):
    from types import SimpleNamespace

    image = torch.rand(1, 512, 512, 3) * 0.3
    image[0, 100:180, 200:300] = torch.tensor([1.0, 0.0, 1.0])
    model = SimpleNamespace(model=_FlagsMagenta(), name="stand-in", precision="auto")
    bbox_detector, segm_detector = interop.PALDetectorProvider().provide(model, "resize")
    bbox_detector.setAux("aux")  # Impact calls it; harmless
    (h, w), items = bbox_detector.detect(image, 0.5, 0, 2.0, 10)
    assert (h, w) == (512, 512) and len(items) == 1
    x1, y1, x2, y2 = items[0].bbox
    assert abs(x1 - 200) <= 2 and abs(y1 - 100) <= 2 and abs(x2 - 300) <= 2 and abs(y2 - 180) <= 2
    combined = segm_detector.detect_combined(image, 0.5, 0)
    assert combined.shape == (512, 512) and combined.dtype == torch.float32
    inside = combined[100:180, 200:300].mean()
    assert inside > 0.95 and combined.sum() < 1.1 * 80 * 100
    with pytest.raises(ValueError, match="one image"):
        bbox_detector.detect(torch.rand(2, 64, 64, 3), 0.5, 0, 2.0)


def test_artifact_boxes_are_comfyui_bounding_boxes_per_image(interop):
    probs = torch.stack([_probs(), torch.zeros(96, 128), _probs().flip(-1)])
    node = interop.PALArtifactBoxes()
    assert node.RETURN_TYPES == ("BOUNDING_BOX",)
    (boxes,) = node.boxes(probs, 0.5, 0, 4, "artifact")
    assert len(boxes) == 3 and boxes[1] == []  # one list per image, in batch order
    first = boxes[0]
    assert [set(b) for b in first] == [{"x", "y", "width", "height", "label", "score"}] * 2
    assert {**first[0], "score": round(first[0]["score"], 4)} == {  # the speck is dropped
        "x": 20.0, "y": 10.0, "width": 40.0, "height": 20.0, "label": "artifact", "score": 0.9
    }  # fmt: skip
    assert first[1]["x"] == 100.0 and first[1]["width"] == 10.0
    assert first[1]["score"] == pytest.approx(0.7)
    mirrored = boxes[2][0]  # the same region seen in the flipped map
    assert mirrored["x"] == 128 - 60 and mirrored["width"] == 40.0
    (grown,) = node.boxes(probs[:1], 0.5, 3, 1, "x")
    assert grown[0][0]["width"] == 46.0 and len(grown[0]) == 3 and grown[0][0]["label"] == "x"
