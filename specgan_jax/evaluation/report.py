"""The outputs of `specgan-evaluate`: eval.json, eval_report.png and the console table.

`evaluate_run` loads a run directory (specgan_jax.run.run_dir), generates with its checkpoint
(or reads a folder of generated CSVs), evaluates against real data and writes both files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import textwrap
import time
from typing import Callable, Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from specgan_jax import atomic
from specgan_jax.config import EvalConfig
from specgan_jax.data.normalize import denormalize
from specgan_jax.engine.sampling import latents
from specgan_jax.errors import EvaluateError
from specgan_jax.config.metrics import MEMORIZATION_QUANTILE, SPECS
from specgan_jax.evaluation.evaluator import Evaluation, Evaluator
from specgan_jax.evaluation.per_class import size_note
from specgan_jax.evaluation.splits import (RealSplits, fakes_from_folder, real_from_demo,
                                           real_from_folder)
from specgan_jax.run import preview
from specgan_jax.run.run_dir import LoadedRun, load_basics

REPORT_SAMPLES = 16  # spectrograms per grid in the report PNG


def _print(s: str) -> None:
    print(s, flush=True)


def save_report(path: str, ev: Evaluation, real: RealSplits, gen: np.ndarray, moments,
                title: str, notes: tuple = ()) -> str:
    """One PNG: real vs generated grids (data units), per-frequency mean/std curves, NN
    distance and memorisation-ratio histograms, NDB bin proportions, class distribution, the
    per-class metrics (when evaluated), and the metric table followed by `notes` (one line
    each)."""
    a = ev.arrays
    per_class = "intra_names" in a or "acc_names" in a
    n = min(REPORT_SAMPLES, len(real.held), len(gen))
    held_idx = preview.round_robin(real.held_labels, n)  # every class shown, not the first one only
    reals = denormalize(real.held[held_idx], moments)  # [n, F, T] input units
    fakes = denormalize(gen[:n], moments)
    vmin, vmax = preview.color_range(reals)
    fig = Figure(figsize=(14, 29 if per_class else 25), dpi=80)
    FigureCanvasAgg(fig)
    heights = [1.4, 1, 1, 1] + ([1] if per_class else []) + [1, 0.8]
    outer = fig.add_gridspec(len(heights), 2, height_ratios=heights, hspace=0.38, wspace=0.2,
                             left=0.06, right=0.965, top=0.955, bottom=0.02)
    _sample_grids(fig, outer, reals, fakes, n, len(real.held), len(gen), vmin, vmax)
    _frequency_panels(fig, outer, a, ev.metrics, moments)
    _distance_panels(fig, outer, a, ev.metrics)
    _ndb_and_class_panels(fig, outer, a, ev.metrics)
    if per_class:
        _per_class_panels(fig, outer, a)
    _artefact_and_classifier_panels(fig, outer, len(heights) - 2, a, ev.metrics)
    ax = fig.add_subplot(outer[len(heights) - 1, :])
    ax.axis("off")
    lines = summary_table(ev.metrics).split("\n")
    ax.text(0.0, 1.0, "\n".join(lines), family="monospace", fontsize=9, va="top")
    ax.text(0.41, 1.0, "\n".join(textwrap.fill(t, 88) for t in notes), fontsize=8, va="top")
    fig.suptitle(title, fontsize=11)
    return atomic.save_figure(fig, path)



def _sample_grids(fig, outer, reals, fakes, n: int, n_real: int, n_gen: int, vmin,
                  vmax) -> None:
    """Row 0: n real (held-out) and n generated spectrograms side by side, one colour scale."""
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    im = None
    for side, (imgs, name) in enumerate(((reals, "real (held-out)"), (fakes, "generated"))):
        sub = outer[0, side].subgridspec(rows, cols, wspace=0.04, hspace=0.04)
        for i in range(rows * cols):
            ax = fig.add_subplot(sub[i // cols, i % cols])
            ax.set_xticks([])
            ax.set_yticks([])
            if i < n:
                im = ax.imshow(imgs[i], origin="lower", aspect="auto", cmap="magma", vmin=vmin,
                               vmax=vmax, interpolation="nearest")
            else:
                ax.axis("off")
            if i == 0:
                ax.set_title(f"{name}: {n} of {n_real if side == 0 else n_gen} "
                             "(frequency up, time right)", fontsize=10, loc="left")
    if im is not None:
        cax = fig.add_axes([0.972, 0.8, 0.008, 0.13])
        cb = fig.colorbar(im, cax=cax)
        cb.ax.tick_params(labelsize=7)
        cb.set_label("input units", fontsize=7)



def _frequency_panels(fig, outer, a: dict, metrics: dict, moments) -> None:
    """Row 1: per-frequency mean and std curves of the reference, held-out and generated sets."""
    f = np.arange(len(a["gen_mean"]))
    unit = "log units" if moments.log_transform else "input units"
    for side, stat in enumerate(("mean", "std")):
        ax = fig.add_subplot(outer[1, side])
        ax.plot(f, a[f"ref_{stat}"], color="0.6", lw=1, label="real reference")
        ax.plot(f, a[f"held_{stat}"], color="k", lw=1.3, label="real held-out")
        ax.plot(f, a[f"gen_{stat}"], color="tab:red", lw=1.3, label="generated")
        v = metrics[f"{stat}_rms"]
        ax.set_title(f"per-frequency {stat} ({unit}); RMS error vs held-out: generated "
                     f"{v['generated']:.3g}, real reference {v['real_baseline']:.3g}", fontsize=9)
        ax.set_xlabel("frequency bin (CSV row)", fontsize=8)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)



def _distance_panels(fig, outer, a: dict, metrics: dict) -> None:
    """Row 2: nearest-neighbour distance histograms, and the memorisation ratio's."""
    ax = fig.add_subplot(outer[2, 0])
    hi = max(a["gen_nn"].max(), a["held_nn"].max(), a["gen_self"].max(), a["held_self"].max())
    bins = np.linspace(0, hi * 1.05, 40)
    ax.hist(a["held_nn"], bins, alpha=0.5, color="k", label="held-out → reference")
    ax.hist(a["gen_nn"], bins, alpha=0.5, color="tab:red", label="generated → reference")
    ax.hist(a["held_self"], bins, histtype="step", color="k", ls="--",
            label="held-out → other held-out (self)")
    ax.hist(a["gen_self"], bins, histtype="step", color="tab:red", ls="--",
            label="generated → other generated (self)")
    ax.set_title("nearest-neighbour RMS distance (normalised units)", fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)

    ax = fig.add_subplot(outer[2, 1])
    finite = np.concatenate([a["gen_ratio"], a["held_ratio"]])
    finite = finite[np.isfinite(finite)]
    rb = np.linspace(0, max(2.0, float(finite.max()) * 1.05 if len(finite) else 2.0), 40)
    ax.hist(np.minimum(a["held_ratio"], rb[-1]), rb, alpha=0.5, color="k", label="held-out")
    ax.hist(np.minimum(a["gen_ratio"], rb[-1]), rb, alpha=0.5, color="tab:red",
            label="generated")
    mem = metrics["memorization"]
    ax.axvline(mem["ratio_threshold"], color="tab:blue", lw=1,
               label=f"threshold ({MEMORIZATION_QUANTILE:g}th percentile of held-out)")
    ax.set_title(f"memorisation: d(x, nearest reference) / d(x, nearest held-out)\nbelow the "
                 f"threshold: generated {mem['generated']:.1%}, held-out "
                 f"{mem['real_baseline']:.1%}", fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)



