"""Typed configuration: one dataclass per stage, each field documented once.

A field is declared with `opt(default, "help text with units")`. The same dataclass gives the
command-line flags (`--field-name`), the YAML keys of a pipeline file (`field_name`) and the
`config.json` written next to every run, so a setting has one name and one description everywhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from pathlib import Path

from .errors import UserError


def opt(default, help: str, choices=None, flag: bool = True):
    """A documented config field. `flag=False` keeps it out of the command line."""
    meta = {"help": help, "choices": choices, "flag": flag}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(tp):
    """bool/int/float/str for a field annotation like `int | None`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    return tp


def _types(cls) -> dict:
    return typing.get_type_hints(cls)


_KIND_NAMES = {int: "an integer", float: "a number", str: "a string"}


def _typed(kind):
    """An argparse type that says what it expected in words."""
    def parse(text):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {_KIND_NAMES[kind]}, got {text!r}") from None
    parse.__name__ = kind.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser, cls, defaults: dict | None = None) -> None:
    """Add one `--flag` per documented field of dataclass `cls` (defaults may be overridden)."""
    hints = _types(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("flag", True):
            continue
        kind = _base_type(hints[f.name])
        default = (defaults or {}).get(f.name, f.default if f.default is not dataclasses.MISSING
                                       else f.default_factory())
        name = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if kind is bool:
            parser.add_argument(name, default=default, action=argparse.BooleanOptionalAction,
                                help=f"{help_text} (default: {default})")
        elif typing.get_origin(kind) is list:  # a repeatable flag: --name A --name B
            parser.add_argument(name, default=list(default), action="append", metavar=f.name.upper(),
                                help=f"{help_text} (default: none)")
        elif kind in (int, float, str):
            parser.add_argument(name, default=default, type=_typed(kind),
                                choices=f.metadata.get("choices"), metavar=f.name.upper(),
                                help=f"{help_text} (default: {default})")


def from_namespace(cls, ns: argparse.Namespace, **extra):
    """Build `cls` from parsed flags (fields without a flag keep their defaults)."""
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
    values.update(extra)
    return cls(**values)


def from_dict(cls, data: dict, where: str):
    """Build `cls` from a mapping (a YAML section), rejecting unknown keys with a suggestion."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    hints = _types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserError(f"{where}: unknown setting {key!r}{hint}")
        values[key] = _coerce(value, _base_type(hints[key]), f"{where}.{key}")
    return cls(**values)


def _coerce(value, kind, where):
    if typing.get_origin(kind) is list:  # YAML: a list, or one string for a list of strings
        (item,) = typing.get_args(kind) or (str,)
        values = [value] if isinstance(value, str) and item is str else value
        if not isinstance(values, list):
            wanted = {str: "a string or a list of strings", int: "a list of integers"}.get(item, "a list of numbers")
            raise UserError(f"{where}: expected {wanted}, got {value!r}")
        if item is str and not all(isinstance(v, str) for v in values):
            raise UserError(f"{where}: expected a string or a list of strings, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(values)]
    if value is None or kind not in (bool, int, float, str):
        return value
    if kind is bool and not isinstance(value, bool):
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise UserError(f"{where}: expected an integer, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise UserError(f"{where}: expected a number, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise UserError(f"{where}: expected a string, got {value!r}")
    return kind(value)


def check_positive(cfg, names: list[str], allow_zero: tuple[str, ...] = ()) -> None:
    """Raise a UserError naming the flag when a size is zero or negative."""
    for name in names:
        value = getattr(cfg, name)
        if value is None:
            continue
        if value < 0 or (value == 0 and name not in allow_zero):
            need = ">= 0" if name in allow_zero else "> 0"
            raise UserError(f"--{name.replace('_', '-')} must be {need}, got {value}")


def to_dict(cfg) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}


def describe(cls) -> str:
    """Markdown table of a config dataclass: name, default, meaning (for docs and --help)."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append(f"| `{f.name}` | `{default}` | {f.metadata.get('help', '')} |")
    return "\n".join(rows)
