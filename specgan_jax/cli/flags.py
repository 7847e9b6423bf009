"""Command-line flags generated from the config dataclasses.

One flag per field, `--<section>.<field>` (e.g. `--model.dim 16`, `--loss.loss dcgan`), typed
from the field's annotation: `bool` gives `--x` / `--no-x`, `Literal[...]` gives choices,
`Optional[T]` also accepts `none`, `tuple[T, ...]` takes several values. A few flags set
several fields of a section at once (COMPOUND_FLAGS: `--data.shape F T` is
`--data.n_freq F --data.n_time T`). The help text of each
flag is the comment written next to the field in specgan_jax/config/, so the dataclasses stay the single
documented source (as big_vision's configs and the flax examples' train configs do).

Precedence, lowest first: dataclass defaults < a preset (e.g. the demo run's) < `--config FILE`
< explicit flags. Flags default to argparse.SUPPRESS so "given" and "defaulted" differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import io
import re
import sys
import tokenize
import typing
from typing import Literal

from specgan_jax.config.train import DataConfig
from specgan_jax.config_json import is_optional, type_hints
from specgan_jax.errors import ConfigError

NONE_WORDS = ("none", "None", "null")

# section class -> {flag name: (the int fields it sets, in order, their metavars, help)}
COMPOUND_FLAGS = {
    DataConfig: {"shape": (("n_freq", "n_time"), ("F", "T"),
                           "frequency rows x time frames of a training example, e.g. "
                           "--data.shape 64 256 (sets data.n_freq and data.n_time; the model's "
                           "shape follows; multiples of 32) [default: 128 128]")},
}


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """The comments attached to each field of dataclass `cls` in its source.

    A field's doc is the full-line comments right above it plus the trailing comment on its
    own line. Returns {} for a class whose source is unavailable.
    """
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    docs: dict[str, str] = {}
    pending: list[str] = []  # full-line comments waiting for the next field
    line_of_field: dict[int, str] = {}
    for lineno, line in enumerate(src.splitlines(), 1):
        m = re.match(r"\s*(\w+)\s*:", line)
        if m and m.group(1) in names and m.group(1) not in docs:
            line_of_field[lineno] = m.group(1)
    # Trailing comments via tokenize, so '#' inside strings is not mistaken for a comment.
    trailing: dict[int, str] = {}
    full_line: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.COMMENT:
                text = tok.string.lstrip("#").strip()
                if tok.line.strip().startswith("#"):
                    full_line[tok.start[0]] = text
                else:
                    trailing[tok.start[0]] = text
    except (tokenize.TokenError, IndentationError):
        return {}
    for lineno, line in enumerate(src.splitlines(), 1):
        if lineno in full_line:
            pending.append(full_line[lineno])
        elif lineno in line_of_field:
            parts = pending + ([trailing[lineno]] if lineno in trailing else [])
            docs[line_of_field[lineno]] = " ".join(parts)
            pending = []
        else:  # blank line or other code: comments above it belong to nothing
            pending = []
    return docs


def _scalar_parser(tp, flag: str):
    """A str -> value converter for one scalar type (for argparse `type=`)."""
    if tp is bool:
        def parse_bool(s: str) -> bool:
            low = s.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise argparse.ArgumentTypeError(f"{flag}: expected true/false, got {s!r}")
        return parse_bool
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        kind = type(choices[0])

        def parse_choice(s: str):
            v = kind(s)
            if v not in choices:
                raise argparse.ArgumentTypeError(
                    f"{flag}: invalid choice {s!r} (choose from {', '.join(map(str, choices))})")
            return v
        return parse_choice
    if tp in (int, float, str):
        def parse_plain(s: str):
            try:
                return tp(s)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{flag}: expected {tp.__name__}, got {s!r}") from None
        return parse_plain
    raise TypeError(f"{flag}: no flag parser for type {tp!r}")


def _flag_kwargs(tp, flag: str) -> dict:
    """argparse.add_argument keyword arguments for a field of type `tp`."""
    optional, base = is_optional(tp)
    if base is bool and not optional:
        return {"action": argparse.BooleanOptionalAction}
    origin = typing.get_origin(base)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(base) if a is not Ellipsis]
        inner = _scalar_parser(args[0] if args else str, flag)
        nargs = "*" if (Ellipsis in typing.get_args(base) or not args) else len(typing.get_args(base))
        return {"type": inner, "nargs": nargs}
    parse = _scalar_parser(base, flag)
    kw: dict = {}
    if optional:
        def parse_opt(s: str):
            return None if s in NONE_WORDS else parse(s)
        kw["type"] = parse_opt
    else:
        kw["type"] = parse
    if origin is Literal:
        kw["metavar"] = "{" + ",".join(map(str, typing.get_args(base)))
        kw["metavar"] += ",none}" if optional else "}"
    else:  # e.g. INT, FLOAT|none: the type, not the dest, in the usage line
        kw["metavar"] = base.__name__.upper() + ("|none" if optional else "")
    return kw


def add_config_flags(parser: argparse.ArgumentParser, top_cls: type,
                     aliases: dict[str, str] | None = None) -> None:
    """Add `--<section>.<field>` flags for every field of every dataclass section of `top_cls`.

    aliases: short flag name -> "section.field" (e.g. {"steps": "train.steps"}); the alias
    shares the dest of the long flag.
    """
    aliases = aliases or {}
    by_target = {v: k for k, v in aliases.items()}
    top_hints = type_hints(top_cls)
    for sec in dataclasses.fields(top_cls):
        sec_cls = top_hints[sec.name]
        group = parser.add_argument_group(
            f"{sec.name} options ({sec_cls.__name__})",
            (inspect.getdoc(sec_cls) or "").split("\n")[0])
        docs = field_docs(sec_cls)
        hints = type_hints(sec_cls)
        for f in dataclasses.fields(sec_cls):
            dest = f"{sec.name}.{f.name}"
            flags = [f"--{dest}"]
            if dest in by_target:
                flags.insert(0, f"--{by_target[dest]}")
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            doc = docs.get(f.name, "").replace("%", "%%")
            group.add_argument(*flags, dest=dest, default=argparse.SUPPRESS,
                               help=f"{doc} [default: {default!r}]".strip(),
                               **_flag_kwargs(hints[f.name], flags[-1]))
        for name, (fields, metavar, doc) in COMPOUND_FLAGS.get(sec_cls, {}).items():
            flag = f"--{sec.name}.{name}"
            group.add_argument(flag, dest=f"{sec.name}.{name}", default=argparse.SUPPRESS,
                               nargs=len(fields), type=_scalar_parser(int, flag),
                               metavar=metavar,
                               help=doc.replace("%", "%%"))


def overrides_from_args(ns: argparse.Namespace, top_cls: type) -> dict[str, dict]:
    """The explicitly given config flags as a nested {section: {field: value}} dict."""
    out: dict[str, dict] = {}
    hints = type_hints(top_cls)
    sections = {f.name for f in dataclasses.fields(top_cls)}
    compound = []
    for dest, value in vars(ns).items():
        if "." in dest and dest.split(".", 1)[0] in sections:
            sec, name = dest.split(".", 1)
            fields = COMPOUND_FLAGS.get(hints[sec], {}).get(name, (None,))[0]
            if fields is None:
                out.setdefault(sec, {})[name] = value
            else:
                compound.append((sec, name, fields, value))
    for sec, name, fields, values in compound:
        given = [f"--{sec}.{f}" for f in fields if f in out.get(sec, {})]
        if given:
            raise ConfigError(f"--{sec}.{name} and {' / '.join(given)} both given: use one")
        out.setdefault(sec, {}).update(zip(fields, values))
    return out


def finish(code: int, argv) -> int:
    """End a console entry point: return the exit code when main() was called with an argv
    (tests), sys.exit with it when run from the console (argv=None)."""
    if argv is None:
        sys.exit(code)
    return code
