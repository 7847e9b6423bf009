"""Shared validation helpers and choice lists of the configuration sections."""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Literal, Union

from specgan_jax.config.metrics import EVAL_METRICS

LOSSES = ("wgan-gp", "wgan", "dcgan", "lsgan", "ns-r1", "hinge")
__all__ = ["EVAL_METRICS", "LOSSES", "check_choice", "check_literals", "literal_choices"]


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


@functools.lru_cache(maxsize=None)
def literal_choices(cls: type) -> tuple[tuple[str, tuple, bool], ...]:
    """(field, its Literal's choices, whether None is allowed too) for every field of dataclass
    `cls` annotated `Literal[...]` or `Optional[Literal[...]]`; read from the annotations
    (typing.get_type_hints resolves `Literal[SOME_TUPLE]` in the class's module)."""
    hints = typing.get_type_hints(cls)
    out = []
    for field in dataclasses.fields(cls):
        tp, optional = hints[field.name], False
        if typing.get_origin(tp) is Union:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            optional = len(args) < len(typing.get_args(tp))
            tp = args[0] if len(args) == 1 else tp
        if typing.get_origin(tp) is Literal:
            out.append((field.name, typing.get_args(tp), optional))
    return tuple(out)


def check_literals(obj, section: str) -> None:
    """Every Literal field of dataclass instance `obj` holds one of its choices (ValueError
    "<section>.<field> must be one of ..." otherwise)."""
    for name, choices, optional in literal_choices(type(obj)):
        value = getattr(obj, name)
        if not (optional and value is None):
            check_choice(f"{section}.{name}", value, choices)
