"""One definition per option set: defaults, ranges, choices and help in a dataclass field.

A settings dataclass declares each field with :func:`option`; from that one declaration

- ``validate(obj)`` (call it in ``__post_init__``) checks types, ranges and choices and raises
  a ``ValueError`` that names the option, the value and what is allowed;
- ``comfy_inputs(cls, names)`` builds ComfyUI ``INPUT_TYPES`` entries (widget type, default,
  min / max / step, choices, tooltip);
- ``add_arguments(parser, cls, names)`` adds ``--dashed-name`` argparse options;
- ``pick(cls, mapping)`` builds the dataclass from the known keys of node kwargs or an
  argparse namespace.

The library, the nodes and the CLI therefore cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import typing
from collections.abc import Iterable, Mapping
from typing import Any

_KEY = "pal_option"


@dataclasses.dataclass(frozen=True)
class Spec:
    """How one option is shown and checked (the field's type and default come from the field)."""

    help: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None


def option(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    step: float | None = None,
    choices: Iterable[str] | None = None,
) -> Any:
    """A dataclass field with its default and its :class:`Spec` (help, range, choices)."""
    spec = Spec(help, min, max, step, tuple(choices) if choices is not None else None)
    if spec.choices is not None and default not in spec.choices:
        raise ValueError(f"default {default!r} is not one of {spec.choices}")
    return dataclasses.field(default=default, metadata={_KEY: spec})


@functools.cache
def fields(cls: type) -> dict[str, tuple[type, Any, Spec]]:
    """``{name: (type, default, spec)}`` of the declared options of dataclass ``cls``, in order
    (computed once per class: ``validate`` runs on every options object made; do not mutate)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if _KEY in f.metadata:
            out[f.name] = (hints[f.name], f.default, f.metadata[_KEY])
    return out


def validate(obj: Any) -> None:
    """Check every declared option of dataclass instance ``obj``; ints given for floats are
    converted. Raises ``ValueError`` naming the option and the allowed values."""
    name_of = type(obj).__name__
    for name, (typ, _, spec) in fields(type(obj)).items():
        value = getattr(obj, name)
        if typ is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name_of}.{name} must be true or false, got {value!r}")
            continue
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            object.__setattr__(obj, name, value)
        if typ in (int, float) and (isinstance(value, bool) or not isinstance(value, typ)):
            raise ValueError(f"{name_of}.{name} must be {typ.__name__}, got {value!r}")
        if typ is str and not isinstance(value, str):
            raise ValueError(f"{name_of}.{name} must be a string, got {value!r}")
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(f"{name_of}.{name} must be one of {list(spec.choices)}, got {value!r}")
        low = spec.min if spec.min is not None else -float("inf")
        high = spec.max if spec.max is not None else float("inf")
        if typ in (int, float) and not low <= value <= high:
            raise ValueError(
                f"{name_of}.{name} must be in {_range(spec)}, got {value!r}; {spec.help}"
            )


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _range(spec: Spec) -> str:
    low = "-inf" if spec.min is None else _num(spec.min)
    high = "inf" if spec.max is None else _num(spec.max)
    return f"[{low}, {high}]"


def _checked(typ: type, spec: Spec) -> Any:
    """An argparse ``type``: converts and range-checks, so a bad value is a usage error."""

    def convert(text: str) -> Any:
        try:
            value = typ(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {typ.__name__}, got {text!r}") from None
        low = spec.min if spec.min is not None else -float("inf")
        high = spec.max if spec.max is not None else float("inf")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {_range(spec)}")
        return value

    convert.__name__ = typ.__name__
    return convert


def comfy_inputs(cls: type, names: Iterable[str], **defaults: Any) -> dict[str, tuple]:
    """ComfyUI ``INPUT_TYPES`` entries for options ``names`` of ``cls``, in that order.

    ``defaults`` overrides a widget's default (the node's own, e.g. detection without TTA).
    """
    table = fields(cls)
    out = {}
    for name in names:
        typ, default, spec = table[name]
        default = defaults.get(name, default)
        extra: dict[str, Any] = {"default": default, "tooltip": spec.help}
        if spec.choices is not None:
            out[name] = (list(spec.choices), extra)
            continue
        for key in ("min", "max", "step"):
            value = getattr(spec, key)
            if value is not None:
                extra[key] = typ(value)
        kind = {bool: "BOOLEAN", int: "INT", float: "FLOAT", str: "STRING"}[typ]
        out[name] = (kind, extra)
    return out


def add_arguments(
    parser: argparse.ArgumentParser, cls: type, names: Iterable[str], **defaults: Any
) -> None:
    """Add ``--dashed-name`` options for ``names`` of ``cls`` (booleans as ``--x / --no-x``);
    ``defaults`` overrides a default for this command."""
    table = fields(cls)
    for name in names:
        typ, default, spec = table[name]
        default = defaults.get(name, default)
        flag = "--" + name.replace("_", "-")
        text = f"{spec.help} (default: {default})"
        if typ is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=text
            )
            continue
        kind = typ
        if spec.choices is None and typ in (int, float):
            text = f"{spec.help} (default: {_num(default)}; range {_range(spec)})"
            kind = _checked(typ, spec)
        parser.add_argument(flag, type=kind, default=default, choices=spec.choices, help=text)


def pick(cls: type, values: Mapping[str, Any] | argparse.Namespace, **overrides: Any) -> Any:
    """``cls(**known)`` from the keys of ``values`` that are options of ``cls`` (validated by
    ``cls.__post_init__``); ``overrides`` win."""
    if isinstance(values, argparse.Namespace):
        values = vars(values)
    names = {f.name for f in dataclasses.fields(cls)}
    known = {k: v for k, v in values.items() if k in names}
    known.update(overrides)
    return cls(**known)
