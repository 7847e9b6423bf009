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


@pytest.mark.parametrize("dim", [4, 64])
def test_model_flops_match_torch_flop_counter(dim):
    """The analytic forward FLOPs equal an independent count (torch's FlopCounterMode on the
    reference; it counts matmuls/convs, not bias adds or activations)."""
    fg, fd = benchmark.model_flops(dim)
    with torch.device("meta"):
        g, d = SpecGANGenerator(dim=dim, padding="torch"), SpecGANDiscriminator(dim=dim,
                                                                                 padding="torch")
        with FlopCounterMode(display=False) as cg:
            x = g(torch.zeros(1, 100))
        with FlopCounterMode(display=False) as cd:
            d(x)
    assert fg == pytest.approx(cg.get_total_flops(), rel=1e-12)
    assert fd == pytest.approx(cd.get_total_flops(), rel=1e-12)


def test_small_benchmark_writes_report(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = benchmark_cli.main(["--dim", "4", "--batch", "2", "--iters", "1", "--repeats", "1",
                             "--no-torch-compile", "--json", str(out)])
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
    assert report["flops_per_iter"] == benchmark.iteration_flops(4, 2, 5)
    table = capsys.readouterr().out
    assert "| jax_step |" in table and "jax_over_torch_eager" in table


def test_benchmark_without_torch_names_the_extra(monkeypatch, capsys):
    """PyTorch is an optional dependency: without it the benchmark says how to install it."""
    monkeypatch.setattr(benchmark_cli.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else _find_spec(name, *a))
    assert benchmark_cli.main(["--dim", "4"]) == 1
    assert 'pip install -e ".[torch]"' in capsys.readouterr().err
