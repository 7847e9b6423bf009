"""Data parallelism over several devices and multi-host runs (docs/multi-device.md).

JAX fixes the device count when it starts, so every case runs in a fresh Python process with
XLA_FLAGS=--xla_force_host_platform_device_count=N (N CPU devices), and the multi-host case
as two processes joined by jax.distributed.initialize on 127.0.0.1 (cross-process all-reduces
over gloo, JAX's CPU collectives). The children write their results to files; the assertions
are made here. Tiny models (dim 4); every child has a timeout.

Tolerances. Sharding a batch over devices changes only the order of floating-point sums: a
batch mean or a gradient becomes per-device partial sums plus an all-reduce. In float32 that
moves results by a few ulps per reduction. The 1-vs-4-device comparison trains with RMSProp
(TF's, accumulator starting at 1, so its first updates are ~lr * g: linear in the gradient).
With Adam, whose first update is ~lr * sign(g), a gradient element at the float32 noise floor
moves by +-lr depending on how the sums were ordered, and whether such an element exists
depends on the rounding of the machine (the parity suite checks Adam in float64 for the same
reason); the sharding under test does not depend on the optimizer. Measured after 2 steps
(dim 4, batch 8, 2 critic updates, WGAN-GP, RMSProp): parameters and optimizer state within
6e-8 absolute, metrics within 6.3e-6 of max(|metric|, 1). PARAM_ATOL = 1e-5 is a tenth of one
lr (1e-4) and 170x the observed; a real difference (a wrong batch split, a missing all-reduce:
gradients off by O(1)) moves parameters by ~lr * g and fails it. Metrics are compared on the
scale max(|metric|, 1): the Wasserstein estimate and the generator loss are means of O(1)
logits of both signs, which can cancel to far below the logits' own rounding scale.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAM_ATOL = 1e-5  # absolute, on every parameter and optimizer-state element (see docstring)
METRIC_RTOL = 1e-5  # on every metric, relative to max(|metric|, 1) (see docstring)
TIMEOUT_S = 300  # per child process


def child_env(n_devices: int) -> dict:
    env = dict(os.environ)
    # N CPU devices; and XLA:CPU's backend optimisation level 0, which halves the compile
    # times here (every comparison below is between runs made under the same flags).
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count="
                        f"{n_devices} --xla_backend_optimization_level=0").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(k, None)
    return env


def run_child(script: str, args: list, n_devices: int, **env_extra):
    r = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=REPO,
                       env={**child_env(n_devices), **env_extra}, capture_output=True,
                       text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, (f"child failed ({r.returncode}):\n{r.stdout[-3000:]}\n"
                               f"{r.stderr[-5000:]}")
    return r


def load_npz(path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------------------------------------
# The step function on 1 vs 4 devices

STEP_SCRIPT = r"""
import json, sys
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from specgan_jax.config import AugmentConfig, LossConfig, ModelConfig, OptimConfig
from specgan_jax.data.sampler import DeviceDataset, make_sampler, to_device
from specgan_jax.engine.step import create_train_state, make_train_fns

out = sys.argv[1]
assert jax.device_count() == 4, jax.devices()
# RMSProp, not the recipe's Adam: see the module docstring.
MC, LC, OC, B = ModelConfig(dim=4), LossConfig(n_critic=2), OptimConfig(optimizer="rmsprop"), 8
rng = np.random.default_rng(0)
# 10 examples: padded to 12 rows on 4 devices (never sampled: else 1 and 4 devices differ).
host = DeviceDataset(x=rng.uniform(-1, 1, (10, 128, 128, 1)).astype(np.float32),
                     labels=np.zeros(10, np.int32), n=10)
sampler = make_sampler(AugmentConfig())  # default augmentation: random roll per example
# Jitted init: one compilation instead of one per eager op (the same numbers).
init = jax.jit(create_train_state, static_argnums=(0, 1, 2))(MC, LC, OC, jax.random.key(0))
key = jax.random.key(1)
res, info = {}, {}
for i, leaf in enumerate(jax.tree_util.tree_leaves(init)):
    res[f"init/state/{i}"] = np.asarray(leaf)

