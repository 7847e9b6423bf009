"""scripts/compare_recipes.py: its pure parts (metrics.jsonl rows into curves, curves of several
seeds on one time grid, option checks) and one tiny comparison end to end."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "scripts")


@pytest.fixture(scope="module")
def cr():
    sys.path.insert(0, SCRIPTS)  # the script imports _measure from beside itself
    try:
        spec = importlib.util.spec_from_file_location(
            "compare_recipes", os.path.join(SCRIPTS, "compare_recipes.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(SCRIPTS)
    return mod


# As the training loop writes them: a training row every log_every steps carries "time";
# the evaluation row of the same step follows it, without one.
ROWS = [
    {"step": 10, "time": 5.0, "d_loss": 1.0},
    {"step": 20, "time": 7.0, "d_loss": 0.5},
    {"step": 20, "eval/fd": 3.0, "eval/fd_real_baseline": 0.1, "eval/kid": 0.2},
    {"step": 30, "time": 10.0, "d_loss": 0.4},
    {"step": 40, "time": 12.0, "d_loss": 0.3},
    {"step": 40, "eval/fd": "nan", "eval/kid": 0.1},
]


def test_read_rows_skips_a_half_written_last_line(cr, tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:2]) + '{"step": 30, "ti')
    assert cr.read_rows(str(p)) == ROWS[:2]


def test_seconds_at_interpolates_the_training_rows(cr):
    np.testing.assert_allclose(cr.seconds_at(ROWS, [10, 15, 25, 40]), [5.0, 6.0, 8.5, 12.0])
    # before the first row: its time; after the last: at the last rows' 0.2 s per step
    np.testing.assert_allclose(cr.seconds_at(ROWS, [0, 50]), [5.0, 14.0])
    np.testing.assert_allclose(cr.seconds_at(ROWS[:1], [0, 50]), [5.0, 5.0])  # one row
    with pytest.raises(ValueError, match="time"):
        cr.seconds_at([{"step": 5, "eval/fd": 1.0}], [5])


def test_eval_curve_takes_seconds_from_the_training_row_of_its_step(cr):
    c = cr.eval_curve(ROWS, "fd")
    assert c["step"] == [20, 40] and c["seconds"] == [7.0, 12.0]
    assert c["fd"][0] == 3.0 and np.isnan(c["fd"][1])  # "nan" as metrics.jsonl writes it
    assert cr.eval_curve(ROWS, "kid")["kid"] == [0.2, 0.1]
    timed = ROWS[:2] + [{"step": 20, "time": 7.5, "eval/fd": 2.0}]  # a row with its own time
    assert cr.eval_curve(timed, "fd")["seconds"] == [7.5]
    assert cr.eval_curve(ROWS[:2], "fd") == {"step": [], "seconds": [], "fd": []}


def test_aggregate_puts_seeds_on_the_time_they_all_cover(cr):
    a = ([0.0, 10.0], [4.0, 2.0])
    b = ([2.0, 12.0], [6.0, 2.0])
    agg = cr.aggregate([a, b], n_grid=5)
    np.testing.assert_allclose(agg["seconds"], [2, 4, 6, 8, 10])
    va = np.interp(agg["seconds"], *a)
    vb = np.interp(agg["seconds"], *b)
    np.testing.assert_allclose(agg["mean"], (va + vb) / 2)
    np.testing.assert_allclose(agg["std"], np.abs(va - vb) / np.sqrt(2))  # ddof 1, two seeds
    np.testing.assert_allclose(agg["mean"][0], (3.6 + 6.0) / 2)
    assert agg["n"] == 2


def test_aggregate_of_curves_without_a_common_interval_gives_their_last_points(cr):
    agg = cr.aggregate([([5.0], [2.0]), ([7.0], [4.0]), ([], [])])
    assert agg["seconds"] == [6.0] and agg["mean"] == [3.0] and agg["n"] == 2
    np.testing.assert_allclose(agg["std"], [np.sqrt(2)])
    one = cr.aggregate([([1.0, 3.0], [1.0, 5.0])], n_grid=3)
    assert one["mean"] == [1.0, 3.0, 5.0] and one["std"] == [0.0, 0.0, 0.0]
    assert cr.aggregate([])["n"] == 0


@pytest.mark.parametrize("argv, message", [
    (["--out", "x"], "--minutes or --steps"),
    (["--out", "x", "--steps", "3", "--candidates", "recipe-nn,nope"], "unknown nope"),
    (["--out", "x", "--steps", "3", "--set", "somewhere"], "--real"),
])
def test_bad_options_are_refused(cr, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        cr.parse_args(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_budget_and_extra_pass_through(cr):
    args = cr.parse_args(["--out", "x", "--minutes", "20", "--extra", "--model.dim 4"])
    assert args.eval_every == 150.0  # an eighth of the budget
    cmd = cr.train_cmd(args, "ns-r1", 3, "/w")
    i = cmd.index("--train.minutes")
    assert cmd[i + 1] == "20.0" and cmd[-2:] == ["--model.dim", "4"]  # --extra comes last
    assert "--data" not in cmd and cmd[cmd.index("--loss.loss") + 1] == "ns-r1"
    assert cmd[cmd.index("--train.checkpoint_every_secs") + 1] == "150.0"
    args = cr.parse_args(["--out", "x", "--steps", "7", "--set", "d", "--real", "r"])
    cmd = cr.train_cmd(args, "recipe-zeros", 0, "/w")
    assert "--train.minutes" not in cmd and cmd[cmd.index("--steps") + 1] == "7"
    assert cmd[cmd.index("--data") + 1] == "d"
    assert cmd[cmd.index("--model.upsample") + 1] == "zeros"


def test_end_to_end_tiny(tmp_path):
    """Two candidates, one seed, 4 steps with a checkpoint after every 2-step chunk: the table,
    results.json (a two-point curve each) and the plot."""
    out = tmp_path / "cmp"
    cmd = [sys.executable, os.path.join(SCRIPTS, "compare_recipes.py"), "--out", str(out),
           "--candidates", "recipe-zeros,recipe-nn", "--seeds", "0", "--steps", "4",
           "--eval-every", "0.001",
           # 32 x 32 demo data and one critic update: the comparison's bookkeeping is under
           # test, not the recipe's numbers
           "--extra", "--model.dim 4 --batch-size 4 --train.steps_per_call 2 "
                      "--train.log_every 2 --loss.n_critic 1 --data.shape 32 32",
           "--eval-extra", "--eval.feature_space random_conv --eval.max_real 32"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    table = (out / "table.md").read_text()
    rows = [ln.split("|")[1].strip() for ln in table.splitlines() if ln.startswith("| ")]
    assert rows == ["candidate", "recipe-zeros", "recipe-nn", "real baseline"]
    assert "| fd | kid |" in table
    res = json.loads((out / "results.json").read_text())
    assert sorted(res) == ["recipe-nn", "recipe-zeros"]
    for name, recs in res.items():
        rec = recs["0"]
        assert rec["steps"] == 4 and rec["train_s"] > 0
        assert rec["curve"]["step"] == [2, 4]
        assert rec["curve"]["seconds"][0] <= rec["curve"]["seconds"][1]
        assert np.isfinite(rec["final"]["fd"]) and rec["curve"]["fd"][-1] == rec["final"]["fd"]
        ev = json.loads((out / f"{name}_seed0" / "eval_final" / "eval.json").read_text())
        assert rec["final"]["kid"] == ev["kid"]["generated"]
        assert rec["real_baseline"]["fd"] == ev["fd"]["real_baseline"]
        assert ev["meta"]["step"] == 4
        assert ("--model.upsample", name.split("-")[1]) in zip(rec["train_cmd"],
                                                                 rec["train_cmd"][1:])
    png = out / "fd_vs_time.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
