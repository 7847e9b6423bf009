"""Evaluation during training (train.eval_every): the metrics of specgan_jax.evaluation at fixed
latents, and the best checkpoint by train.eval_metric.

Given a generate function (the jitted G), never the training loop: training calls it between
chunks and writes the returned row to metrics.jsonl.

A class-conditional model (model.conditional) is evaluated per class too: each class k of the
training data gets train.eval_n samples (0: as many as its held-out reals), latents 0..n-1 of
train.seed with label k, and the rows gain eval/intra_fd, eval/intra_kid and
eval/class_accuracy (specgan_jax.evaluation.per_class), any of which can be train.eval_metric.
tstr and aug_gain (specgan_jax.evaluation.tstr) train classifiers, so they are computed only
when one of them is train.eval_metric.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np

from specgan_jax.config import EvalConfig
from specgan_jax.engine.sampling import generate_batched, latents
from specgan_jax.errors import ConfigError, RunDirError
from specgan_jax.config.metrics import EVAL_METRICS, METRICS, SPECS
from specgan_jax.evaluation.evaluator import Evaluator
from specgan_jax.evaluation.per_class import MIN_PER_SET, MIN_PER_SET_METRICS
from specgan_jax.evaluation.splits import real_from_arrays
from specgan_jax.run.checkpoint import Checkpointer
from specgan_jax.run.run_dir import best_checkpoints

GEN_BATCH = 64  # generator batch of the periodic evaluation (the last one padded)
# What an unconditional model on data without classes can select.
PLAIN_METRICS = [m for m in EVAL_METRICS if not SPECS[m].needs]
CHOOSE_PLAIN = f"choose {', '.join(PLAIN_METRICS[:-1])} or {PLAIN_METRICS[-1]}"
PER_CLASS_METRICS = [m.name for m in METRICS if m.needs == "labels"]


class PeriodicEval:
    """Evaluation every train.eval_every steps inside train_and_evaluate, and the best
    checkpoint by train.eval_metric in <workdir>/checkpoints_best_<metric>/ (keep 1).

    The real side is the training data, split into reference / held-out halves with
    train.seed; generated samples use fixed latents (samples 0..n-1 of latent seed
    train.seed, as scripts/generate.py --seed), so the curve over steps is not sampling noise.
    No PRNG key or state of training is touched: a run trains identically with or without it.

    The best checkpoint's `meta` holds {"eval_metric", "score"}; a resumed run reads both back
    and checks the metric. Checkpoints of steps after the one the run resumes from belong to the abandoned part
    of the old trajectory (metrics.jsonl is truncated there too) and are removed, so a resumed
    run keeps the same best checkpoint as an uninterrupted one.
    """

    def __init__(self, config, dataset, moments, workdir: str, gen_fn, resumed_step: int = 0,
                 log: Callable[[str], None] = print):
        tc = config.train
        self.metric, self.log, self.gen_fn = tc.eval_metric, log, gen_fn
        self.cfg = EvalConfig(seed=tc.seed, n=tc.eval_n)
        splits = real_from_arrays(dataset.x, dataset.labels, dataset.class_names, moments,
                                  self.cfg, source="training data",
                                  overlap="both splits are the run's training data")
        self.spec = SPECS[self.metric]
        # Metrics that train classifiers only when they pick the best checkpoint.
        self.names = [m.name for m in METRICS if not m.slow or m.name == self.metric]
        if self.spec.needs == "classifier" and len(splits.class_names) < 2:
            raise ConfigError(f"train.eval_metric {self.metric} needs data with more than "
                              f"one class; {CHOOSE_PLAIN}")
        # Per class: a conditional model and data with classes (labels = the data's indices).
        self.by_class = bool(config.model.conditional) and len(splits.class_names) > 1
        if self.spec.needs == "labels" and not self.by_class:
            raise ConfigError(f"train.eval_metric {self.metric} is a per-class metric: it "
                              "needs a class-conditional model (--model.conditional) and data "
                              f"with more than one class; {CHOOSE_PLAIN}")
        if self.metric in MIN_PER_SET_METRICS and not any(
                min((splits.ref_labels == k).sum(), (splits.held_labels == k).sum(),
                    tc.eval_n or MIN_PER_SET) >= MIN_PER_SET
                for k in range(len(splits.class_names))):
            raise ConfigError(f"train.eval_metric {self.metric}: no class has {MIN_PER_SET} "
                              "real examples in each half of the split (reference, held-out) "
                              "and train.eval_n >= 2; it needs 4 per class")
        t0 = time.monotonic()
        self.evaluator = Evaluator(splits, self.cfg, moments,
                                   cache_dir=os.path.join(workdir, "eval"), log=log)
        meta = self.evaluator.meta()
        log(f"eval: every {tc.eval_every} steps, {meta['feature_space']} features"
            + (f" (held-out accuracy {meta['classifier_accuracy']:.3f})"
               if "classifier_accuracy" in meta else "")
            + f", best checkpoint by {self.metric}; set up in {time.monotonic() - t0:.1f} s")
        if "classifier_warning" in meta:
            log("eval: " + meta["classifier_warning"])
        mc, dist = config.model, config.loss.latent_dist
        if self.by_class:
            counts = [tc.eval_n or int((splits.held_labels == k).sum())
                      for k in range(len(splits.class_names))]
            self.z = np.concatenate([np.asarray(latents(tc.seed, np.arange(c), mc.latent_dim,
                                                        dist)) for c in counts])
            self.labels = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
        else:
            n = tc.eval_n or len(splits.held)
            self.z = np.asarray(latents(tc.seed, np.arange(n), mc.latent_dim, dist))
            self.labels = None
        self.batch = min(len(self.z), GEN_BATCH)
        # keep=1: saves happen only on improvement, so the newest step is the best one. Saved
        # synchronously: the state is donated to the next training chunk right after.
        self.best = Checkpointer(os.path.join(workdir, best_checkpoints(self.metric)),
                                 keep=1, every_steps=1 << 62, use_async=False)
        self.best_score, self.best_step = None, None
        scored = []
        for s in self.best.all_steps():
            if s > resumed_step:
                self.best.delete(s)
                continue
            m = self.best.read_meta(s)
            if m.get("eval_metric") != self.metric:
                raise RunDirError(f"{self.best.directory}/{s} holds a best checkpoint by "
                                  f"{m.get('eval_metric')!r}, not {self.metric!r}")
            scored.append((m["score"], s))
        if scored:
            # The best score; among equal ones the earliest step, which is the one an
            # uninterrupted run keeps (only a strictly better score replaces the best).
            sign = 1.0 if self.spec.lower_is_better else -1.0
            self.best_score, self.best_step = min(scored, key=lambda t: (sign * t[0], t[1]))
            for _, s in scored:  # a crash between orbax's save and its cleanup left two
                if s != self.best_step:
                    self.best.delete(s)

    def __call__(self, state, step: int) -> dict:
        """Evaluate the generator of `state` at `step`, keep it if best -> metrics row."""
        t0 = time.monotonic()
        ev = self.evaluator.evaluate(generate_batched(
            self.gen_fn, state.g_ema, state.g_batch_stats, self.z, self.batch,
            labels=self.labels), self.labels, names=self.names)
        score = float(ev.metrics[self.metric]["generated"])
        lower = self.spec.lower_is_better
        if self.best_score is None or (score < self.best_score if lower
                                       else score > self.best_score):
            self.best.save(step, state, {"eval_metric": self.metric, "score": score})
            self.best_score, self.best_step = score, int(step)
        row = ev.scalars()
        row[f"eval/best_{self.metric}"] = self.best_score
        row["eval/best_step"] = self.best_step
        m = ev.metrics
        per = "".join(f" | {k} {m[k]['generated']:.4g} (real {m[k]['real_baseline']:.4g})"
                      for k in PER_CLASS_METRICS if k in m)
        self.log(f"eval step {step}: fd {m['fd']['generated']:.4g} (real "
                 f"{m['fd']['real_baseline']:.4g}) | kid {m['kid']['generated']:.4g} (real "
                 f"{m['kid']['real_baseline']:.4g}) | ndb {m['ndb']['generated']}/"
                 f"{m['ndb']['k']} (real {m['ndb']['real_baseline']}){per} | best "
                 f"{self.metric} {self.best_score:.4g} at step {self.best_step} "
                 f"({time.monotonic() - t0:.1f} s)")
        return row

    def close(self) -> None:
        self.best.close()