def run(name, devices):
    mesh = None if devices is None else Mesh(np.asarray(devices), ("data",))
    fns = make_train_fns(MC, LC, OC, B, sampler, mesh=mesh)
    state = jax.tree.map(jax.numpy.copy, init)  # a fresh copy: the step donates its state
    if mesh is None:
        data = to_device(host)
    else:
        data = to_device(host, NamedSharding(mesh, P("data")))
        state = jax.device_put(state, NamedSharding(mesh, P()))
    for _ in range(2):
        state, m = fns.step(state, data, key)
    for i, leaf in enumerate(jax.tree_util.tree_leaves(state)):
        res[f"{name}/state/{i}"] = np.asarray(leaf)
    for k, v in m.items():
        res[f"{name}/metric/{k}"] = np.asarray(v)
    return fns, state, data

run("single", None)                    # no mesh: the unannotated single-device program
run("mesh1", jax.devices()[:1])        # the data-parallel program on a 1-device mesh
fns4, state4, data4 = run("mesh4", jax.devices())

# Is the batch really split? The draws' sharding, and the all-reduces in the compiled step.
d = fns4.draws(data4, key, 0)
info["real_spec"] = list(d.real.sharding.spec)
info["real_shard_shapes"] = sorted({tuple(s.data.shape) for s in d.real.addressable_shards})
info["z_g_shard_shapes"] = sorted({tuple(s.data.shape) for s in d.z_g.addressable_shards})
info["label_u_spec"] = list(d.label_u.sharding.spec)
hlo = fns4.step.lower(state4, data4, key).compile().as_text()
info["all_reduces"] = hlo.count("all-reduce(") + hlo.count("all-reduce-start(")
info["state_replicated"] = all(l.sharding.is_fully_replicated
                               for l in jax.tree_util.tree_leaves(state4))
info["state_devices"] = len(jax.tree_util.tree_leaves(state4)[1].sharding.device_set)
try:
    make_train_fns(MC, LC, OC, 6, sampler, mesh=Mesh(np.asarray(jax.devices()), ("data",)))
    info["indivisible_error"] = None
except ValueError as e:
    info["indivisible_error"] = str(e)
np.savez(out + ".npz", **res)
with open(out + ".json", "w") as fh:
    json.dump(info, fh)
"""


@pytest.fixture(scope="module")
def step_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("multidevice") / "steps"
    run_child(STEP_SCRIPT, [out], n_devices=4)
    res = load_npz(f"{out}.npz")
    with open(f"{out}.json") as fh:
        info = json.load(fh)
    return res, info


def _part(res: dict, name: str, kind: str) -> dict:
    prefix = f"{name}/{kind}/"
    return {k[len(prefix):]: v for k, v in res.items() if k.startswith(prefix)}


def test_one_device_mesh_is_the_unsharded_program(step_runs):
    """On one device the sharding annotations change nothing: bitwise the same numbers."""
    res, _ = step_runs
    a, b = _part(res, "single", "state"), _part(res, "mesh1", "state")
    assert a.keys() == b.keys() and len(a) > 20
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    for k, v in _part(res, "single", "metric").items():
        assert np.array_equal(v, res[f"mesh1/metric/{k}"]), k


def test_four_devices_match_one_device(step_runs):
    """The same global batch on 4 devices = on 1 device, up to summation order."""
    res, _ = step_runs
    one, four = _part(res, "single", "state"), _part(res, "mesh4", "state")
    assert one.keys() == four.keys()
    worst = max(float(np.max(np.abs(one[k].astype(np.float64) - four[k]), initial=0.0))
                for k in one)
    print(f"max |1 device - 4 devices| = {worst:.3g}")
    assert worst <= PARAM_ATOL, f"max |1 device - 4 devices| = {worst:.3g}"
    # Not vacuous: the two steps moved the state by far more than the tolerance.
    init = _part(res, "init", "state")
    moved = max(float(np.max(np.abs(one[k].astype(np.float64) - init[k]), initial=0.0))
                for k in one)
    assert moved > 10 * PARAM_ATOL, moved
    m1, m4 = _part(res, "single", "metric"), _part(res, "mesh4", "metric")
    assert m1.keys() == m4.keys() and {"d_loss", "g_loss", "gp"} <= set(m1)
    rel = {k: float(abs(m4[k] - m1[k]) / max(abs(float(m1[k])), 1.0)) for k in m1}
    print("metrics |1 device - 4 devices| / max(|1 device|, 1):", {k: f"{v:.2g}" for k, v in rel.items()})
    for k in m1:
        np.testing.assert_allclose(m4[k], m1[k], rtol=METRIC_RTOL, atol=METRIC_RTOL, err_msg=k)


def test_batch_is_split_over_devices_and_gradients_all_reduced(step_runs):
    _, info = step_runs
    # real [n_critic=2, B=8, F, T, 1] split along B: 2 examples per device.
    assert info["real_spec"] == [None, "data"]
    assert info["real_shard_shapes"] == [[2, 2, 128, 128, 1]]
    assert info["z_g_shard_shapes"] == [[2, 100]]
    assert info["label_u_spec"] == [None, None, "data"]
    assert info["all_reduces"] >= 1  # XLA inserted the cross-device reductions
    assert info["state_replicated"] and info["state_devices"] == 4


def test_batch_not_divisible_by_devices_is_a_clear_error(step_runs):
    _, info = step_runs
    msg = info["indivisible_error"]
    assert msg is not None, "batch 6 on 4 devices was accepted"
    assert "batch size 6 is not divisible by the 4 devices" in msg and "e.g. 4 or 8" in msg


# ----------------------------------------------------------------------------------------------
# train_and_evaluate on 2 devices of one process, and on 2 processes of 1 device each

TRAIN_SCRIPT = r"""
import json, os, sys
import jax, numpy as np
from specgan_jax.cli import train as train_lib

