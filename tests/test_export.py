"""Export/import CLI: a torch SpecGANGenerator -> run dir -> JAX samples -> exported state_dict.

FORWARD_TOL = 1e-5: the parity suite's TOL["forward"] (same weights, 5 layers of fp32
rounding in two frameworks, ~1e-6 observed). Weight round trips are permutations: exact.
"""

import json

import numpy as np
import pytest
import torch

from specgan_jax.cli.export import export_main, import_main
from specgan_jax.engine.sampling import latents
from specgan_jax.run.run_dir import LoadedRun
from specgan_jax.data.moments import compute_moments
from specgan_jax.data.normalize import denormalize
from specgan_torch_ref.models import SpecGANGenerator

FORWARD_TOL = 1e-5


@pytest.fixture(scope="module")
def torch_g(tmp_path_factory):
    """A torch reference generator (dim 4, batch norm, non-trivial running stats), saved."""
    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    g = SpecGANGenerator(nz=100, kernel_len=5, dim=4, use_batchnorm=True)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # 1/0 defaults would hide a swapped tensor
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    g.eval()
    pt = root / "G.pt"
    torch.save(g.state_dict(), pt)
    rng = np.random.default_rng(0)
    mom = compute_moments(rng.normal(-5, 1, (4, 128, 128)).astype(np.float32))
    mom.save(str(root / "moments.npz"))
    return {"root": root, "g": g, "pt": str(pt), "moments": str(root / "moments.npz")}


def test_import_generate_export_matches_torch(torch_g, capsys):
    root = torch_g["root"]
    run_dir = root / "imported"
    rc = import_main([torch_g["pt"], "--moments", torch_g["moments"], "--out", str(run_dir),
                      "--model.dim", "4", "--model.use_batchnorm"])
    assert rc == 0, capsys.readouterr().err
    run = LoadedRun(str(run_dir))
    assert run.step == 0
    z = np.array(latents(3, np.arange(4), 100, "uniform"))  # a writable copy for torch
    with torch.no_grad():
        ref = torch_g["g"](torch.from_numpy(z)).numpy()[:, 0]  # [4, 128, 128] in [-1, 1]
    ours = run.generate(z)  # denormalised: compare in normalised units via the same moments
    np.testing.assert_allclose(ours, denormalize(ref, run.moments), rtol=0,
                               atol=FORWARD_TOL * float(3 * run.moments.std.max()))
    raw = np.asarray(run._gen(run.g_params, run.g_batch_stats, z))[..., 0]
    np.testing.assert_allclose(raw, ref, rtol=0, atol=FORWARD_TOL)

    # Export back: the torch class loads it and the tensors are the originals, bit for bit.
    out = root / "G2.pt"
    assert export_main([str(run_dir), "--out", str(out)]) == 0
    side = json.loads((root / "G2.pt.json").read_text())
    g2 = SpecGANGenerator(**side["kwargs"])
    g2.load_state_dict(torch.load(out, weights_only=True))
    g2.eval()
    for k, v in torch_g["g"].state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue  # carries no information with a fixed momentum (see convert.py)
        assert torch.equal(g2.state_dict()[k], v), k
    with torch.no_grad():
        assert torch.equal(g2(torch.from_numpy(z)), torch_g["g"](torch.from_numpy(z)))


def test_import_uses_the_export_sidecar_and_reports_mismatches(torch_g, tmp_path, capsys):
    # Without model flags, a G.pt.json sidecar (from export_torch.py) supplies the kwargs.
    pt = tmp_path / "G.pt"
    pt.write_bytes(open(torch_g["pt"], "rb").read())
    (tmp_path / "G.pt.json").write_text(json.dumps({"kwargs": {
        "nz": 100, "kernel_len": 5, "dim": 4, "use_batchnorm": True, "upsample": "zeros",
        "padding": "same"}}))
    assert import_main([str(pt), "--moments", torch_g["moments"],
                        "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    # Wrong architecture: a clear error naming the file and the keys, no run dir left.
    rc = import_main([torch_g["pt"], "--moments", torch_g["moments"], "--out",
                      str(tmp_path / "bad"), "--model.dim", "4"])  # BN tensors unexpected
    err = capsys.readouterr().err
    assert rc == 1 and "G.pt" in err and "unexpected keys" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
    assert import_main([str(tmp_path / "none.pt"), "--moments", torch_g["moments"],
                        "--out", str(tmp_path / "x")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert export_main([str(tmp_path / "nope"), "--out", str(tmp_path / "o.pt")]) == 1
    assert "does not exist" in capsys.readouterr().err
