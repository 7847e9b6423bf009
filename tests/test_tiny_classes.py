"""Tiny classes: a class with fewer files than the batch trains, conditional and class-
balanced, with ADA's held-out files on (a class's last file is never held out), and the
class-balanced sampler draws it as often as the big class. (Marking per-class metrics of such
a class: tests/test_conditional_eval.py.)"""

import json
import os

import jax
import numpy as np

from specgan_jax.cli import train as train_cli
from specgan_jax.config import AugmentConfig
from specgan_jax.data import sampler as sampler_lib
from specgan_jax.data.moments import compute_moments
from specgan_jax.run.metrics_log import read_metrics
from tests import helpers


def test_a_class_smaller_than_the_batch_trains_conditional_balanced_with_ada(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for cls, n in (("big", 9), ("tiny", 2)):  # batch 4 > tiny's 2 files
        os.makedirs(data / cls)
        for i in range(n):
            np.savetxt(data / cls / f"{i}.csv", rng.normal(0, 1, (32, 32)) + (cls == "tiny"),
                       delimiter=",", fmt="%.5f")
    work = tmp_path / "run"
    args = helpers.tiny_args(data, work, 2, tmp_path / "cache", "--data.shape", "32", "32",
                             "--model.conditional", "--loss.fake_classes", "uniform",
                             "--diffaug.ada", "--diffaug.ada_signal", "heldout",
                             "--diffaug.ada_heldout", "0.5", "--diffaug.ada_interval", "1")
    assert train_cli.main(args) == 0
    rows = [r for r in read_metrics(str(work / "metrics.jsonl")) if "d_loss" in r]
    assert rows and all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
    assert json.load(open(work / "labels.json"))["class_names"] == ["big", "tiny"]


def test_class_balanced_sampling_draws_a_tiny_class_half_the_time():
    x = np.random.default_rng(0).normal(0, 1, (66, 32, 32)).astype(np.float32)
    labels = np.repeat([0, 1], [64, 2]).astype(np.int32)
    host = sampler_lib.build_dataset(x, labels, compute_moments(x))
    s = jax.jit(sampler_lib.make_sampler(AugmentConfig(), with_labels=True,
                                         class_balanced=True, n_classes=2),
                static_argnums=(2, 3))
    _, y = s(sampler_lib.to_device(host), jax.random.PRNGKey(0), 5, 64)  # 320 draws
    # each class with probability 1/2: binomial std of 320 draws 0.028, 5 std bounds
    assert abs(np.asarray(y).mean() - 0.5) < 5 * 0.028