out, data_dir, workdir, cache = sys.argv[1:5]
extra = sys.argv[5:]
captured = []
real_train = train_lib.train_and_evaluate
def capture(*a, **k):  # keep the Outcome (the final state) that main() drops
    captured.append(real_train(*a, **k))
    return captured[-1]
train_lib.train_and_evaluate = capture

def args(workdir, batch):
    return ["--data", data_dir, "--workdir", workdir, "--steps", "2", "--model.dim", "4",
            "--batch-size", str(batch), "--loss.n_critic", "1", "--train.steps_per_call", "2",
            "--train.log_every", "2", "--train.checkpoint_every", "2",
            "--train.preview_every", "2", "--train.n_preview", "4",
            "--data.cache_dir", cache, "--no-progress", *extra]

info = {}
if os.environ.get("CHECK_INDIVISIBLE"):
    info["indivisible_rc"] = train_lib.main(args(workdir + "_bad", 3))
    info["indivisible_wrote"] = os.path.exists(workdir + "_bad")
info["rc"] = train_lib.main(args(workdir, 4))
leaves = jax.tree_util.tree_leaves(captured[-1].state)
np.savez(out + ".npz", *[np.asarray(l) for l in leaves])
info.update(process_index=jax.process_index(), process_count=jax.process_count(),
            device_count=jax.device_count(), local_device_count=jax.local_device_count(),
            replicated=all(l.sharding.is_fully_replicated for l in leaves),
            state_devices=len(leaves[1].sharding.device_set))
with open(out + ".json", "w") as fh:
    json.dump(info, fh)
"""


@pytest.fixture(scope="module")
def csv_data(tiny_data):
    """tests/conftest.py's 2 classes x 4 CSV spectrograms: the root holding data/."""
    return tiny_data["root"]


def read_child(out):
    with open(f"{out}.json") as fh:
        info = json.load(fh)
    leaves = load_npz(f"{out}.npz")
    return info, [leaves[f"arr_{i}"] for i in range(len(leaves))]


def restore_leaves(workdir):
    """The latest checkpoint of a run, restored in this (single-device) pytest process."""
    from tests.helpers import restore_state

    r = restore_state(workdir)
    return r.step, [np.asarray(x) for x in jax.tree_util.tree_leaves(r.state)]


