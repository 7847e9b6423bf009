"""The evaluate CLI (scripts/evaluate.py) on a tiny trained run: eval.json and the report PNG,
determinism by seed, --fakes (generate.py's CSVs give the checkpoint's numbers), clear errors.

The run is tiny (dim 4, batch 4, 1 critic update, 4 steps); the classifier is trained for few
steps (its quality is not under test here, only that it is trained, cached and used).
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from specgan_jax.cli import evaluate as eval_cli
from specgan_jax.cli import train as train_cli
from specgan_jax.cli.generate import main as gen_main
from tests.eval_env import env, tiny_args, write_csvs  # noqa: F401 (env: a fixture)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# generate.py writes CSVs with 7 significant digits; features and distances of the re-read
# samples move by about that much, amplified by the conv net's ~1e2 gain -> 1e-4.
CSV_ROUNDING_EFFECT = 1e-4


@pytest.fixture(scope="module")
def eval_run(env):
    """A run trained 4 steps (checkpoints at steps 2 and 4)."""
    workdir = env["root"] / "run_cli"
    assert train_cli.main(tiny_args(env, workdir, 4)) == 0
    return workdir



CLI_EVAL = ["--eval.classifier_steps", "10", "--eval.kid_subsets", "10", "--no-progress"]


def eval_values(result):
    return {k: v for k, v in result.items() if k != "meta"}


def test_evaluate_script_smoke(env, eval_run, tmp_path):
    """The README command, as a subprocess: eval.json with every metric, and the report PNG."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "evaluate.py"), str(eval_run), "--real",
         env["real"], "--out", str(out), *CLI_EVAL],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "JAX_COMPILATION_CACHE_DIR": env["cache"],
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"})
    assert proc.returncode == 0, proc.stderr
    assert "real baseline" in proc.stdout and "feature space: classifier" in proc.stdout
    result = json.loads((out / "eval.json").read_text())
    keys = {"fd", "kid", "ndb", "mean_rms", "std_rms", "nn_train", "memorization", "nn_self",
            "hf_excess", "inception_score", "class_tv"}
    assert set(eval_values(result)) == keys
    for k in keys:
        assert {"generated", "real_baseline"} <= set(result[k])
        assert all(math.isfinite(result[k][f]) for f in ("generated", "real_baseline"))
    meta = result["meta"]
    assert meta["feature_space"] == "classifier" and meta["step"] == 4
    assert (meta["n_generated"], meta["n_real_ref"], meta["n_real_heldout"]) == (6, 6, 6)
    assert 0 <= meta["classifier_accuracy"] <= 1
    assert "not the run's training data" in meta["real_overlap"]
    from PIL import Image

    with Image.open(out / "eval_report.png") as im:
        assert im.size[0] > 800 and im.size[1] > 1000


def test_evaluate_deterministic_and_fakes_folder(env, eval_run, tmp_path):
    """Two evaluations give identical values; the same samples as generated CSVs (--fakes)
    give the same metrics up to the CSVs' 7-digit rounding."""
    args = [str(eval_run), "--real", env["real"], *CLI_EVAL]
    assert eval_cli.main(args + ["--out", str(tmp_path / "a")]) == 0
    assert eval_cli.main(args + ["--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "eval.json").read_text())
    b = json.loads((tmp_path / "b" / "eval.json").read_text())
    assert eval_values(a) == eval_values(b)
    assert a["meta"]["feature_info"]["hash"] == b["meta"]["feature_info"]["hash"]
    assert b["meta"]["feature_info"]["loaded_from_cache"]  # trained once, cached in the run
    # Another seed: another split and other samples -> other numbers.
    assert eval_cli.main(args + ["--out", str(tmp_path / "c"), "--seed", "1"]) == 0
    c = json.loads((tmp_path / "c" / "eval.json").read_text())
    assert c["fd"]["generated"] != a["fd"]["generated"]
    # --fakes: generate.py's samples 0..5 of seed 0 are exactly what was evaluated above.
    fakes = tmp_path / "fakes"
    assert gen_main([str(eval_run), "--n", "6", "--seed", "0", "--out", str(fakes)]) == 0
    assert eval_cli.main(args + ["--out", str(tmp_path / "f"), "--fakes", str(fakes)]) == 0
    f = json.loads((tmp_path / "f" / "eval.json").read_text())
    assert f["meta"]["step"] is None and f["meta"]["generated_source"] == str(fakes)
    for k in ("fd", "kid", "mean_rms", "std_rms", "nn_train", "nn_self", "hf_excess",
              "inception_score"):
        assert f[k]["generated"] == pytest.approx(a[k]["generated"], rel=CSV_ROUNDING_EFFECT,
                                                  abs=CSV_ROUNDING_EFFECT), k
        assert f[k]["real_baseline"] == a[k]["real_baseline"], k


def test_evaluate_errors_are_clear(env, eval_run, tmp_path, capsys):
    def run(*args):
        rc = eval_cli.main([*args, *CLI_EVAL])
        err = capsys.readouterr().err
        assert rc == 1 and "Traceback" not in err
        return err

    assert "does not exist" in run(str(tmp_path / "nope"), "--real", env["real"])
    assert "config.json is missing" in run(str(tmp_path), "--real", env["real"])
    assert "no checkpoint for step 3" in run(str(eval_run), "--real", env["real"], "--step", "3")
    few = tmp_path / "few"
    write_csvs(few, [np.random.default_rng(i).normal(size=(128, 128)) for i in range(5)])
    assert "evaluation needs at least 8" in run(str(eval_run), "--real", str(few))
    small = tmp_path / "small"
    write_csvs(small, [np.random.default_rng(i).normal(size=(64, 64)) for i in range(8)])
    assert "wrong size: 64 rows x 64 columns" in run(str(eval_run), "--real", str(small))
    assert "--real demo is for runs" in run(str(eval_run), "--real", "demo")
    assert "holds 12 spectrograms" in run(str(eval_run), "--real", env["real"], "--fakes",
                                          env["train"], "--n", "50")
    with pytest.raises(SystemExit):  # option errors: argparse, exit 2
        eval_cli.main([str(eval_run), "--real", env["real"], "--eval.ndb_alpha", "2"])
    assert "ndb_alpha must be in (0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_cli.main([str(eval_run), "--real", env["real"], "--fakes", env["train"], "--step", "2"])
    assert "with --fakes none is used" in capsys.readouterr().err
