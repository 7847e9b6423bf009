"""Config dataclasses <-> JSON: what `config.json` and `--config FILE` hold.

`config_from_dict` builds a Config (or any dataclass of dataclass sections) from a nested dict,
naming the source file and the key in every error; unknown sections and fields are errors, so
a typo is never silently ignored. A section that renamed options upgrades the old names first
(its `upgrade_old_keys`), so an older config.json still loads. A run's config.json holds the resolved Config
(specgan_jax.config.resolve); one written by an older version (or by scripts/import_torch.py)
may also hold a top-level "resolved" object, recording what `model.conv_impl=auto` resolved to
on the machine that wrote it: information for a reader, never read back.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal, Union

from specgan_jax.errors import ConfigError

RESOLVED_KEY = "resolved"  # older config.json: what conv_impl=auto became (never read back)


def type_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a dataclass (postponed annotations evaluated)."""
    return typing.get_type_hints(cls)


def is_optional(tp) -> tuple[bool, Any]:
    """(True, T) for Optional[T] / T | None, else (False, tp)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def merge(base: dict, *overrides: dict) -> dict:
    """Nested dict merge, later overrides win (one level of sections)."""
    out = {k: dict(v) for k, v in base.items()}
    for ov in overrides:
        for sec, fields in ov.items():
            out.setdefault(sec, {}).update(fields)
    return out


def _coerce(value, tp, where: str):
    """Check/convert one JSON value to field type `tp` (lists -> tuples etc.)."""
    optional, base = is_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: null is not allowed here")
    origin = typing.get_origin(base)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = [a for a in typing.get_args(base) if a is not Ellipsis]
        inner = args[0] if args else Any
        seq = [_coerce(v, inner, where) if inner is not Any else v for v in value]
        return tuple(seq) if origin is tuple else seq
    if origin is Literal:
        if value not in typing.get_args(base):
            raise ConfigError(f"{where}: {value!r} is not one of "
                              f"{', '.join(map(repr, typing.get_args(base)))}")
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if base is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _upgrade_section(sec_cls: type, given: dict, source: str) -> dict:
    """A section's dict in its current option names: sec_cls.upgrade_old_keys, where the
    section renamed options (an older config.json still loads), else `given`."""
    upgrade = getattr(sec_cls, "upgrade_old_keys", None)
    if upgrade is None:
        return given
    try:
        return upgrade(given)
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None


def upgrade_old_keys(top_cls: type, d: dict, source: str = "config") -> dict:
    """`d` with every section of `top_cls` in its current option names (before it is merged
    with options in the current names, e.g. flags over a --config file)."""
    if not isinstance(d, dict):
        return d
    hints = type_hints(top_cls)
    return {sec: _upgrade_section(hints[sec], v, source) if sec in hints and isinstance(v, dict)
            else v for sec, v in d.items()}


def config_from_dict(top_cls: type, d: dict, source: str = "config"):
    """Build `top_cls` from a nested dict, naming `source` and the key in every error.

    Missing sections/fields take their defaults; unknown ones are errors (a typo must not be
    silently ignored). Checks in each section's __post_init__ become ConfigError.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a JSON object at the top level")
    top_hints = type_hints(top_cls)
    known = {f.name for f in dataclasses.fields(top_cls)}
    for sec in d:
        if sec not in known:
            raise ConfigError(f"{source}: unknown section {sec!r} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for sec in dataclasses.fields(top_cls):
        sec_cls = top_hints[sec.name]
        given = d.get(sec.name, {}) or {}
        if not isinstance(given, dict):
            raise ConfigError(f"{source}: section {sec.name!r} must be an object")
        given = _upgrade_section(sec_cls, given, source)
        hints = type_hints(sec_cls)
        names = {f.name for f in dataclasses.fields(sec_cls)}
        for k in given:
            if k not in names:
                raise ConfigError(f"{source}: unknown option {sec.name}.{k} "
                                  f"(known: {', '.join(sorted(names))})")
        vals = {k: _coerce(v, hints[k], f"{source}: {sec.name}.{k}") for k, v in given.items()}
        try:
            kwargs[sec.name] = sec_cls(**vals)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{source}: {e}") from None
    try:
        return top_cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{source}: {e}") from None


def config_to_dict(cfg) -> dict:
    """JSON-ready nested dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def load_json(path: str) -> dict:
    """Read a JSON config file with errors naming the file and line."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: line {e.lineno} column {e.colno}: {e.msg}") from None


def diff(a: dict, b: dict, ignore: dict[str, tuple] | None = None) -> list[str]:
    """Lines `section.field: a != b` for each differing field (ignoring run-control fields)."""
    ignore = ignore or {}
    out = []
    for sec in sorted(set(a) | set(b)):
        fa, fb = a.get(sec, {}), b.get(sec, {})
        for k in sorted(set(fa) | set(fb)):
            if k in ignore.get(sec, ()):
                continue
            if fa.get(k, "<absent>") != fb.get(k, "<absent>"):
                out.append(f"{sec}.{k}: {fa.get(k, '<absent>')!r} != {fb.get(k, '<absent>')!r}")
    return out


def config_json_text(config, resolved: dict | None = None) -> str:
    """The text of a run's config.json: the config, plus {"resolved": {...}} when given."""
    d = config_to_dict(config)
    if resolved:
        d[RESOLVED_KEY] = dict(resolved)
    return json.dumps(d, indent=2, sort_keys=True) + "\n"


def load_config_json(path: str, top_cls: type | None = None) -> dict:
    """A config.json or --config file as a dict, without the informational "resolved" part;
    with `top_cls`, its sections in their current option names (upgrade_old_keys)."""
    d = load_json(path)
    if isinstance(d, dict):
        d.pop(RESOLVED_KEY, None)
    return upgrade_old_keys(top_cls, d, source=path) if top_cls is not None else d
