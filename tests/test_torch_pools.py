"""torch's plain pooling where some runtime has no exact form (issue 21): ``divisor_override``, LPPool and
dilated max pooling. The portable path, forced, against torch's own op (the oracle): max bit-exact with
its inf/-inf/NaN pattern, average and LPPool up to float rounding with the same non-finite cells; the
plans' integer geometry against torch's output sizes; routing (make_portable, patch, export_onnx) and the
errors torch's own argument checks give."""

import itertools
import math

import onnx
import pytest
import torch
import torch.nn.functional as F
from helpers import plant_nonfinite
from torch import nn

import poolport
import poolport.functional as PF
from poolport.errors import PoolportError
from poolport.plan.dilated import dilated_plan
from poolport.plan.divisor import divisor_pool
from poolport.plan.lppool import lp_plan


def _same_nonfinite(got, want):
    assert got.shape == want.shape
    assert torch.equal(got.isnan(), want.isnan())
    inf = want.isinf()
    assert torch.equal(got.isinf(), inf)
    assert torch.equal(got[inf], want[inf])


def assert_bit_exact(got, want):
    _same_nonfinite(got, want)
    keep = ~want.isnan()
    assert torch.equal(got[keep].view(torch.int32), want[keep].view(torch.int32))  # -0.0 kept too


def assert_close(got, want):
    _same_nonfinite(got, want)
    fin = want.isfinite()
    torch.testing.assert_close(got[fin], want[fin], rtol=2e-6, atol=1e-6)