def _ndb_and_class_panels(fig, outer, a: dict, metrics: dict) -> None:
    """Row 3: NDB bin proportions, and the class distribution (when the data has classes)."""
    ax = fig.add_subplot(outer[3, 0])
    k = len(a["ndb_ref"])
    x = np.arange(k)
    ax.bar(x - 0.27, a["ndb_ref"], 0.27, color="0.6", label="reference")
    ax.bar(x, a["ndb_held"], 0.27, color="k", label="held-out")
    ax.bar(x + 0.27, a["ndb_gen"], 0.27, color="tab:red", label="generated")
    for j in np.flatnonzero(a["ndb_different"]):
        ax.text(j + 0.27, a["ndb_gen"][j], "*", ha="center", va="bottom", color="tab:red")
    nd = metrics["ndb"]
    ax.set_title(f"NDB bins (k-means of the reference split): {nd['generated']}/{k} differ "
                 f"(*), real baseline {nd['real_baseline']}/{k}", fontsize=9)
    ax.set_xlabel("bin", fontsize=8)
    if k <= 30:
        ax.set_xticks(x)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)

    ax = fig.add_subplot(outer[3, 1])
    if "class_names" in a:
        c = len(a["class_names"])
        x = np.arange(c)
        ax.bar(x - 0.27, a["true_held"], 0.27, color="0.6", label="held-out labels")
        ax.bar(x, a["pred_held"], 0.27, color="k", label="held-out, predicted")
        ax.bar(x + 0.27, a["pred_gen"], 0.27, color="tab:red", label="generated, predicted")
        ax.set_xticks(x, a["class_names"], fontsize=7, rotation=30 if c > 6 else 0)
        ax.set_title("class distribution (classifier)", fontsize=9)
        ax.legend(fontsize=7)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "no classes: random convolutional features\n(no class distribution)",
                ha="center", va="center", fontsize=9)
    ax.tick_params(labelsize=7)



