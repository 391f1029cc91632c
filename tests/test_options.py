"""One definition per option set: the library, the node widgets and the CLI agree."""

from __future__ import annotations

import dataclasses

import pytest

from comfyui_pal.cli import build_parser
from comfyui_pal.options import comfy_inputs, fields, pick
from comfyui_pal.pipelines.detect import DetectOptions
from comfyui_pal.pipelines.fix import FixOptions


def _auto_fix_widgets(pack) -> dict:
    spec = pack.NODE_CLASS_MAPPINGS["PALAutoFix"].INPUT_TYPES()
    return {**spec["required"], **spec["optional"]}


def test_auto_fix_widgets_carry_the_fix_options_defaults_ranges_and_choices(pack):
    widgets = _auto_fix_widgets(pack)
    shown = [n for n in fields(FixOptions) if n in widgets]
    assert {"threshold", "min_confidence", "seed", "inpainter", "mode", "tta"} <= set(shown)
    for name in shown:
        _, default, spec = fields(FixOptions)[name]
        kind, extra = widgets[name]
        note = " Used only with MODEL, VAE, positive and negative connected."  # diffusion-only
        assert extra["default"] == default and extra["tooltip"] in (spec.help, spec.help + note)
        if spec.choices:
            assert kind == list(spec.choices), name
        else:
            assert (extra.get("min"), extra.get("max")) == (spec.min, spec.max), name


def test_the_fix_command_defaults_are_the_library_defaults():
    args = build_parser().parse_args(["fix", "in.png"])
    assert pick(FixOptions, args) == FixOptions()


def test_the_detect_command_defaults_are_the_library_defaults():
    args = build_parser().parse_args(["detect", "in.png"])
    assert pick(DetectOptions, args) == DetectOptions()


def test_cli_flags_reach_the_options():
    argv = ["fix", "in.png", "--no-tta", "--mode", "tiled", "--grow", "3", "--threshold", "0.4"]
    opts = pick(FixOptions, build_parser().parse_args(argv))
    assert (opts.tta, opts.mode, opts.grow, opts.threshold) == (False, "tiled", 3, 0.4)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grow", "-1"], "outside [0, 128]"),
        (["--threshold", "1.5"], "outside [0.01, 0.99]"),
        (["--mode", "squash"], "invalid choice"),
        (["--seed", "x"], "expected int"),
    ],
)
def test_out_of_range_cli_values_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["fix", "in.png", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_iterations": -1}, r"FixOptions.max_iterations must be in \[0, 10\]"),
        ({"inpainter": "lama"}, r"inpainter must be one of \['patchmatch', 'smooth'\]"),
        ({"grow": 2.5}, "grow must be int"),
        ({"tta": 1}, "tta must be true or false"),
    ],
)
def test_invalid_fix_options_raise_naming_the_option(change, message):
    with pytest.raises(ValueError, match=message):
        FixOptions(**change)


def test_ints_given_for_float_options_become_floats():
    assert isinstance(FixOptions(blend_radius=8).blend_radius, float)


def test_widget_defaults_can_differ_per_node_without_a_second_definition():
    widgets = comfy_inputs(DetectOptions, ["tta"], tta=True)
    assert widgets["tta"] == (
        "BOOLEAN",
        {"default": True, "tooltip": fields(DetectOptions)["tta"][2].help},
    )


def test_every_fix_option_has_help_and_a_valid_default():
    for f in dataclasses.fields(FixOptions):
        assert f.name in fields(FixOptions), f"{f.name} is not declared with option()"
    FixOptions()  # the defaults validate
