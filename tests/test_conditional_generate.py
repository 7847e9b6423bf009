"""Generation by class from a class-conditional run directory (made without training, see
helpers.write_conditional_run): class folders and names, per-class and round-robin counts,
the (seed, class, i) naming of samples, truncation, latent interpolation per class, the
class-row preview grid, and the errors for unknown classes and for labels given to an
unconditional model."""

import os

import numpy as np
import pytest
from PIL import Image

from specgan_jax.cli.generate import main as gen_main
from specgan_jax.engine.sampling import interpolation_latents, latents, truncate
from specgan_jax.errors import RunDirError
from specgan_jax.run import preview
from specgan_jax.run.run_dir import LoadedRun
from tests import helpers

CLASSES = ["type_1", "type_3", "cat"]
RUN_V0 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "run_v0")
# generate.py writes CSVs with 7 significant digits (CSV_FMT); values are log-magnitudes of
# order 1-10, so a re-read value is within ~1e-6 relative of the generated float32. The same
# bound covers one sample generated within batches of different sizes (another XLA program,
# float32 rounding ~1e-7 relative).
CSV_RTOL = 1e-6


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory, jax_cache):
    root = tmp_path_factory.mktemp("cond")
    helpers.write_conditional_run(root / "run", CLASSES)
    run = LoadedRun(str(root / "run"))
    return {"root": root, "dir": str(root / "run"), "run": run}


def expected(run, idx, label, t=1.0):
    z = truncate(latents(0, np.asarray(idx), run.config.model.latent_dim,
                         run.config.loss.latent_dist), t)
    return run.generate(z, labels=np.full(len(idx), label, np.int32))


def read(path):
    return np.loadtxt(path, delimiter=",", dtype=np.float64)


def listing(folder):
    return {d: sorted(os.listdir(os.path.join(folder, d))) for d in sorted(os.listdir(folder))}


def test_loaded_run_knows_classes_and_labels_matter(cond_run):
    run = cond_run["run"]
    assert run.conditional and run.class_names == CLASSES
    np.testing.assert_array_equal(run.class_ids(["cat", "type_1"]), [2, 0])
    a, b = expected(run, [0, 1], 0), expected(run, [0, 1], 1)
    assert not np.allclose(a, b)  # the same latents, another class: another spectrogram
    # names and label indices give the same samples
    z = latents(0, np.arange(2), run.config.model.latent_dim, run.config.loss.latent_dist)
    np.testing.assert_array_equal(run.generate(z, labels=["type_3", "type_3"]), b)


def test_one_class_into_its_folder_with_the_class_in_every_name(cond_run):
    out = cond_run["root"] / "one"
    assert gen_main([cond_run["dir"], "--class", "type_3", "--per-class", "3",
                     "--out", str(out)]) == 0
    assert listing(out) == {"type_3": [f"type_3_seed0_{i:05d}.csv" for i in range(3)]}
    want = expected(cond_run["run"], [0, 1, 2], CLASSES.index("type_3"))
    for i in range(3):
        np.testing.assert_allclose(read(out / "type_3" / f"type_3_seed0_{i:05d}.csv"), want[i],
                                   rtol=CSV_RTOL)


def test_per_class_and_round_robin_counts_name_the_same_samples(cond_run):
    every = cond_run["root"] / "every"
    assert gen_main([cond_run["dir"], "--per-class", "2", "--start", "3",
                     "--out", str(every)]) == 0
    assert listing(every) == {c: [f"{c}_seed0_{i:05d}.csv" for i in (3, 4)] for c in CLASSES}
    rr = cond_run["root"] / "rr"
    assert gen_main([cond_run["dir"], "--n", "5", "--start", "3", "--out", str(rr)]) == 0
    assert listing(rr) == {"type_1": ["type_1_seed0_00003.csv", "type_1_seed0_00004.csv"],
                           "type_3": ["type_3_seed0_00003.csv", "type_3_seed0_00004.csv"],
                           "cat": ["cat_seed0_00003.csv"]}
    # (seed, class, i) names one spectrogram, whichever way it was asked for
    for c, files in listing(rr).items():
        for f in files:
            np.testing.assert_allclose(read(rr / c / f), read(every / c / f), rtol=CSV_RTOL)
    np.testing.assert_allclose(read(rr / "cat" / "cat_seed0_00003.csv"),
                               expected(cond_run["run"], [3], 2)[0], rtol=CSV_RTOL)


