"""The pooled metrics' computations: the whole generated set against the real splits (what
each compares: specgan_jax.config.metrics; the scheme and its reasons: evaluator.py).

Each function takes the Evaluator `ev` (the real side, computed once) and the `Generated` set
`g` (evaluator.py) and returns the metric's eval.json entry, or None when it does not apply;
what the report draws goes into g.arrays, and intermediate results two metrics share (the
per-frequency curves, the nearest-neighbour distances) into g.cache.
"""

from __future__ import annotations

import numpy as np

from specgan_jax.config.metrics import MEMORIZATION_QUANTILE
from specgan_jax.evaluation import metrics as M

NN_UNITS = "RMS difference per time-frequency bin, normalised units (1 = 3 std)"


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise; den = 0 gives inf (1 where both are 0: a duplicate in both sets)."""
    out = np.where(num == 0, 1.0, np.inf)
    return np.divide(num, den, out=out, where=den > 0)


def fd(ev, g):
    return {"generated": M.frechet_distance(g.f, ev.held_f), "real_baseline": ev.baseline["fd"]}


def kid(ev, g):
    kg, kb = ev._kid(g.f, ev.held_f), ev.baseline["kid"]
    return {"generated": kg.mean, "real_baseline": kb.mean, "generated_std": kg.std,
            "real_baseline_std": kb.std, "subset_size": kg.subset_size, "n_subsets": kg.n_subsets}


def ndb(ev, g):
    nd = M.ndb_from_bins(ev.clusters.labels, M.assign(g.x, ev.clusters.centroids), ev.k,
                         ev.cfg.ndb_alpha)
    nb = ev.baseline["ndb"]
    g.arrays.update(ndb_ref=nd.train_proportions, ndb_gen=nd.test_proportions,
                    ndb_held=nb.test_proportions, ndb_different=nd.different)
    return {"generated": nd.count, "real_baseline": nb.count, "k": ev.k,
            "generated_fraction": nd.fraction, "real_baseline_fraction": nb.fraction,
            "alpha": ev.cfg.ndb_alpha}


def _curves(ev, g):
    """Per-frequency mean and std curves of the three sets, in the data's units."""
    if "curves" not in g.cache:
        g_mean, g_std = ev.to_units(*M.frequency_curves(g.x))
        r_mean, r_std = ev.to_units(*ev.ref_curves)
        h_mean, h_std = ev.to_units(*ev.held_curves)
        g.arrays.update(gen_mean=g_mean, gen_std=g_std, ref_mean=r_mean, ref_std=r_std,
                        held_mean=h_mean, held_std=h_std)
        g.cache["curves"] = {"mean": (g_mean, r_mean, h_mean), "std": (g_std, r_std, h_std)}
    return g.cache["curves"]


def _curve_error(ev, g, stat: str):
    gen, ref, held = _curves(ev, g)[stat]
    return {"generated": M.rms(gen - held), "real_baseline": M.rms(ref - held),
            "units": ev.units(), "error_curve_generated": (gen - held).tolist(),
            "error_curve_real_baseline": (ref - held).tolist()}


def mean_rms(ev, g):
    return _curve_error(ev, g, "mean")


def std_rms(ev, g):
    return _curve_error(ev, g, "std")


def _nn(ev, g):
    """Nearest-neighbour distances of the generated samples: to the reference split, the
    ratio to the held-out split's, and within the set; in normalised pixel space."""
    if "nn" not in g.cache:
        g_nn = M.nn_distances(g.x, ev.real.ref).distance
        g_ratio = ratio(g_nn, M.nn_distances(g.x, ev.real.held).distance)
        g_self = M.nn_distances(g.x, g.x, exclude_self=True).distance
        g.arrays.update(gen_nn=g_nn, held_nn=ev.held_nn, gen_self=g_self,
                        held_self=ev.held_self, gen_ratio=g_ratio, held_ratio=ev.held_ratio)
        g.cache["nn"] = (g_nn, g_ratio, g_self)
    return g.cache["nn"]


def nn_train(ev, g):
    g_nn = _nn(ev, g)[0]
    return {"generated": float(np.median(g_nn)), "real_baseline": float(np.median(ev.held_nn)),
            "generated_mean": float(g_nn.mean()), "real_baseline_mean": float(ev.held_nn.mean()),
            "generated_min": float(g_nn.min()), "real_baseline_min": float(ev.held_nn.min()),
            "units": NN_UNITS}


def memorization(ev, g):
    g_ratio = _nn(ev, g)[1]
    return {"generated": float((g_ratio < ev.ratio_threshold).mean()),
            "real_baseline": float((ev.held_ratio < ev.ratio_threshold).mean()),
            "ratio_threshold": ev.ratio_threshold,
            "generated_median_ratio": float(np.median(g_ratio)),
            "real_baseline_median_ratio": float(np.median(ev.held_ratio)),
            "ratio": "d(x, nearest reference) / d(x, nearest held-out); for held-out x, the "
                     "nearest other held-out; threshold: its "
                     f"{MEMORIZATION_QUANTILE:g}th percentile over the held-out split"}


def nn_self(ev, g):
    return {"generated": float(np.median(_nn(ev, g)[2])),
            "real_baseline": float(np.median(ev.held_self)), "units": NN_UNITS}


def _class_histograms(ev, g):
    """Predicted class proportions of the generated and held-out sets, and the held-out
    labels' proportions (classifier feature space only)."""
    if "classes" not in g.cache:
        real, c = ev.real, len(ev.real.class_names)
        hists = (M.class_histogram(g.p.argmax(1), c), M.class_histogram(ev.held_p.argmax(1), c),
                 M.class_histogram(real.held_labels, c))
        g.arrays.update(class_names=real.class_names, pred_gen=hists[0], pred_held=hists[1],
                        true_held=hists[2])
        g.cache["classes"] = hists
    return g.cache["classes"]


def inception_score(ev, g):
    if g.p is None:
        return None
    _class_histograms(ev, g)
    return {"generated": M.inception_score(g.p), "real_baseline": M.inception_score(ev.held_p),
            "real_reference": M.inception_score(ev.ref_p), "max": len(ev.real.class_names)}


def class_tv(ev, g):
    if g.p is None:
        return None
    pred_g, pred_h, true_h = _class_histograms(ev, g)
    names = ev.real.class_names
    return {"generated": M.total_variation(pred_g, true_h),
            "real_baseline": M.total_variation(pred_h, true_h),
            "generated_histogram": dict(zip(names, pred_g.tolist())),
            "real_baseline_histogram": dict(zip(names, pred_h.tolist())),
            "real_labels_histogram": dict(zip(names, true_h.tolist()))}


COMPUTE = {f.__name__: f for f in (fd, kid, ndb, mean_rms, std_rms, nn_train, memorization,
                                   nn_self, inception_score, class_tv)}