def _per_class_panels(fig, outer, a: dict) -> None:
    """Row 4: per-class intra FD and class accuracy, generated next to the real baseline."""
    for side, (names, gen, base, what) in enumerate((
            (a.get("intra_names"), a.get("intra_fd_gen"), a.get("intra_fd_base"),
             "intra-class FD (class k vs reference reals of k; lower is better)"),
            (a.get("acc_names"), a.get("acc_gen"), a.get("acc_base"),
             "class accuracy (classifier says k for class k; higher is better)"))):
        ax = fig.add_subplot(outer[4, side])
        if names is None:
            ax.axis("off")
            continue
        x = np.arange(len(names))
        ax.bar(x - 0.2, base, 0.4, color="k", label="real: held-out vs reference")
        ax.bar(x + 0.2, gen, 0.4, color="tab:red", label="generated")
        ax.set_xticks(x, names, fontsize=7, rotation=30 if len(names) > 6 else 0)
        ax.set_title(what, fontsize=9)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)


def _artefact_and_classifier_panels(fig, outer, row: int, a: dict, m: dict) -> None:
    """Left: per-image high-frequency power fractions (hf_excess); right: the held-out
    accuracy of classifiers trained on reals, on generated samples, on both (tstr, aug_gain),
    mean over seeds with their spread."""
    ax = fig.add_subplot(outer[row, 0])
    if "hf_gen" in a:
        hi = max(a["hf_gen"].max(), a["hf_held"].max(), a["hf_ref"].max(), 1e-6) * 1.05
        bins = np.linspace(0, hi, 40)
        ax.hist(a["hf_ref"], bins, histtype="step", color="0.6", label="real reference")
        ax.hist(a["hf_held"], bins, alpha=0.5, color="k", label="real held-out")
        ax.hist(a["hf_gen"], bins, alpha=0.5, color="tab:red", label="generated")
        h = m["hf_excess"]
        ax.set_title("fraction of 2-D spectral power at periods <= 4 bins (artefacts); "
                     f"hf_excess {h['generated']:.3g}, real {h['real_baseline']:.3g}",
                     fontsize=9)
        ax.set_xlabel("fraction, per spectrogram", fontsize=8)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    else:
        ax.axis("off")
    ax = fig.add_subplot(outer[row, 1])
    runs = [(k, lab, c) for k, lab, c in (("trtr", "real reference", "k"),
                                          ("tstr", "generated", "tab:red"),
                                          ("aug", "real + generated", "tab:purple")) if k in a]
    if not runs:
        ax.axis("off")
        ax.text(0.5, 0.5, "tstr / aug_gain: need generated samples with their classes\n"
                "(a class-conditional run, or --fakes in class folders)", ha="center",
                va="center", fontsize=9)
        return
    for i, (key, label, color) in enumerate(runs):
        ax.bar(i, a[key]["mean"], 0.6, yerr=a[key]["std"], color=color, capsize=4)
        ax.plot(np.full(len(a[key]["per_seed"]), i), a[key]["per_seed"], "o", color="0.3",
                ms=3)
    chance = (m.get("tstr") or m["aug_gain"])["chance"]
    ax.axhline(chance, color="tab:blue", lw=1, ls="--", label=f"chance ({chance:.2f})")
    ax.set_xticks(range(len(runs)), [f"trained on\n{lab}" for _, lab, _ in runs], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title("classifier accuracy on held-out reals (mean ± std over seeds, dots: seeds)",
                 fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)


def _fmt(v) -> str:
    return f"{v:d}" if isinstance(v, (int, np.integer)) else f"{v:.4g}"


def evaluate_run(run_dir: str, real: str, cfg: EvalConfig, *, out: Optional[str] = None,
                 step: Optional[int] = None, fakes: Optional[str] = None,
                 checkpoint_dir: str = "checkpoints", progress: bool = False, raw: bool = False,
                 log: Callable[[str], None] = _print) -> dict:
    """Evaluate a run's generator (or a folder of its generated CSVs) against real data.

    raw: evaluate the trained weights instead of their moving average (the default).
    Writes <out>/eval.json and <out>/eval_report.png (out default: <run_dir>/eval) and returns
    the eval.json content. Raises a SpecganError (specgan_jax.errors) on bad input.
    """
    t0 = time.monotonic()
    config, moments = load_basics(run_dir)
    run = None
    if fakes is None:  # fail on a missing checkpoint before the slow real-data work
        run = LoadedRun(run_dir, step=step, checkpoint_dir=checkpoint_dir, raw=raw)
    if real == "demo":
        splits = real_from_demo(config, moments, cfg)
    else:
        splits = real_from_folder(config, moments, real, cfg, progress)
    log(f"real: {len(splits.ref)} reference + {len(splits.held)} held-out spectrograms, "
        f"{len(splits.class_names)} class(es) from {splits.source}")
    n = cfg.n or len(splits.held)
    labels = None  # the generated samples' classes, by index into splits.class_names
    if fakes is not None:
        gen, fake_labels, fake_names = fakes_from_folder(config, moments, fakes, cfg.n)
        if len(fake_names) > 1 and len(splits.class_names) > 1:  # class folders
            labels = _class_map(fake_names, splits.class_names, f"{fakes} (--fakes)",
                                "the real data")[fake_labels]
        gen_source, gen_step = os.path.abspath(fakes), None
    else:
        if run.conditional:
            gen, labels = _generate_by_class(run, splits, cfg)
            which = "of each class" if cfg.n else "of each class, as many as its held-out reals"
            samples = f"samples 0..n-1 {which}"
        else:
            z = latents(cfg.seed, np.arange(n), config.model.latent_dim,
                        config.loss.latent_dist)
            gen = run.generate_normalized(z)
            samples = f"samples 0..{n - 1}"
        gen_source = (f"{os.path.join(os.path.abspath(run_dir), checkpoint_dir)} step "
                      f"{run.step} ({'trained' if raw else 'EMA'} weights), latents of seed "
                      f"{cfg.seed}, {samples}")
        gen_step = int(run.step)
    if labels is not None and len(splits.class_names) < 2:
        labels = None  # one real class: nothing to compare per class
    log(f"generated: {len(gen)} spectrograms from {gen_source}")
    evaluator = Evaluator(splits, cfg, moments, cache_dir=os.path.join(run_dir, "eval"), log=log)
    ev = evaluator.evaluate(gen, labels)
    meta = evaluator.meta() | {
        "n_generated": int(len(gen)), "generated_source": gen_source, "step": gen_step,
        "run_dir": os.path.abspath(run_dir), "comparisons": {k: SPECS[k].text for k in ev.metrics},
        "eval_config": dataclasses.asdict(cfg),
        "time_s": round(time.monotonic() - t0, 1)}
    if len(gen) != len(splits.held):
        meta["size_note"] = (f"{len(gen)} generated vs {len(splits.held)} held-out: the "
                             "Fréchet distance's small-sample bias differs from the baseline's")
    if labels is not None:
        sizes = {c: int((labels == k).sum()) for k, c in enumerate(splits.class_names)}
        meta["n_generated_per_class"] = sizes
        meta["n_real_ref_per_class"] = {c: int((splits.ref_labels == k).sum())
                                        for k, c in enumerate(splits.class_names)}
        meta["n_real_heldout_per_class"] = {c: int((splits.held_labels == k).sum())
                                            for k, c in enumerate(splits.class_names)}
        meta["per_class_note"] = size_note({c: v for c, v in sizes.items() if v})
    result = {**ev.metrics, "meta": meta}
    out = out or os.path.join(run_dir, "eval")
    json_path = os.path.join(out, "eval.json")
    atomic.write_text(json_path, json.dumps(result, indent=2) + "\n")
    title = (f"{os.path.basename(os.path.abspath(run_dir))}: "
             + (f"step {gen_step}" if gen_step is not None else f"fakes {fakes}")
             + f" | features: {evaluator.space.kind}")
    notes = [f"features: {meta['feature_space']}" + (
                 f" (classifier held-out accuracy {meta['classifier_accuracy']:.3f})"
                 if "classifier_accuracy" in meta else ""),
             f"real: {splits.source}", f"relation to training: {splits.overlap}",
             f"generated: {gen_source}"]
    notes += [meta[k] for k in ("classifier_warning", "size_note", "per_class_note")
              if k in meta]
    save_report(os.path.join(out, "eval_report.png"), ev, splits, gen, moments, title, notes)
    return result


def _class_map(names: list, real_names: list, what: str, real_what: str) -> np.ndarray:
    """Index k of `names` -> the index of the same class name in `real_names`."""
    unknown = [c for c in names if c not in real_names]
    if unknown:
        raise EvaluateError(f"{what}: class(es) {', '.join(unknown)} are not among the classes "
                            f"of {real_what} ({', '.join(real_names)}); per-class evaluation "
                            "matches classes by name")
    return np.asarray([real_names.index(c) for c in names], np.int64)


def _generate_by_class(run: LoadedRun, splits: RealSplits, cfg: EvalConfig):
    """A conditional run's samples for each class of the real data: class j gets cfg.n (0:
    as many as its held-out reals) samples, latents 0..n-1 of cfg.seed (as generate.py
    --per-class) -> (normalised [N, F, T], labels [N] into splits.class_names)."""
    ids = _class_map(splits.class_names, run.class_names, "--real",
                     "the run (labels.json)")  # real class j -> the run's label ids[j]
    mc, lc = run.config.model, run.config.loss
    counts = [cfg.n or int((splits.held_labels == j).sum()) for j in range(len(ids))]
    z = np.concatenate([np.asarray(latents(cfg.seed, np.arange(c), mc.latent_dim,
                                           lc.latent_dist)) for c in counts])
    real_labels = np.repeat(np.arange(len(ids)), counts)
    return run.generate_normalized(z, labels=ids[real_labels]), real_labels


def _cell(v: dict, which: str) -> str:
    """A value, with '± std' where the metric has a spread (over KID subsets, classifier
    seeds)."""
    std = v.get(f"{which}_std")
    return _fmt(v[which]) + ("" if std is None else f" ± {std:.2g}")


def summary_table(result: dict) -> str:
    """The metric table (eval.json without "meta"): generated and real baseline per metric."""
    lines = [f"{'metric':<16}{'generated':>20}{'real baseline':>22}"]
    for key, v in result.items():
        if key != "meta":
            lines.append(f"{key:<16}{_cell(v, 'generated'):>20}"
                         f"{_cell(v, 'real_baseline'):>22}")
    return "\n".join(lines)