@pytest.fixture(scope="module")
def two_device_run(csv_data):
    """One process, 2 simulated devices: the single-process reference of the multi-host test."""
    root = csv_data
    out, workdir = root / "two_dev", root / "run_two_dev"
    r = run_child(TRAIN_SCRIPT, [out, root / "data", workdir, root / "csv_cache"], n_devices=2,
                  CHECK_INDIVISIBLE="1")
    info, leaves = read_child(out)
    return info, leaves, workdir, r


def test_train_on_two_devices_writes_a_checkpoint_that_restores(two_device_run):
    info, leaves, workdir, r = two_device_run
    assert info["rc"] == 0 and info["device_count"] == 2
    assert info["replicated"] and info["state_devices"] == 2
    assert "JAX devices: 2 x cpu" in r.stdout
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2"]
    step, restored = restore_leaves(workdir)  # saved from 2 devices, restored on 1
    assert step == 2 and len(restored) == len(leaves) > 20
    for a, b in zip(restored, leaves):
        assert np.array_equal(a, b)


def test_train_batch_not_divisible_by_devices_fails_before_writing(two_device_run):
    info, _, _, r = two_device_run
    assert info["indivisible_rc"] == 1 and not info["indivisible_wrote"]
    assert ("error: train.batch_size (--batch-size) 3 is not divisible by the 2 devices"
            in r.stderr), r.stderr[-2000:]
    assert "e.g. 2 or 4" in r.stderr and "Traceback" not in r.stderr


def test_windows_of_long_non_square_files_train_on_two_devices(tmp_path):
    """Long files (32 x 150 frames) as 32 x 64 windows on 2 devices: the window source is
    replicated, the batch split; the run checkpoints and restores on one device."""
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        os.makedirs(tmp_path / "data" / cls)
        for i in range(2):
            np.savetxt(tmp_path / "data" / cls / f"{i}.csv", rng.normal(0, 1, (32, 150)),
                       delimiter=",", fmt="%.5f")
    out, workdir = tmp_path / "win", tmp_path / "run_win"
    r = run_child(TRAIN_SCRIPT, [out, tmp_path / "data", workdir, tmp_path / "cache",
                                 "--data.shape", "32", "64"], n_devices=2)
    info, leaves = read_child(out)
    assert info["rc"] == 0 and info["device_count"] == 2 and info["replicated"]
    assert "4 files of 150-150 frames: 348 windows of 64 frames" in r.stdout
    step, restored = restore_leaves(workdir)
    assert step == 2 and all(np.array_equal(a, b) for a, b in zip(restored, leaves))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_on_localhost_train_like_one(csv_data, two_device_run):
    """Multi-host: `--distributed` with 2 processes (1 CPU device each, gloo all-reduces across
    them), coordinator on 127.0.0.1; the process count and id come from the environment.
    Both end with the same state, equal to one process with the same global batch on 2
    devices, and the run directory holds each file once (only process 0 writes)."""
    root = csv_data
    workdir = root / "run_two_proc"
    port = free_port()
    extra = ["--distributed", "--distributed.coordinator_address", f"127.0.0.1:{port}",
             "--distributed.initialization_timeout", "120"]
    procs = []
    try:
        for i in range(2):
            out = root / f"proc{i}"
            procs.append(subprocess.Popen(
                [sys.executable, "-c", TRAIN_SCRIPT, str(out), str(root / "data"), str(workdir),
                 str(root / "csv_cache"), *extra],
                cwd=REPO, env={**child_env(1), "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, f"{o[-3000:]}\n{e[-5000:]}"
    (i0, l0), (i1, l1) = read_child(root / "proc0"), read_child(root / "proc1")
    for i, info in enumerate((i0, i1)):
        assert info["rc"] == 0 and info["process_index"] == i and info["process_count"] == 2
        assert info["device_count"] == 2 and info["local_device_count"] == 1
        assert info["replicated"] and info["state_devices"] == 2
    assert len(l0) == len(l1) > 20
    for a, b in zip(l0, l1):  # the replicas agree exactly
        assert np.array_equal(a, b)
    _, ref, _, _ = two_device_run  # one process, the same global batch and mesh size
    worst = max(float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0))
                for a, b in zip(l0, ref))
    print(f"max |2 processes - 1 process (2 devices)| = {worst:.3g}")
    assert worst <= PARAM_ATOL, f"max |2 processes - 1 process| = {worst:.3g}"
    # Process 0 alone wrote logs and files; the checkpoint restores in one process.
    assert "Run directory:" in outs[0][0] and "JAX devices: 2 x cpu" in outs[0][0]
    assert "over 2 processes" in outs[0][0]
    # (gloo itself prints "[Gloo] Rank 1 is connected to ..." lines to stdout)
    said = [ln for ln in outs[1][0].splitlines() if ln.strip() and not ln.startswith("[Gloo]")]
    assert said == [], outs[1][0]
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2]
    assert {"reals.png", "fakes_000002.png"} <= set(os.listdir(workdir / "previews"))
    step, restored = restore_leaves(workdir)
    assert step == 2
    for a, b in zip(restored, l0):
        assert np.array_equal(a, b)


