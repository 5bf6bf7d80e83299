"""Typed experiment configs: plain Python `get_config()` files (big_vision style) and dotted CLI overrides.

An experiment config file is ordinary Python that defines `get_config()` returning a (nested) frozen dataclass.
Overrides such as `--set train.lr=1e-4 --set mesh.data=2` are parsed against the declared field types, so a typo in a
name or a value of the wrong type is an error naming the key, never a silently ignored string.

Supported field types: bool, int, float, str, `X | None`, `Literal[...]`, tuples of those (comma separated:
`data.weights=1,0.5`), and nested dataclasses (addressed with dots).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import pathlib
import types
import typing
from typing import Any, Sequence


class ConfigError(ValueError):
    """A config file or override is malformed."""


def load_config_file(path: str | os.PathLike) -> Any:
    """Runs `get_config()` of a Python config file (configs are code by design, like big_vision's)."""
    p = pathlib.Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    spec = importlib.util.spec_from_file_location(f"_zerogr_config_{p.stem}", p)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{p}: defines no get_config()")
    cfg = module.get_config()
    if not dataclasses.is_dataclass(cfg):
        raise ConfigError(f"{p}: get_config() returned {type(cfg).__name__}, expected a dataclass")
    return cfg


def _resolved_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse_value(text: str, tp: Any, key: str = "?") -> Any:
    """Parses `text` as a value of type `tp` (see module docstring for the supported types)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in ("none", "null", ""):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return parse_value(text, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}={text!r}: not any of {args} ({'; '.join(errors)})")
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise ConfigError(f"{key}={text!r}: must be one of {list(args)}")
    if origin is tuple:
        items = [t for t in text.split(",") if t.strip()] if text.strip() else []
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(parse_value(t.strip(), args[0], key) for t in items)
        if len(items) != len(args):
            raise ConfigError(f"{key}={text!r}: expected {len(args)} comma-separated values")
        return tuple(parse_value(t.strip(), a, key) for t, a in zip(items, args))
    if tp is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}={text!r}: expected a boolean (true/false)")
    if tp in (int, float):
        try:
            value = float(text) if tp is float else int(text.replace("_", ""))
        except ValueError:
            raise ConfigError(f"{key}={text!r}: expected {tp.__name__}") from None
        return value
    if tp is str:
        return text
    if tp is Any:
        return text
    raise ConfigError(f"{key}: fields of type {tp} cannot be set from the command line")


def override(cfg: Any, assignments: Sequence[str]) -> Any:
    """Returns a copy of the dataclass `cfg` with each `dotted.key=value` applied in order.

    A section checks its fields together when it is rebuilt (e.g. `search.prior_weight` needs a beam): an assignment
    that only a later one makes valid (`search.strategy=greedy` before `search.prior_weight=0`) is retried after the
    others, so the order on the command line does not matter; an assignment that stays invalid raises its error."""
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"override {assignment!r}: expected key=value")
    pending = list(enumerate(assignments))
    while pending:
        failed: list[tuple[int, str, ConfigError]] = []
        applied: list[tuple[int, str]] = []
        for i, assignment in pending:
            key, text = assignment.split("=", 1)
            key = key.strip()
            try:
                cfg = _set(cfg, key.split("."), text, key)
                applied.append((i, key))
            except ConfigError as e:
                failed.append((i, assignment, e))
        if not applied:  # nothing went through this round: the first error is real
            raise failed[0][2]
        # a deferred assignment whose key a later assignment has set is superseded (the last word wins)
        pending = [(i, a) for i, a, _ in failed
                   if not any(j > i and k == a.split("=", 1)[0].strip() for j, k in applied)]
    return cfg


def get(cfg: Any, key: str) -> Any:
    """The value at `dotted.key` of a (nested) dataclass."""
    for name in key.split("."):
        cfg = getattr(cfg, name)
    return cfg


def changes(cfg: Any, assignments: Sequence[str]) -> list[tuple[str, Any, Any]]:
    """(key, value in `cfg`, value after the overrides) for each key the assignments change: what a layer of
    overrides replaces in the config below it. The layer is applied whole (`override`), so a field that is valid
    only beside another of the layer's (`data.negatives_random` beside `data.negatives`) is reported, not refused."""
    after = override(cfg, assignments)  # first: a bad key or value raises override's ConfigError
    out = []
    for key in dict.fromkeys(a.split("=", 1)[0].strip() for a in assignments):
        if get(cfg, key) != get(after, key):
            out.append((key, get(cfg, key), get(after, key)))
    return out


def _set(node: Any, path: list[str], text: str, full_key: str) -> Any:
    if not dataclasses.is_dataclass(node):
        raise ConfigError(f"{full_key}: {'.'.join(path)} is not inside a config section")
    names = {f.name for f in dataclasses.fields(node)}
    head = path[0]
    if head not in names:
        raise ConfigError(f"{full_key}: {type(node).__name__} has no field {head!r} (fields: {sorted(names)})")
    current = getattr(node, head)
    if len(path) > 1:
        return dataclasses.replace(node, **{head: _set(current, path[1:], text, full_key)})
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"{full_key}: is a section; set one of its fields ({full_key}.<field>=...)")
    value = parse_value(text, _resolved_types(type(node))[head], full_key)
    return dataclasses.replace(node, **{head: value})


def to_dict(cfg: Any) -> dict:
    """JSON-able dict of a (nested) dataclass config; the class names are kept for readers."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict) -> Any:
    """Rebuilds a (nested) dataclass from `to_dict` output (tuples restored from JSON lists)."""
    hints = _resolved_types(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        tp, value = hints[f.name], data[f.name]
        if dataclasses.is_dataclass(tp):
            value = from_dict(tp, value)
        elif typing.get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return cls(**kwargs)
