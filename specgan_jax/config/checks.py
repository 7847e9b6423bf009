"""Shared validation helpers and choice lists of the configuration sections."""

from __future__ import annotations

LOSSES = ("wgan-gp", "wgan", "dcgan", "lsgan")
# Metrics that can pick the best checkpoint (all but the last: lower is better).
EVAL_METRICS = ("fd", "kid", "ndb", "mean_rms", "std_rms", "inception_score")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