def _x(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -- the forms against torch's own op, forced portable ------------------------------------------------------

DILATED = [  # (d, size, kernel, stride, padding, dilation, ceil_mode)
    (1, (17,), 3, 1, 1, 2, False), (1, (13,), 2, 3, 1, 3, True), (1, (12,), 3, 2, 0, 2, False),
    (2, (12, 12), 3, 1, 1, 2, False), (2, (12, 13), 2, 3, 1, 2, True), (2, (9, 11), 3, 2, 1, 2, True),
    (2, (12, 12), (3, 2), (1, 2), (1, 0), (2, 1), False), (2, (7, 8), 2, 1, 0, (1, 3), False),
    (3, (6, 8, 8), 2, 1, 1, 2, False), (3, (5, 6, 7), (2, 3, 1), (2, 1, 1), (1, 1, 0), (3, 2, 1), True),
    # dilated on the first axis only: its result used to come out 4-D, (N, C, D', H'*W')
    (3, (7, 8, 9), 2, 1, 0, (2, 1, 1), False), (3, (7, 6, 5), 2, (2, 1, 2), 1, (3, 1, 1), True),
]


@pytest.mark.parametrize("d,size,k,s,p,dil,ceil", DILATED)
def test_dilated_max_pool_is_bit_exact(d, size, k, s, p, dil, ceil):
    x = plant_nonfinite(_x((2, 3, *size)), negative_zero=True)
    want = getattr(F, f"max_pool{d}d")(x, k, s, p, dil, ceil)
    with poolport.always_portable():
        got = getattr(PF, f"max_pool{d}d")(x, k, s, p, dil, ceil)
    assert_bit_exact(got, want)
    with poolport.always_portable():  # unbatched (C, *spatial)
        assert_bit_exact(getattr(PF, f"max_pool{d}d")(x[0], k, s, p, dil, ceil), want[0])


@pytest.mark.slow
def test_dilated_max_pool_sweep():
    for d, n, k, s, p, dil, ceil in itertools.product((1, 2), (4, 5, 7, 9, 12), (1, 2, 3), (1, 2, 3, 4), (0, 1),
                                                      (2, 3), (False, True)):
        size = (n,) if d == 1 else (n, n + 1)
        x = plant_nonfinite(_x((1, 2, *size), n), negative_zero=True)
        try:
            want = getattr(F, f"max_pool{d}d")(x, k, s, p, dil, ceil)
        except RuntimeError:
            with pytest.raises(PoolportError), poolport.always_portable():
                getattr(PF, f"max_pool{d}d")(x, k, s, p, dil, ceil)
            continue
        with poolport.always_portable():
            got = getattr(PF, f"max_pool{d}d")(x, k, s, p, dil, ceil)
        assert_bit_exact(got, want)


DIVISOR = [  # (d, size, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    (2, (12, 12), 3, 2, 1, False, True, 5), (2, (12, 12), 3, 2, 1, True, False, 7),
    (2, (7, 9), (3, 2), (2, 1), (1, 0), True, True, -3), (2, (8, 8), 2, 2, 0, False, True, 4),
    (3, (6, 8, 8), 3, 2, 1, False, True, 5), (3, (5, 6, 7), 2, 2, 1, True, False, 11),
]


@pytest.mark.parametrize("d,size,k,s,p,ceil,cip,div", DIVISOR)
def test_divisor_override_is_exact(d, size, k, s, p, ceil, cip, div):
    x = plant_nonfinite(_x((2, 3, *size)), negative_zero=True)
    want = getattr(F, f"avg_pool{d}d")(x, k, s, p, ceil, cip, div)
    with poolport.always_portable():
        got = getattr(PF, f"avg_pool{d}d")(x, k, s, p, ceil, cip, div)
    assert_close(got, want)


LP = [1, 2, 3, 4, 1.5, 0.5, -1, -2, math.inf, -math.inf]


@pytest.mark.parametrize("p", LP, ids=str)
@pytest.mark.parametrize("d,size,k,s,ceil", [(1, (17,), 3, 2, False), (2, (12, 11), 3, 2, True),
                                             (2, (9, 9), (2, 3), None, False), (3, (5, 6, 7), 2, (2, 1, 2), True)])
def test_lp_pool_is_exact(p, d, size, k, s, ceil):
    x = plant_nonfinite(_x((2, 3, *size)) * 2, negative_zero=True)
    x[..., :2] = 0  # all-zero windows: 0 ** p, and 0 ** (1 / p)
    want = getattr(F, f"lp_pool{d}d")(x, p, k, s, ceil)
    with poolport.always_portable():
        got = getattr(PF, f"lp_pool{d}d")(x, p, k, s, ceil)
    (assert_bit_exact if p in (math.inf, -math.inf) else assert_close)(got, want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_other_float_dtypes(dtype):
    x = _x((1, 2, 9, 10)).to(dtype)
    with poolport.always_portable():
        assert_bit_exact(PF.max_pool2d(x, 3, 1, 1, 2), F.max_pool2d(x, 3, 1, 1, 2))
        got, want = PF.avg_pool2d(x, 3, 2, 1, divisor_override=5), F.avg_pool2d(x, 3, 2, 1, divisor_override=5)
        torch.testing.assert_close(got, want, rtol=2e-3 if dtype == torch.float16 else 1e-12, atol=1e-3)


def test_plain_eager_is_torchs_own_op():
    x = _x((1, 2, 9, 10))
    same = dict(rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(PF.max_pool2d(x, 3, 1, 1, 2), F.max_pool2d(x, 3, 1, 1, 2), **same)
    torch.testing.assert_close(PF.lp_pool2d(x, 3, 2), F.lp_pool2d(x, 3, 2), **same)
    torch.testing.assert_close(PF.avg_pool2d(x, 3, 2, 1, divisor_override=5),
                               F.avg_pool2d(x, 3, 2, 1, divisor_override=5), **same)


# -- plans: integer geometry ---------------------------------------------------------------------------------

def test_plans_match_torchs_output_sizes():
    for n, k, s, p, dil, ceil in itertools.product(range(1, 14), (1, 2, 3), (1, 2, 3, 5), (0, 1), (1, 2, 3),
                                                   (False, True)):
        try:
            want = F.max_pool1d(torch.zeros(1, 1, n), k, s, p, dil, ceil).shape[-1]
        except RuntimeError:
            with pytest.raises(PoolportError):
                dilated_plan((n,), (k,), (s,), (p,), (dil,), ceil)
            continue
        plan = dilated_plan((n,), (k,), (s,), (p,), (dil,), ceil)
        assert plan.out_size == (want,)
        assert all(a.length % a.d == 0 for a in plan.axes)


def test_plans_print_their_steps():
    assert "Reshape" in str(dilated_plan((12, 12), (3, 3), (1, 1), (1, 1), (2, 2), False))
    assert dilated_plan((12,), (3,), (2,), (1,), (2,), False).axes[0].kind == "lattice"
    assert divisor_pool((12, 12), (3, 3), (2, 2), (1, 1), False, 5).steps() == ["Pad", "AveragePool", "Mul"]
    assert lp_plan(2.0, (12, 12), (3, 3), (2, 2), False).steps() == ["Mul x1", "AveragePool", "Mul", "Sqrt"]
    assert lp_plan(math.inf, (12, 12), (3, 3), (2, 2), False).steps() == ["Abs", "MaxPool"]
    assert "Pow" in str(lp_plan(3.0, (12, 12), (3, 3), (2, 2), True))


@pytest.mark.parametrize("call", [
    lambda x: PF.max_pool2d(x, 3, 1, 2, 2),  # padding over half the kernel (torch refuses it too)
    lambda x: PF.lp_pool2d(x, 0, 2),  # norm 0
    lambda x: PF.avg_pool2d(x, 3, 2, 1, divisor_override=0),
    lambda x: PF.max_pool2d(x, 5, 1, 0, 3),  # no output cell
    lambda x: PF.avg_pool2d(x.long(), 3, 2, 1, divisor_override=5),
])
def test_refused_like_torch_with_poolport_error(call):
    with pytest.raises(PoolportError), poolport.always_portable():
        call(_x((1, 2, 6, 6)))


# -- routing -------------------------------------------------------------------------------------------------

def test_make_portable_swaps_only_what_needs_a_portable_form():
    model = nn.Sequential(nn.AvgPool2d(3, 2, 1, divisor_override=5), nn.AvgPool2d(3, 2, 1), nn.LPPool2d(2, 2),
                          nn.MaxPool2d(3, 1, 1, dilation=2), nn.MaxPool2d(3, 1, 1),
                          nn.MaxPool2d(3, 1, 1, dilation=2, return_indices=True))
    portable = poolport.make_portable(model)
    assert [type(m).__module__.startswith("poolport") for m in portable] == [True, False, True, True, False, False]
    assert all(type(m).__module__.startswith("torch") for m in model)  # the original is untouched
    x = plant_nonfinite(_x((1, 3, 40, 40)), negative_zero=True)
    with poolport.always_portable():
        got = portable[:5](x)
    assert_close(got, model[:5](x))


class _Functional(nn.Module):
    def forward(self, x):
        a = F.avg_pool2d(x, 3, 2, padding=1, divisor_override=5)
        b = F.lp_pool2d(x, 2, 3, 2)
        c = F.max_pool2d(x, 2, 3, 1, 2)
        return a, b, c


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_export_onnx_writes_the_portable_forms(tmp_path, exporter):
    model, x = _Functional().eval(), _x((1, 4, 12, 12))
    report = poolport.export_onnx(model, (x,), tmp_path / "m.onnx", exporter=exporter, random_checks=1)
    assert report.checks and all(c.passed for c in report.checks)
    graph = onnx.load(tmp_path / "m.onnx").graph
    ops = {n.op_type for n in graph.node}
    assert "LpPool" not in ops
    for node in graph.node:
        for a in node.attribute:
            assert not (a.name == "dilations" and any(v != 1 for v in a.ints)), node


def test_patch_routes_functional_calls_into_torch_export():
    model, x = _Functional().eval(), _x((1, 4, 12, 12))
    with poolport.patch(model):
        ep = torch.export.export(model, (x,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any("lp_pool" in t for t in targets)
    for n in ep.graph.nodes:
        if "max_pool" in str(n.target):
            assert list(n.args[4] if len(n.args) > 4 else [1, 1]) == [1, 1]  # no dilation left
        if "avg_pool" in str(n.target):
            assert len(n.args) < 7 or n.args[6] is None  # no divisor_override left
    for got, want in zip(ep.module()(x), model(x)):
        assert_close(got, want)


def test_dynamic_spatial_size_is_refused_loudly(tmp_path):
    # a form traced at one size would be wrong or refused at every other: the TorchScript exporter's
    # dynamic axes are refused when the graph is written, torch.export's symbolic sizes when traced
    model = nn.Sequential(nn.Conv2d(4, 4, 1), nn.MaxPool2d(3, 1, 1, dilation=2)).eval()
    x = _x((1, 4, 12, 12))
    h, w = torch.export.Dim("h", min=8, max=64), torch.export.Dim("w", min=8, max=64)
    with pytest.raises(PoolportError, match="dynamic"):
        poolport.export_onnx(model, (x,), tmp_path / "m.onnx", exporter="torchscript", dynamic_shapes=({2: h, 3: w},))
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(PoolportError):
        poolport.export_onnx(model, (x,), tmp_path / "m.onnx", exporter="dynamo", dynamic_shapes=({2: h, 3: w},))
    assert not (tmp_path / "m.onnx").exists()


class _PoolUnpool(nn.Module):
    """SegNet-style: MaxPool2d(return_indices=True) (left to the function mode, not swapped) + MaxUnpool2d."""

    def __init__(self):
        super().__init__()
        self.pool, self.unpool = nn.MaxPool2d(3, 2, 1, return_indices=True), nn.MaxUnpool2d(3, 2, 1)

    def forward(self, x):
        y, i = self.pool(x)
        return self.unpool(y, i, output_size=x.shape[-2:])


def test_a_refusal_inside_the_dynamo_exporter_is_not_hidden_by_its_fallback(tmp_path):
    # the dynamo exporter retries a failed non-strict trace with Dynamo, which skips poolport's function
    # mode: the indices form for ncnn refused a dynamic size and torch's ScatterND graph (which ncnn cannot
    # load) was written as a success; the refusal now ends the export
    h = torch.export.Dim("h", min=8, max=64)
    path = tmp_path / "m.onnx"
    with pytest.raises(PoolportError, match="max_pool2d: the spatial size is dynamic"):
        poolport.export_onnx(_PoolUnpool().eval(), (_x((1, 4, 12, 12)),), path, exporter="dynamo",
                             dynamic_shapes=({2: h, 3: h},), target="ncnn", random_checks=0)
    assert not path.exists()
    # without ncnn among the targets torch's own pool + unpool is exact at every size (verified at four)
    poolport.export_onnx(_PoolUnpool().eval(), (_x((1, 4, 12, 12)),), path, exporter="dynamo",
                         dynamic_shapes=({2: h, 3: h},))
    assert "ScatterND" in {n.op_type for n in onnx.load(path).graph.node}


def test_lp_pool_without_an_exact_ncnn_form_is_refused_for_ncnn(tmp_path):
    # ncnn's Pow is wrong for bases <= 0 (and its Reciprocal for 0): refused for an ncnn target, with why;
    # p = 2 has an exact form there (x * x, Sqrt); other targets take p = 3
    x = _x((1, 4, 12, 12))
    with pytest.raises(PoolportError, match="ncnn's Pow"):
        poolport.export_onnx(nn.LPPool2d(3, 2).eval(), (x,), tmp_path / "m.onnx", target="ncnn")
    assert not (tmp_path / "m.onnx").exists()
    poolport.export_onnx(nn.LPPool2d(2, 2).eval(), (x,), tmp_path / "m.onnx", target="ncnn")
    poolport.export_onnx(nn.LPPool2d(3, 2).eval(), (x,), tmp_path / "m3.onnx", target="openvino")


@pytest.mark.parametrize("target,dilated", [(None, False), ("ncnn", False), ("openvino", True), ("onnxruntime", True)])
def test_dilated_max_pool_form_is_chosen_per_target(tmp_path, target, dilated):
    # ONNX Runtime and OpenVINO compute torch's dilated MaxPool (one node); every other runtime, and no
    # target, gets the sub-lattice form
    model, x = nn.Sequential(nn.Conv2d(4, 4, 1), nn.MaxPool2d(3, 1, 1, dilation=2)).eval(), _x((1, 4, 12, 12))
    report = poolport.export_onnx(model, (x,), tmp_path / "m.onnx", target=target, random_checks=0)
    assert all(c.passed for c in report.checks)
    nodes = onnx.load(tmp_path / "m.onnx").graph.node
    has = any(a.name == "dilations" and any(v != 1 for v in a.ints) for n in nodes for a in n.attribute)
    assert has == dilated


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.MaxPool2d(3, 1, 1, dilation=2), (1, 4, 12, 12)),
    (lambda: nn.MaxPool2d(2, 3, 1, dilation=2, ceil_mode=True), (1, 4, 12, 13)),
    (lambda: nn.MaxPool1d(3, 2, 1, dilation=2), (1, 4, 17)),
    (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, divisor_override=5), (1, 4, 12, 12)),
    (lambda: nn.LPPool2d(3, 3, 2, ceil_mode=True), (1, 4, 12, 12)),
])
def test_reported_operators_are_the_exported_ones(tmp_path, make, shape):
    # the plan tells the truth: the report's operators are what the file holds (Reshapes: at most, an
    # exporter may merge consecutive ones)
    report = poolport.export_onnx(make().eval(), (_x(shape),), tmp_path / "m.onnx", random_checks=0)
    (site,) = report.sites
    counted = site.op_counts()
    written = {}
    for n in onnx.load(tmp_path / "m.onnx").graph.node:
        written[n.op_type] = written.get(n.op_type, 0) + 1
    for op, n in counted.items():
        assert (written.get(op, 0) <= n) if op == "Reshape" else (written.get(op, 0) == n), (op, counted, written)
    assert set(written) <= set(counted), (counted, written)


def test_modules_script_to_torchs_own_op():
    # torch.jit.script compiles the drop-in modules (and a portable copy) to torch's op, same numbers
    x = _x((1, 3, 12, 12))
    for m in (poolport.nn.MaxPool2d(3, 1, 1, dilation=2), poolport.nn.LPPool2d(2, 2),
              poolport.nn.AvgPool2d(3, 2, 1, divisor_override=5)):
        torch.testing.assert_close(torch.jit.script(m)(x), m(x), rtol=0, atol=0, equal_nan=True)
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.LPPool2d(2, 2), nn.MaxPool2d(3, 1, 1, dilation=2)).eval()
    torch.testing.assert_close(torch.jit.script(poolport.make_portable(model))(x), model(x))


