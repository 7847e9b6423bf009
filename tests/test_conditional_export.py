"""Export of a class-conditional generator to PyTorch (specgan_torch_ref.conditional) and import
back: the sidecar names the class, the constructor kwargs (n_classes, embed_dim) and the class
names; the torch generator reproduces the JAX output for given (z, y) at the export test's
fp32 tolerance; the round trip is exact."""

import json

import jax
import numpy as np
import pytest
import torch

from specgan_jax.cli.export import export_main, import_main
from specgan_jax.engine.sampling import latents
from specgan_jax.run.run_dir import LoadedRun
from specgan_torch_ref.conditional import SpecGANConditionalGenerator
from tests import helpers
from tests.test_export import FORWARD_TOL  # the parity suite's TOL["forward"]

CLASSES = ["type_1", "type_3", "cat"]


def perturbed(state):
    """BN running statistics and EMA weights away from their defaults (zeros/ones, = the trained
    weights), so that a swapped or skipped tensor would show."""
    keys = iter(jax.random.split(jax.random.PRNGKey(7), 1000))

    def stat(path, v):
        lo, hi = (0.5, 2.0) if "var" in jax.tree_util.keystr(path) else (-0.5, 0.5)
        return jax.random.uniform(next(keys), v.shape, v.dtype, lo, hi)

    return state.replace(
        g_batch_stats=jax.tree_util.tree_map_with_path(stat, state.g_batch_stats),
        g_ema=jax.tree.map(lambda p: p + 0.05 * jax.random.normal(next(keys), p.shape, p.dtype),
                           state.g_params))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, jax_cache):
    root = tmp_path_factory.mktemp("cond_export")
    run_dir = root / "run"
    helpers.write_conditional_run(run_dir, CLASSES, use_batchnorm=True, state_fn=perturbed)
    assert export_main([str(run_dir), "--out", str(root / "G.pt")]) == 0
    side = json.loads((root / "G.pt.json").read_text())
    g = SpecGANConditionalGenerator(**side["kwargs"])
    g.load_state_dict(torch.load(root / "G.pt", weights_only=True))
    g.eval()
    return {"root": root, "run_dir": str(run_dir), "run": LoadedRun(str(run_dir)),
            "side": side, "g": g}


def test_sidecar_names_the_conditional_class_and_classes(exported):
    side = exported["side"]
    assert side["class"] == "specgan_torch_ref.conditional.SpecGANConditionalGenerator"
    assert side["conditional"] is True and side["n_classes"] == 3
    assert side["class_names"] == CLASSES
    assert side["kwargs"] == {"n_classes": 3, "nz": 100, "kernel_len": 5, "dim": 4,
                              "use_batchnorm": True, "upsample": "zeros", "padding": "same",
                              "n_freq": 128, "n_time": 128, "embed_dim": 100}


def test_torch_generator_reproduces_jax_for_given_classes(exported):
    run, g = exported["run"], exported["g"]
    z = np.array(latents(3, np.arange(6), 100, "uniform"))  # a writable copy for torch
    y = np.array([0, 1, 2, 2, 1, 0])
    with torch.no_grad():
        ref = g(torch.from_numpy(z), torch.from_numpy(y)).numpy()[:, 0]
        other = g(torch.from_numpy(z), torch.from_numpy((y + 1) % 3)).numpy()[:, 0]
    ours = run.generate_normalized(z, labels=y)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=FORWARD_TOL)
    assert np.abs(other - ref).max() > 100 * FORWARD_TOL  # the class changes the output
    # by class name, the same numbers
    np.testing.assert_array_equal(run.generate_normalized(z, labels=[CLASSES[k] for k in y]),
                                  ours)


def test_export_takes_the_ema_unless_raw(exported):
    root = exported["root"]
    assert export_main([exported["run_dir"], "--out", str(root / "raw.pt"), "--raw"]) == 0
    raw = torch.load(root / "raw.pt", weights_only=True)
    ema = exported["g"].state_dict()
    assert not torch.equal(raw["class_embed.weight"], ema["class_embed.weight"])
    assert json.loads((root / "raw.pt.json").read_text())["weights"] == "trained (raw)"


def test_import_back_is_exact_and_keeps_class_names(exported, capsys):
    root = exported["root"]
    back = root / "imported"
    assert import_main([str(root / "G.pt"), "--moments", str(root / "run" / "moments.npz"),
                        "--out", str(back)]) == 0
    run2, run = LoadedRun(str(back)), exported["run"]
    assert run2.conditional and run2.class_names == CLASSES
    assert run2.config.model.n_classes == 3 and run2.config.model.use_batchnorm
    for a, b in zip(jax.tree.leaves(run2.g_params), jax.tree.leaves(run.g_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(jax.tree.leaves(run2.g_batch_stats), jax.tree.leaves(run.g_batch_stats)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    z = np.asarray(latents(0, np.arange(3), 100, "uniform"))
    np.testing.assert_array_equal(run2.generate(z, labels=["cat"] * 3),
                                  run.generate(z, labels=["cat"] * 3))
    capsys.readouterr()
    # class names that do not fit the model: a clear error, no run directory left
    rc = import_main([str(root / "G.pt"), "--moments", str(root / "run" / "moments.npz"),
                      "--out", str(root / "bad"), "--class-names", "a", "b"])
    err = capsys.readouterr().err
    assert rc == 1 and "2 class names for a model with conditional=True, n_classes=3" in err
    assert not (root / "bad").exists()
