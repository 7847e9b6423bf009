"""The benchmark's output (its correctness, not speed: timing is never asserted here)."""

import importlib.util
import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from specgan_jax import benchmark
from specgan_jax.cli import benchmark as benchmark_cli

_find_spec = importlib.util.find_spec
from specgan_torch_ref.models import SpecGANDiscriminator, SpecGANGenerator


@pytest.mark.parametrize("dim,shape", [(4, None), (64, None), (4, (64, 256)), (64, (96, 64)),
                                       (8, (32, 160))])
def test_model_flops_match_torch_flop_counter(dim, shape):
    """The analytic forward FLOPs equal an independent count (torch's FlopCounterMode on the
    reference; it counts matmuls/convs, not bias adds or activations), at the default shape
    (128 x 128: shape None, model_flops' defaults) and at others, square and not."""
    kw = {} if shape is None else {"n_freq": shape[0], "n_time": shape[1]}
    fg, fd = benchmark.model_flops(dim, **kw)
    with torch.device("meta"):
        g = SpecGANGenerator(dim=dim, padding="torch", **kw)
        d = SpecGANDiscriminator(dim=dim, padding="torch", **kw)
        with FlopCounterMode(display=False) as cg:
            x = g(torch.zeros(1, 100))
        with FlopCounterMode(display=False) as cd:
            d(x)
    assert tuple(x.shape[2:]) == (shape or (128, 128))
    assert fg == pytest.approx(cg.get_total_flops(), rel=1e-12)
    assert fd == pytest.approx(cd.get_total_flops(), rel=1e-12)


def test_flops_scale_with_the_shape():
    """Every layer's work is proportional to the example's area (the dense layers too: the
    seed grows with it), so 64 x 256 costs what 128 x 128 does and 64 x 128 half of it."""
    assert benchmark.BenchConfig().n_freq == 128 and benchmark.BenchConfig().n_time == 128
    base = benchmark.iteration_flops(16, 4, 5)
    assert benchmark.iteration_flops(16, 4, 5, 64, 256) == base
    assert benchmark.iteration_flops(16, 4, 5, 64, 128) == base / 2


@pytest.mark.parametrize("shape", [["100", "128"], ["128", "0"]])
def test_benchmark_shape_not_a_multiple_of_32_is_a_one_line_error(shape, capsys):
    with pytest.raises(SystemExit) as e:
        benchmark_cli.main(["--shape", *shape])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--shape" in err and "multiple of 32" in err


def test_small_benchmark_writes_report(tmp_path, capsys):
    out = tmp_path / "bench.json"
    # a small non-square shape (the default, 128 x 128, is BenchConfig's: checked above)
    rc = benchmark_cli.main(["--dim", "4", "--batch", "2", "--iters", "1", "--repeats", "1",
                             "--no-torch-compile", "--shape", "32", "64", "--json", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["device"].startswith("cpu")
    r = report["ratios"]["jax_over_torch_eager"]
    assert math.isfinite(r) and r > 0
    for name in ("jax_step", "jax_chunk", "torch_eager"):
        res = report["results"][name]
        assert res["s_per_iter"] > 0 and res["samples_per_s"] == pytest.approx(
            2 / res["s_per_iter"])
        assert res["mfu"] is None  # no known peak on a CPU
    assert report["results"]["jax_step"]["compile_s"] > 0
    assert "skipped" in report["results"]["torch_compile_g"]
    assert report["shape"] == [32, 64]
    assert report["config"]["n_freq"] == 32 and report["config"]["n_time"] == 64
    assert report["flops_per_iter"] == benchmark.iteration_flops(4, 2, 5, 32, 64)
    table = capsys.readouterr().out
    assert "| jax_step |" in table and "jax_over_torch_eager" in table
    assert "32 x 64 (frequency x time)" in table


def test_benchmark_without_torch_names_the_extra(monkeypatch, capsys):
    """PyTorch is an optional dependency: without it the benchmark says how to install it."""
    monkeypatch.setattr(benchmark_cli.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else _find_spec(name, *a))
    assert benchmark_cli.main(["--dim", "4"]) == 1
    assert 'pip install -e ".[torch]"' in capsys.readouterr().err