def test_npy_one_file_per_class(cond_run):
    out = cond_run["root"] / "npy"
    assert gen_main([cond_run["dir"], "--class", "cat", "--class", "type_1", "--per-class",
                     "2", "--format", "npy", "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["cat_seed0_00000-00001.npy", "type_1_seed0_00000-00001.npy"]
    np.testing.assert_allclose(np.load(out / "cat_seed0_00000-00001.npy"),
                               expected(cond_run["run"], [0, 1], 2), rtol=CSV_RTOL)


def test_truncation_shrinks_z_toward_the_mean():
    z = latents(0, np.arange(64), 100, "normal")
    assert truncate(z, 1.0) is z  # t = 1: the very latents
    np.testing.assert_array_equal(np.asarray(truncate(z, 0.5)), 0.5 * np.asarray(z))
    zn = np.linalg.norm(np.asarray(z), axis=1)
    assert (np.linalg.norm(np.asarray(truncate(z, 0.3)), axis=1) < zn).all()
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="truncation must be in"):
            truncate(z, bad)


def test_truncation_flag(cond_run, capsys):
    out = cond_run["root"] / "trunc"
    assert gen_main([cond_run["dir"], "--class", "type_1", "--per-class", "2",
                     "--truncation", "0.5", "--out", str(out)]) == 0
    want = expected(cond_run["run"], [0, 1], 0, t=0.5)
    for i in range(2):
        np.testing.assert_allclose(read(out / "type_1" / f"type_1_seed0_{i:05d}.csv"), want[i],
                                   rtol=CSV_RTOL)
    assert not np.allclose(want, expected(cond_run["run"], [0, 1], 0))
    for bad in ("0", "1.5"):
        assert gen_main([cond_run["dir"], "--truncation", bad]) == 2
        assert "--truncation must be in (0, 1]" in capsys.readouterr().err


def test_interpolation_strip_per_class(cond_run):
    out = cond_run["root"] / "interp"
    assert gen_main([cond_run["dir"], "--interpolate", "--n", "3", "--class", "type_3",
                     "--class", "cat", "--out", str(out)]) == 0
    assert listing(out) == {c: [f"{c}_interp_seed0_{i:05d}.csv" for i in range(3)]
                            for c in ("type_3", "cat")}
    run = cond_run["run"]
    z = interpolation_latents(0, 3, run.config.model.latent_dim, run.config.loss.latent_dist)
    for c in ("type_3", "cat"):
        want = run.generate(z, labels=[c] * 3)
        ends = expected(run, [0, 1], CLASSES.index(c))  # the strip joins samples 0 and 1
        got = [read(out / c / f"{c}_interp_seed0_{i:05d}.csv") for i in range(3)]
        for i in range(3):
            np.testing.assert_allclose(got[i], want[i], rtol=CSV_RTOL)
        np.testing.assert_allclose(got[0], ends[0], rtol=CSV_RTOL)
        np.testing.assert_allclose(got[2], ends[1], rtol=CSV_RTOL)
    png = cond_run["root"] / "interp_png"
    assert gen_main([cond_run["dir"], "--interpolate", "--n", "4", "--format", "png",
                     "--out", str(png)]) == 0
    assert os.listdir(png) == ["interp_seed0.png"]
    with Image.open(png / "interp_seed0.png") as im:
        w, h = im.size
    assert w > h  # 3 rows (classes) of 4 panels


def test_class_errors(cond_run, capsys):
    assert gen_main([cond_run["dir"], "--class", "dog", "--out",
                     str(cond_run["root"] / "x")]) == 1
    err = capsys.readouterr().err
    assert "unknown class 'dog'" in err and "type_1, type_3, cat" in err
    assert not (cond_run["root"] / "x").exists()
    run = cond_run["run"]
    z = latents(0, np.arange(2), run.config.model.latent_dim, run.config.loss.latent_dist)
    with pytest.raises(RunDirError, match="class-conditional: give a class per sample"):
        run.generate(z)
    with pytest.raises(RunDirError, match="out of range"):
        run.generate(z, labels=[0, 3])
    with pytest.raises(RunDirError, match="one per latent"):
        run.generate(z, labels=[0])
    assert gen_main([cond_run["dir"], "--n", "2", "--per-class", "2"]) == 2
    assert "not both" in capsys.readouterr().err


def test_labels_to_an_unconditional_model(tmp_path, capsys):
    run = LoadedRun(RUN_V0, raw=True)
    assert not run.conditional
    z = latents(0, np.arange(2), run.config.model.latent_dim, run.config.loss.latent_dist)
    with pytest.raises(RunDirError, match="unconditional"):
        run.generate(z, labels=[0, 1])
    with pytest.raises(RunDirError, match="unconditional"):
        run.class_ids(["harmonic"])
    for extra in (["--class", "harmonic"], ["--per-class", "2"]):
        assert gen_main([RUN_V0, "--raw", "--out", str(tmp_path / "o"), *extra]) == 1
        err = capsys.readouterr().err
        assert "unconditional" in err and "harmonic, chirp" in err
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------
# The class-row preview grid


def test_class_grid_layout(tmp_path):
    k, n, m = 3, 4, 2
    fakes = np.stack([[np.full((8, 6), 10 * c + i, np.float32) for i in range(n)]
                      for c in range(k)])  # [K, n, F, T], every panel distinct
    reals = np.stack([[np.full((8, 6), -10 * c - j - 1, np.float32) for j in range(m)]
                      for c in range(k)])
    names = ["lo", "mid", "hi"]
    fig = preview.class_grid_figure(fakes, reals, names, title="t", vmin=-30, vmax=30)
    panels = {ax.get_label(): ax for ax in fig.axes if ax.get_label().split(" ")[0] in
              ("fake", "real")}
    assert set(panels) == ({f"fake {c} {i}" for c in range(k) for i in range(n)}
                           | {f"real {c} {j}" for c in range(k) for j in range(m)})
    box = {lab: ax.get_position() for lab, ax in panels.items()}
    for c in range(k):
        row = [lab for lab in box if lab.split()[1] == str(c)]
        assert len({round(box[lab].y0, 6) for lab in row}) == 1  # one row per class
        if c:  # class order top to bottom
            assert box[f"fake {c} 0"].y0 < box[f"fake {c - 1} 0"].y0
        xs = [box[f"fake {c} {i}"].x0 for i in range(n)]
        assert xs == sorted(xs)
        assert box[f"real {c} 0"].x0 > box[f"fake {c} {n - 1}"].x1  # reals beside, right
        assert panels[f"fake {c} 0"].get_ylabel() == names[c]  # class name labels the row
        for i in range(n):
            np.testing.assert_array_equal(panels[f"fake {c} {i}"].images[0].get_array(),
                                          fakes[c, i])
        for j in range(m):
            np.testing.assert_array_equal(panels[f"real {c} {j}"].images[0].get_array(),
                                          reals[c, j])
    path = preview.save_class_grid(str(tmp_path / "g.png"), fakes, reals, names, title="t",
                                   vmin=-30, vmax=30)
    with Image.open(path) as im:
        assert im.size == tuple(round(v) for v in fig.get_size_inches() * fig.dpi)
    # rows of different lengths (e.g. round-robin counts), and no real block
    ragged = [fakes[0], fakes[1, :2], fakes[2, :1]]
    fig2 = preview.class_grid_figure(ragged, None, names, title="t", vmin=-30, vmax=30)
    labels = sorted(ax.get_label() for ax in fig2.axes if ax.get_label().startswith("fake"))
    assert len(labels) == 7 and not any(ax.get_label().startswith("real") for ax in fig2.axes)
    with pytest.raises(ValueError, match="one of each per class"):
        preview.class_grid_figure(fakes, reals[:2], names, title="t", vmin=0, vmax=1)