class _SegNetBlock(nn.Module):
    """SegNet-style: max pooling with indices, then unpooling at those indices (output_size given)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(4, 6, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.mid = nn.Conv2d(6, 6, 3, padding=1)
        self.unpool = nn.MaxUnpool2d(2, 2)

    def forward(self, x):
        e = torch.relu(self.enc(x))
        p, idx = self.pool(e)
        return self.unpool(self.mid(p), idx, output_size=e.shape)


# (d, spatial size, kernel, stride, padding, dilation, ceil_mode)
INDEX_CASES = [
    (2, (12, 10), 2, 2, 0, 1, False),  # SegNet, ENet
    (2, (13, 11), 2, 2, 0, 1, False),  # cropped rows and columns
    (2, (8, 8), (2, 4), (2, 4), 0, 1, False),
    (2, (13, 11), 3, 2, 1, 1, False),  # overlapping windows with padding
    (2, (13, 11), 3, 2, 0, 1, True),  # ceil_mode: partial windows
    (2, (12, 12), 3, 1, 1, 1, False),
    (2, (9, 12), (3, 2), (2, 3), (1, 0), 1, True),
    (2, (12, 12), 3, 2, 1, 2, False),  # dilation (indices only: unpooling has none)
    (2, (7, 9), 1, 2, 0, 1, False),
    (1, (17,), 3, 2, 1, 1, False),
    (1, (13,), 2, 3, 1, 1, True),
    (3, (5, 6, 7), 2, 2, 0, 1, False),
    (3, (5, 6, 7), 3, 2, 1, 1, False),
]


def _index_input(shape, seed=0):
    x = _x(shape, seed)
    flat = x.view(-1)
    flat[3], flat[flat.numel() // 2], flat[7], flat[8] = -math.inf, math.inf, 0.5, 0.5
    x[0, 1] = -math.inf  # all -inf windows: torch's index is the window's first real cell, never padding
    x[0, 2] = torch.round(x[0, 2] * 2)  # many ties: the first maximum wins
    x[1] = torch.round(x[1])
    return x


@pytest.mark.parametrize("d,size,k,s,p,dil,ceil", INDEX_CASES)
def test_argmax_indices_and_unpool_without_scatter_are_exact(d, size, k, s, p, dil, ceil):
    # oracle: torch's own max_pool{d}d(return_indices=True) and max_unpool{d}d; torch's int64 indices, which
    # poolport's unpooling takes in their float32 form
    from poolport.functional.pools import deploying_to

    x = _index_input((2, 3, *size))
    want_values, want_index = getattr(F, f"max_pool{d}d")(x, k, s, p, dil, ceil, True)
    with poolport.always_portable(), deploying_to(["ncnn"]):
        values, index = getattr(PF, f"max_pool{d}d")(x, k, s, p, dil, ceil, return_indices=True)
    assert index.dtype == torch.int64
    _same_nonfinite(values, want_values)
    assert torch.equal(values, want_values)  # a running Max: a maximum of 0.0 and -0.0 may carry either sign
    assert torch.equal(index, want_index)
    if dil != 1:
        return
    # overlapping windows write one cell several times: torch's CPU kernel keeps the last window's value
    y = torch.randn(want_values.shape, generator=torch.Generator().manual_seed(1))
    y[0, 0].view(-1)[:3] = torch.tensor([math.inf, -math.inf, 0.0])
    with poolport.always_portable(), deploying_to(["mnn"]):
        unpooled = getattr(PF, f"max_unpool{d}d")(y, index, k, s, p, output_size=size)
    want = getattr(F, f"max_unpool{d}d")(y, want_index, k, s, p, output_size=size)
    _same_nonfinite(unpooled, want)
    assert torch.equal(unpooled, want)


def test_segnet_indices_export_for_ncnn_and_mnn_without_scatter(tmp_path):
    model, x = _SegNetBlock().eval(), _x((1, 4, 12, 12))
    for target in ("ncnn", "mnn"):
        report = poolport.export_onnx(model, (x,), tmp_path / f"{target}.onnx", target=target, random_checks=1)
        assert all(c.passed for c in report.checks)
        ops = {n.op_type for n in onnx.load(tmp_path / f"{target}.onnx").graph.node}
        assert not ops & {"ScatterND", "ScatterElements", "MaxUnpool", "Gather", "GatherND"}, ops
    with pytest.raises(PoolportError, match=r"no exact form in LiteRT.*-inf values come back as -3.4e38"):
        poolport.export_onnx(model, (x,), tmp_path / "m2.onnx", target="litert")
    with pytest.raises(PoolportError, match="half the kernel size"), poolport.always_portable():
        from poolport.functional.pools import deploying_to

        with deploying_to(["ncnn"]):
            PF.max_pool2d(x, 2, 2, 2, return_indices=True)


class _PoolUnpool3d(nn.Module):
    """3-D overlapping max pooling with indices, then unpooling (torch's modules, routed by export_onnx)."""

    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool3d(3, 2, 1, return_indices=True)
        self.unpool = nn.MaxUnpool3d(3, 2, 1)

    def forward(self, x):
        p, idx = self.pool(x)
        return self.unpool(p * 2 - 1, idx, output_size=x.shape)


def test_3d_overlapping_indices_export_for_ncnn(tmp_path):
    x = _index_input((2, 3, 5, 6, 7))[:1].clone()
    report = poolport.export_onnx(_PoolUnpool3d().eval(), (x,), tmp_path / "m.onnx", target="ncnn", random_checks=1)
    assert all(c.passed for c in report.checks)
    ops = {n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node}
    assert not ops & {"ScatterND", "ScatterElements", "MaxUnpool", "Gather", "GatherND"}, ops


def test_indices_refusals_name_the_limit():
    from poolport.functional.pools import deploying_to
    from poolport.plan.indices import argmax_plan

    with pytest.raises(PoolportError, match="more cells per channel than float32 indices hold"):
        argmax_plan((4096, 4096), (2, 2), (2, 2), (0, 0), (1, 1), False)
    with poolport.always_portable(), deploying_to(["ncnn"]):
        with pytest.raises(PoolportError, match="covers float32 only"):
            PF.max_pool2d(_x((1, 2, 8, 8)).double(), 2, return_indices=True)
        values, index = PF.max_pool2d(_x((1, 2, 8, 8)), 2, return_indices=True)
        with pytest.raises(PoolportError, match="of one shape"):
            PF.max_unpool2d(values, index[:, :1].float(), 2)  # float indices: poolport's form, checked
