"""Constants of the PAL4VST model and paper, in one place.

Source: Zhang et al., "Perceptual Artifacts Localization for Image Synthesis Tasks",
ICCV 2023, and its released mmsegmentation config (``swin-large_upernet_unified_512x512``).
"""

# Input normalisation on RGB 0..255 (mmseg SegDataPreProcessor of the released config).
MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)

# The released model is trained and applied at 512x512 (the app squashes any image to it).
INPUT_SIZE = 512

# Class index of "artifact" in the 2-class output (0 = clean, 1 = artifact).
ARTIFACT_CLASS = 1

# PAR (perceptual artifact ratio) = mean of the binary artifact map; the binary map is the
# argmax of the two logits, i.e. artifact probability > 0.5.
PAR_THRESHOLD = 0.5
