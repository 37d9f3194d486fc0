"""PyTorch's own edge paths, no ONNX: ExecuTorch (XNNPACK delegate and portable kernels) and litert-torch,
after ``make_portable``. Natively both refuse adaptive max pooling, ExecuTorch never delegates adaptive
average pooling and litert-torch writes GATHER_ND for it (docs/runtimes.md). With poolport: exact, every
2-D and 1-D plan inside the XNNPACK delegate, and LiteRT files of SLICE / pooling / CONCATENATION with at
most 5 inputs per CONCATENATION (LiteRT's XNNPACK delegate takes no more). Optional extra: pip install
'poolport[edge]'; skipped when absent."""

import collections

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import needs_executorch, needs_litert_torch

import poolport
from poolport.demo.models import PyramidHead

pytestmark = pytest.mark.runtime



class Wrap(nn.Module):
    def __init__(self, *pools):
        super().__init__()
        self.pools = nn.ModuleList(pools)

    def forward(self, x):
        return tuple(p(x) for p in self.pools)


SMALL = [  # (name, module, input): every plan kind, 1d and 2d, avg and max
    ("avg2d-runs", Wrap(nn.AdaptiveAvgPool2d(7)), (1, 8, 10, 13)),
    ("max2d-runs", Wrap(nn.AdaptiveMaxPool2d((3, 5))), (1, 8, 10, 13)),
    ("avg2d-ten-runs", Wrap(nn.AdaptiveAvgPool2d(14)), (1, 4, 20, 20)),  # 20 -> 14: 10 runs per axis
    ("max2d-ten-runs", Wrap(nn.AdaptiveMaxPool2d(14)), (1, 4, 20, 20)),
    ("avg2d-uniform-global", Wrap(nn.AdaptiveAvgPool2d((4, 1))), (1, 8, 16, 9)),
    ("max2d-repeats", Wrap(nn.AdaptiveMaxPool2d((7, 9))), (1, 4, 3, 4)),
    ("avg1d-runs", Wrap(nn.AdaptiveAvgPool1d(5)), (1, 8, 17)),
    ("max1d-runs", Wrap(nn.AdaptiveMaxPool1d(5)), (1, 8, 17)),
    ("avg1d-uniform", Wrap(nn.AdaptiveAvgPool1d(4)), (1, 8, 16)),
]


def _outputs(y):
    return list(y) if isinstance(y, (tuple, list)) else [y]


def _assert_exact(got, want, max_exact):
    for g, w in zip(got, want):
        g, w = np.asarray(g), w.detach().numpy()
        assert g.shape == w.shape
        if max_exact:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(w).max())))


