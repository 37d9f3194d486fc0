"""FractionalMaxPool2d/3d: with fixed ``_random_samples`` poolport writes torch's windows as plain max
pooling, bit-exact against torch's own ``F.fractional_max_pool2d/3d`` with the same samples (the oracle),
inf, -inf and NaN included; with random samples (None) every path that records a graph refuses it loudly,
naming the layer and its sizes, while plain eager calls keep torch's op. The runtimes:
tests/test_fractional_runtimes.py; the plan's geometry: tests/test_plan_fractional.py."""

import random
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from helpers import plant_nonfinite
from torch import nn

import poolport
import poolport.functional as PF
import poolport.nn as PN
from poolport.cli.main import main
from poolport.errors import PoolportError
from poolport.export.torch_onnx import torch_export_to_proto
from poolport.plan.fractional import fractional_plan

NATIVE = {2: F.fractional_max_pool2d, 3: F.fractional_max_pool3d}
PORTABLE = {2: PF.fractional_max_pool2d, 3: PF.fractional_max_pool3d}


def assert_bit_exact(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    assert torch.equal(got.isnan(), want.isnan())
    keep = ~want.isnan()
    assert torch.equal(got[keep], want[keep])


def _case(rng: random.Random, d: int, dtype: torch.dtype):
    n, c = rng.randint(1, 3), rng.randint(1, 5)
    spatial = [rng.randint(2, 15 if d == 2 else 7) for _ in range(d)]
    strict = d == 3  # torch's 3-D check: output + kernel - 1 < input
    kernel = [rng.randint(1, s - strict) for s in spatial]
    out = [rng.randint(1, s - k + 1 - strict) for s, k in zip(spatial, kernel)]
    gen = torch.Generator().manual_seed(rng.randint(0, 2**31))
    x = plant_nonfinite(torch.randn(n, c, *spatial, generator=gen), negative_inf_column=True).to(dtype)
    samples = torch.rand(n, c, d, generator=gen).to(dtype)
    return x, tuple(kernel), tuple(out), samples


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_forced_portable_is_torchs_op_bit_for_bit(d, dtype):
    rng = random.Random(f"{d}{dtype}")
    for i in range(25):
        x, kernel, out, samples = _case(rng, d, dtype)
        if i % 4 == 0:  # unbatched: torch takes the first row of samples
            x, samples = x[0], samples[:1]
        want = NATIVE[d](x, kernel, output_size=out, _random_samples=samples)
        with poolport.always_portable():
            got = PORTABLE[d](x, kernel, output_size=out, _random_samples=samples)
        assert_bit_exact(got, want)


def test_output_ratio_and_more_samples_than_batch_rows():
    x = plant_nonfinite(torch.randn(2, 3, 13, 11), negative_inf_column=True)
    samples = torch.rand(4, 3, 2)  # torch reads the first 2 rows
    want = F.fractional_max_pool2d(x, (2, 3), output_ratio=(0.5, 0.6), _random_samples=samples)
    with poolport.always_portable():
        got = PF.fractional_max_pool2d(x, (2, 3), output_ratio=(0.5, 0.6), _random_samples=samples)
    assert_bit_exact(got, want)


def test_float32_windows_are_torchs_not_float64s():
    # the float32 rounding of torch's kernel moves window 10 of 38 -> 12 (k 2) from 32 to 33 for this sample
    u = 0.08333265781402588
    x = torch.arange(38.0).reshape(1, 1, 1, 38)  # a window's maximum is its last cell: the window is visible
    samples = torch.tensor([[[u, 0.5]]])
    want = F.fractional_max_pool2d(x, (1, 2), output_size=(1, 12), _random_samples=samples)
    assert want[0, 0, 0, 10] == 34.0  # torch: [33, 35)
    with poolport.always_portable():
        got = PF.fractional_max_pool2d(x, (1, 2), output_size=(1, 12), _random_samples=samples)
    assert_bit_exact(got, want)


class _Net(nn.Module):
    def __init__(self, samples, d=2):
        super().__init__()
        conv, pool = (nn.Conv2d, nn.FractionalMaxPool2d) if d == 2 else (nn.Conv3d, nn.FractionalMaxPool3d)
        self.conv = conv(3, 6, 3, padding=1)
        self.pool = pool(3, output_size=5, _random_samples=samples)

    def forward(self, x):
        return self.pool(self.conv(x))


def _ort(proto, x):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_module_exports_exact_and_the_plan_counts_its_operators(exporter):
    x = plant_nonfinite(torch.randn(2, 4, 12, 11), negative_inf_column=True)
    module = PN.FractionalMaxPool2d((3, 2), output_size=(5, 6), _random_samples=torch.rand(2, 4, 2)).eval()
    want = F.fractional_max_pool2d(x, (3, 2), output_size=(5, 6), _random_samples=module._random_samples)
    proto = torch_export_to_proto(module, (x,), exporter, 18 if exporter == "dynamo" else 17)
    counts = Counter(n.op_type for n in proto.graph.node if n.op_type != "Constant")
    assert set(counts) <= {"Slice", "MaxPool", "Concat", "Reshape"}
    samples = tuple(tuple(r) for r in module._random_samples.reshape(-1, 2).tolist())
    plan = fractional_plan((12, 11), (3, 2), (5, 6), samples, 4, "float32")
    assert counts == plan.op_counts()
    got = _ort(proto, x)
    assert np.array_equal(got, want.numpy(), equal_nan=True)


def test_export_onnx_verifies_a_model_exact(tmp_path):
    torch.manual_seed(0)
    model = _Net(torch.rand(1, 6, 2)).eval()
    x = torch.randn(1, 3, 14, 14)
    report = poolport.export_onnx(model, (x,), tmp_path / "m.onnx")
    assert report.passed and report.sites[0].op == "fractional_max_pool2d" and report.sites[0].max_abs_error == 0
    assert not {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node} - {
        "Conv", "Slice", "MaxPool", "Concat", "Reshape", "Constant"}


def test_3d_model_through_export_onnx(tmp_path):
    torch.manual_seed(1)
    model = _Net(torch.rand(1, 6, 3), d=3).eval()
    report = poolport.export_onnx(model, (torch.randn(1, 3, 8, 9, 10),), tmp_path / "m.onnx", exporter="torchscript")
    assert report.passed and report.sites[0].max_abs_error == 0


def test_samples_changed_after_make_portable_are_the_ones_exported():
    torch.manual_seed(2)
    model = _Net(torch.rand(1, 6, 2)).eval()
    portable = poolport.make_portable(model, share_weights=True, target="onnxruntime")
    x = torch.randn(1, 3, 14, 14)
    with torch.no_grad():
        model.pool._random_samples.copy_(torch.rand(1, 6, 2))  # in place, as load_state_dict does
    proto = torch_export_to_proto(portable, (x,), "dynamo", 18)
    assert np.allclose(_ort(proto, x), model(x).detach().numpy(), rtol=0, atol=1e-5)
    portable.pool._random_samples = torch.rand(1, 6, 2)  # a new tensor
    proto = torch_export_to_proto(portable, (x,), "dynamo", 18)
    assert np.allclose(_ort(proto, x), portable(x).detach().numpy(), rtol=0, atol=1e-5)


def test_patch_around_torch_export_and_make_portable_with_example_inputs():
    torch.manual_seed(4)
    model, x = _Net(torch.rand(2, 6, 2)).eval(), plant_nonfinite(torch.randn(2, 3, 13, 12), negative_inf_column=True)
    with poolport.patch(model):
        program = torch.export.export(model, (x,))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("fractional" in t for t in targets) and "aten.max_pool2d.default" in targets
    assert type(model.pool) is nn.FractionalMaxPool2d  # restored
    assert_bit_exact(program.module()(x), model(x))
    portable = poolport.make_portable(model, (x,))
    (site,) = poolport.verify_sites(portable, (x,))
    assert site.op == "fractional_max_pool2d" and site.max_abs_error == 0 and site.plan.batch == 2


# -- random samples: refused where a graph is recorded, torch's op in plain eager mode -------------------------

def test_random_module_refused_by_make_portable_and_export(tmp_path):
    model = _Net(None).eval()
    with pytest.raises(PoolportError, match=r"layer 'pool' \(FractionalMaxPool2d, kernel_size=\(3, 3\), "
                                            r"output_size=\(5, 5\)\) draws its windows at random.*_random_samples="):
        poolport.make_portable(model)
    with pytest.raises(PoolportError, match="AdaptiveMaxPool2d"):
        poolport.export_onnx(model, (torch.randn(1, 3, 12, 12),), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(PoolportError, match="at random"):
        with poolport.patch(model):
            pass
    assert type(model.pool) is nn.FractionalMaxPool2d  # nothing swapped by the refused patch


def test_random_refused_on_the_command_line(tmp_path, capsys):
    factory = tmp_path / "models.py"
    factory.write_text("import torch\n\ndef build():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), "
                       "torch.nn.FractionalMaxPool2d(3, output_size=5))\n")
    out = tmp_path / "m.onnx"
    assert main(["convert", f"{factory}:build", "--input", "1x3x16x16", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "FractionalMaxPool2d" in err and "at random" in err and "DispatchError" not in err
    assert not out.exists()


def test_random_functional_refused_when_portable_with_the_input_size():
    x = torch.randn(1, 3, 10, 10)
    with poolport.always_portable(), pytest.raises(PoolportError, match=r"input \(1, 3, 10, 10\), kernel \(3, 3\), "
                                                                         r"output \(4, 4\)\) draws its windows"):
        PF.fractional_max_pool2d(x, 3, output_size=4)


def test_functional_call_inside_forward_is_routed(tmp_path):
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("samples", torch.rand(1, 3, 2))

        def forward(self, x):
            return F.fractional_max_pool2d(x, 2, output_size=(4, 5), _random_samples=self.samples)

    class Random(nn.Module):
        def forward(self, x):
            return F.fractional_max_pool2d(x, 2, output_size=(4, 5))

    class Drawn(nn.Module):
        def forward(self, x):
            return F.fractional_max_pool2d(x, 2, output_size=(4, 5), _random_samples=torch.rand(1, 3, 2))

    model, x = Functional().eval(), torch.randn(1, 3, 9, 9)
    portable = poolport.make_portable(model)
    proto = torch_export_to_proto(portable, (x,), "dynamo", 18)  # the real buffer behind torch.export's fake
    assert "MaxPool" in {n.op_type for n in proto.graph.node}
    assert np.array_equal(_ort(proto, x), model(x).numpy())
    report = poolport.export_onnx(model, (x,), tmp_path / "m.onnx", exporter="dynamo")
    assert report.passed and report.sites[0].op == "fractional_max_pool2d" and report.sites[0].max_abs_error == 0
    # a trace shows the buffer as an input, and samples drawn in forward as aten::rand: baked in, either would
    # be wrong on another call, so both are refused
    for module, made_by in ((model, "prim::Param"), (Drawn().eval(), "aten::rand")):
        with pytest.raises(PoolportError, match=f"come from {made_by} while a trace is recorded"):
            torch_export_to_proto(poolport.make_portable(module), (x,), "torchscript", 17)
    with poolport.always_portable(), pytest.raises(PoolportError, match="at random"):
        poolport.make_portable(Random())(x)
    for exporter in ("dynamo", "torchscript"):
        with pytest.raises(PoolportError, match=r"fractional_max_pool2d \(input \(1, 3, 9, 9\), kernel \(2, 2\), "
                                                r"output \(4, 5\)\) draws its windows at random on each call"):
            poolport.export_onnx(Random().eval(), (x,), tmp_path / f"r_{exporter}.onnx", exporter=exporter)
    # torch's own op left in a graph for the dynamo exporter: poolport's translation table refuses it
    with pytest.raises(PoolportError, match=r"fractional_max_pool2d \(input 1x3x9x9, kernel \(2, 2\), output "
                                            r"\(4, 5\)\) reached the dynamo exporter as torch's own op"):
        torch_export_to_proto(Random().eval(), (x,), "dynamo", 18)


def test_samples_given_as_a_model_input_are_never_baked_in(tmp_path):
    class Input(nn.Module):
        def forward(self, x, samples):
            return F.fractional_max_pool2d(x, 2, output_size=(4, 5), _random_samples=samples)

    args = (torch.randn(1, 3, 9, 9), torch.rand(1, 3, 2))
    for exporter in ("dynamo", "torchscript"):
        with pytest.raises(PoolportError, match="_random_samples"):
            poolport.export_onnx(Input().eval(), args, tmp_path / f"{exporter}.onnx", exporter=exporter)
        assert not (tmp_path / f"{exporter}.onnx").exists()


def test_eager_calls_keep_torchs_op():
    model = _Net(None).eval()
    x = torch.randn(2, 3, 12, 12)
    assert model(x).shape == (2, 6, 5, 5)  # torch's own random op, untouched
    pool = PN.FractionalMaxPool2d(3, output_size=5)
    torch.manual_seed(5)
    a = pool(x[:, :3])
    torch.manual_seed(5)
    assert torch.equal(a, F.fractional_max_pool2d(x[:, :3], 3, output_size=5))


def test_return_indices_refused_when_portable_eager_kept():
    x = torch.randn(1, 2, 9, 9)
    samples = torch.rand(1, 2, 2)
    values, indices = PF.fractional_max_pool2d(x, 3, output_size=4, return_indices=True, _random_samples=samples)
    assert indices.dtype == torch.int64
    with poolport.always_portable(), pytest.raises(PoolportError, match="return_indices=True"):
        PF.fractional_max_pool2d(x, 3, output_size=4, return_indices=True, _random_samples=samples)


@pytest.mark.parametrize("samples, match", [
    (torch.rand(1, 3, 2, dtype=torch.float64), "same dtype"),
    (torch.rand(1, 2, 2), r"torch requires \(N' >= 1, 3, 2\)"),
    ("0.5", "must be a tensor"),
])
def test_bad_samples_refused_when_portable(samples, match):
    with poolport.always_portable(), pytest.raises(PoolportError, match=match):
        PF.fractional_max_pool2d(torch.randn(1, 3, 9, 9), 3, output_size=4, _random_samples=samples)


def test_export_archive_and_torchscript_file_refused_with_the_reason(tmp_path, capsys):
    # poolport reads the samples from the PyTorch model; a .pt2 program or a TorchScript file holds torch's
    # op: refused with what to do, never the exporters' DispatchError / UnsupportedOperatorError
    torch.manual_seed(3)
    model, x = _Net(torch.rand(1, 6, 2)).eval(), torch.randn(1, 3, 12, 12)
    torch.export.save(torch.export.export(model, (x,)), str(tmp_path / "m.pt2"))
    torch.jit.script(model).save(str(tmp_path / "m.pt"))
    for source, extra in (("m.pt2", []), ("m.pt", ["--input", "1x3x12x12"])):
        out = tmp_path / f"{source}.onnx"
        assert main(["convert", str(tmp_path / source), *extra, "-o", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "fractional_max_pool2d" in err and "Export the nn.Module" in err and "Error:" not in err, err
        assert not out.exists()
