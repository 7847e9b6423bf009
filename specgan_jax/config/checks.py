"""Shared validation helpers and choice lists of the configuration sections."""

from __future__ import annotations

LOSSES = ("wgan-gp", "wgan", "dcgan", "lsgan", "ns-r1", "hinge")
# Metrics that can pick the best checkpoint (lower is better except inception_score and
# class_accuracy; the last three are per class, for conditional models).
EVAL_METRICS = ("fd", "kid", "ndb", "mean_rms", "std_rms", "inception_score", "intra_fd",
                "intra_kid", "class_accuracy")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