def _executorch(model, x, delegate=True):
    """Lower ``model`` with ExecuTorch (XNNPACK partitioner or portable kernels only), run it; returns the
    outputs and the call_function nodes left outside the delegate (getitem aside)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    ep = torch.export.export(model, (x,))
    lowered = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()] if delegate else [])
    graph = lowered.exported_program().graph_module.graph
    outside = [str(n.target) for n in graph.nodes if n.op == "call_function"
               and "getitem" not in str(n.target) and "executorch_call_delegate" not in str(n.target)]
    delegates = sum("executorch_call_delegate" in str(n.target) for n in graph.nodes)
    buffer = lowered.to_executorch().buffer  # the loaded program points into it: keep it alive while it runs
    program = Runtime.get().load_program(buffer)
    out = program.load_method("forward").execute([x])
    del program, buffer
    return out, outside, delegates


@needs_executorch
@pytest.mark.parametrize("name,module,shape", SMALL, ids=[s[0] for s in SMALL])
def test_executorch_xnnpack_runs_every_plan_exactly_and_fully_delegated(name, module, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    model = module.eval()
    got, outside, delegates = _executorch(poolport.make_portable(model, (x,)), x)
    _assert_exact(got, _outputs(model(x)), name.startswith("max"))
    assert outside == [] and delegates == 1, (outside, delegates)


@needs_executorch
def test_executorch_natively_refuses_adaptive_max_pooling():
    # the problem poolport solves on this path (so that this suite would notice if it went away)
    x = torch.randn(1, 8, 10, 13)
    with pytest.raises(Exception, match="adaptive_max_pool2d|Core ATen"):
        _executorch(Wrap(nn.AdaptiveMaxPool2d((3, 5))).eval(), x)


@needs_executorch
@pytest.mark.parametrize("pool", [nn.AvgPool3d(2), nn.MaxPool3d(2)], ids=["avg", "max"])
def test_executorch_has_no_3d_pooling_kernels(pool):
    # not even plain 3-D pooling: XNNPACK has none and ExecuTorch 1.5.1's runtime registers no avg_pool3d /
    # max_pool3d kernel, so 3-D plans are out of reach on this path (docs/runtimes.md); it refuses loudly
    x = torch.randn(1, 2, 6, 6, 6)
    with pytest.raises(RuntimeError, match="Failed to load method"):
        _executorch(Wrap(pool).eval(), x, delegate=False)


class PyramidBins(nn.Module):
    """The pooling of a PSPNet-style head (bins 1, 2, 3, 6 and an adaptive max (3, 5)), without the
    upsampling: litert-torch 0.10 computes F.interpolate(mode="nearest") wrongly at non-integer scales,
    with or without poolport (measured), which is not what this suite is about."""

    def __init__(self):
        super().__init__()
        self.bins = nn.ModuleList(nn.AdaptiveAvgPool2d(b) for b in (1, 2, 3, 6))
        self.max = nn.AdaptiveMaxPool2d((3, 5))

    def forward(self, x):
        return (*(b(x) for b in self.bins), self.max(x))


def _models(head):
    import torchvision

    return [("pspnet-head", head().eval(), (1, 16, 45, 37)),
            ("vgg11", torchvision.models.vgg11(weights=None, num_classes=10).eval(), (1, 3, 193, 257))]


POOLING = ("pool", "slice", "cat")


@needs_executorch
def test_executorch_real_models_at_a_non_224_size():
    for name, model, shape in _models(PyramidHead):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = _outputs(model(x))
            got, outside, _ = _executorch(poolport.make_portable(model, (x,)), x)
        _assert_exact(got, want, False)
        # every pooling, slice and concat of poolport's plans is inside the XNNPACK delegate
        assert not [o for o in outside if any(p in o for p in POOLING)], (name, outside)


def _litert(model, x):
    """litert-torch: outputs, op counts, CONCATENATION fan-ins and XNNPACK delegate partitions."""
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    edge = litert_torch.convert(model, (x,))
    got = _outputs(edge(x))
    content = edge.model_content() if callable(getattr(edge, "model_content", None)) else edge.model_content
    plain = Interpreter(model_content=content,
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    plain.allocate_tensors()
    ops = plain._get_ops_details()
    delegated = Interpreter(model_content=content, experimental_op_resolver_type=OpResolverType.AUTO)
    delegated.allocate_tensors()
    partitions = sum(o["op_name"] == "DELEGATE" for o in delegated._get_ops_details())
    fan_in = [len(o["inputs"]) for o in ops if o["op_name"] == "CONCATENATION"]
    return got, collections.Counter(o["op_name"] for o in ops), fan_in, partitions


@needs_litert_torch
@pytest.mark.parametrize("name,module,shape", SMALL, ids=[s[0] for s in SMALL])
def test_litert_torch_runs_every_plan_exactly_inside_xnnpack(name, module, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    model = module.eval()
    got, ops, fan_in, partitions = _litert(poolport.make_portable(model, (x,)), x)
    _assert_exact(got, _outputs(model(x)), name.startswith("max"))
    assert set(ops) <= {"SLICE", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION", "TRANSPOSE", "RESHAPE"}, ops
    assert max(fan_in, default=0) <= 5, fan_in
    assert partitions == 1


@needs_litert_torch
def test_litert_torch_real_models_without_gather():
    for name, model, shape in _models(PyramidBins):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = _outputs(model(x))
            got, ops, fan_in, _ = _litert(poolport.make_portable(model, (x,)), x)
        _assert_exact(got, want, False)
        assert "GATHER_ND" not in ops and "GATHER" not in ops, (name, ops)
        assert max(fan_in, default=0) <= 5, (name, fan_in)


@needs_executorch
def test_executorch_program_refuses_other_sizes():
    # exported at 10x13 with a static plan: another size must be refused, never computed with wrong windows
    x, other = torch.randn(1, 8, 10, 13), torch.randn(1, 8, 12, 9)
    model = Wrap(nn.AdaptiveAvgPool2d(7)).eval()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    portable = poolport.make_portable(model, (x,))
    buffer = to_edge_transform_and_lower(torch.export.export(portable, (x,)),
                                         partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    program = Runtime.get().load_program(buffer)  # it points into buffer: both stay alive while it runs
    method = program.load_method("forward")
    _assert_exact(method.execute([x]), _outputs(model(x)), False)
    with pytest.raises(RuntimeError):
        method.execute([other])


@needs_litert_torch
def test_litert_torch_model_refuses_other_sizes():
    import litert_torch

    x, other = torch.randn(1, 8, 10, 13), torch.randn(1, 8, 12, 9)
    model = Wrap(nn.AdaptiveAvgPool2d(7)).eval()
    edge = litert_torch.convert(poolport.make_portable(model, (x,)), (x,))
    _assert_exact(_outputs(edge(x)), _outputs(model(x)), False)
    with pytest.raises(Exception, match="reshape|shape|dimension"):
        edge(other)