# ----------------------------------------------------------------------------------------------
# --distributed options: flags > environment > JAX's cluster detection (no JAX call needed)


def test_distributed_flags_then_environment_then_autodetect():
    from specgan_jax.training import distributed
    from specgan_jax.config import DistributedConfig

    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:99", "JAX_NUM_PROCESSES": "4",
           "JAX_PROCESS_ID": "3"}
    kw = distributed.initialize_kwargs(DistributedConfig(enabled=True), env)
    assert (kw["coordinator_address"], kw["num_processes"], kw["process_id"]) == (
        "10.0.0.1:99", 4, 3)
    kw = distributed.initialize_kwargs(DistributedConfig(
        enabled=True, coordinator_address="h:1", num_processes=2, process_id=0), env)
    assert (kw["coordinator_address"], kw["num_processes"], kw["process_id"]) == ("h:1", 2, 0)
    kw = distributed.initialize_kwargs(DistributedConfig(enabled=True), {})
    assert (kw["coordinator_address"], kw["num_processes"], kw["process_id"]) == (
        None, None, None)  # left to jax.distributed.initialize's auto-detection
    with pytest.raises(distributed.DistributedError, match=r"JAX_PROCESS_ID must be an integer"):
        distributed.initialize_kwargs(DistributedConfig(), {"JAX_PROCESS_ID": "one"})
    with pytest.raises(distributed.DistributedError, match=r"process id 5 is not in 0..1"):
        distributed.initialize_kwargs(DistributedConfig(num_processes=2), {"JAX_PROCESS_ID": "5"})
    # Disabled: nothing is called (this pytest process is not distributed).
    assert distributed.initialize(DistributedConfig(enabled=False)) is False
    assert jax.process_count() == 1
    with pytest.raises(ValueError, match=r"process_id \(2\) must be < distributed.num_processes"):
        DistributedConfig(num_processes=2, process_id=2)
    with pytest.raises(ValueError, match=r"HOST:PORT"):
        DistributedConfig(coordinator_address="localhost")


def test_distributed_flags_are_launch_options_not_run_config(tmp_path, capsys):
    """--distributed.* parse into LaunchConfig; config.json and the run name ignore them."""
    from specgan_jax.cli import train as train_lib
    from specgan_jax.config_json import config_json_text
    from specgan_jax.run.run_dir import default_run_name

    p = train_lib.build_parser()
    base = ["--data", str(tmp_path), "--steps", "3"]
    a = p.parse_args(base)
    b = p.parse_args(base + ["--distributed", "--distributed.coordinator_address", "h0:1234",
                             "--distributed.num_processes", "2", "--distributed.process_id", "1"])
    launch = train_lib.resolve_launch(b)
    assert launch.distributed.enabled and launch.distributed.num_processes == 2
    assert launch.distributed.process_id == 1
    assert not train_lib.resolve_launch(a).distributed.enabled
    (ca, demo_a), (cb, demo_b) = train_lib.resolve_config(a), train_lib.resolve_config(b)
    assert ca == cb and "distributed" not in json.loads(config_json_text(cb))
    assert default_run_name(ca, demo_a) == default_run_name(cb, demo_b)
    # Bad values are option errors (exit status 2), before anything starts.
    assert train_lib.main(base + ["--distributed.num_processes", "2",
                                  "--distributed.process_id", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "process_id (2) must be < distributed.num_processes (2)" in err
