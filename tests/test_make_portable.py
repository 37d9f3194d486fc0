"""make_portable and patch: every adaptive pooling call in a model is routed to poolport when the graph
is recorded, nothing changes in eager mode, and the original model is never touched."""

import copy

import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import poolport
from poolport.onnxfile.graph import NON_PORTABLE_OPS, op_counts
from poolport.routing.intercept import intercepted_functions
from poolport.verify.in_pytorch import run_recorded


class SubclassPool(nn.AdaptiveAvgPool2d):
    """A user subclass with its own forward: only the function mode can reach its call."""

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size) * 1.0


class Functional(nn.Module):
    """Every functional spelling real models use, with non-divisible sizes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveMaxPool2d((5, 3))
        self.sub = SubclassPool(4)

    def forward(self, x):
        x = self.conv(x)
        a = F.adaptive_avg_pool2d(x, (7, 7)).flatten(1)
        b = F.adaptive_max_pool2d(x, 5).flatten(1)
        c = torch._C._nn.adaptive_avg_pool2d(x, (3, 3)).flatten(1)
        line = x.mean(2)  # (N, C, W)
        d = torch.adaptive_avg_pool1d(line, 4).flatten(1)
        e = torch.adaptive_max_pool1d(line, 4)[0].flatten(1)
        f = F.adaptive_max_pool1d(line, 6).flatten(1)
        g = self.pool(x).flatten(1) + 0
        h = self.sub(x).flatten(1)
        return torch.cat([a, b, c, d, e, f, g, h], 1)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Functional().eval()


X = torch.randn(2, 3, 11, 13, generator=torch.Generator().manual_seed(0))


def test_original_is_never_modified(model):
    before = copy.deepcopy(model.state_dict())
    classes = [type(m) for m in model.modules()]
    portable = poolport.make_portable(model)
    assert portable is not model
    assert [type(m) for m in model.modules()] == classes
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(portable.pool, poolport.nn.AdaptiveMaxPool2d)
    assert type(portable.sub) is SubclassPool  # subclasses keep their class


def test_eager_output_identical_and_native(model, monkeypatch):
    import poolport.functional.adaptive as mod

    calls = []
    real = mod.apply_plan
    monkeypatch.setattr(mod, "apply_plan", lambda x, plan: calls.append(plan) or real(x, plan))
    portable = poolport.make_portable(model)
    with torch.no_grad():
        assert torch.equal(portable(X), model(X))
    assert calls == []  # eager took the native ops


def test_recorded_pass_reaches_every_site_and_names_it(model):
    portable = poolport.make_portable(model)
    out, sites = run_recorded(portable, (X,))
    with torch.no_grad():
        torch.testing.assert_close(out, model(X), rtol=0, atol=1e-6)
    names = [s.where for s in sites]
    assert "pool" in names
    assert any(n.startswith("<root> @ test_make_portable.py:") for n in names)
    assert any(n.startswith("sub @ test_make_portable.py:") for n in names)
    assert len(sites) == 8
    assert all(s.max_abs_error == 0 for s in sites if s.op.startswith("adaptive_max"))
    assert all(s.max_rel_error < 1e-6 for s in sites)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_every_functional_spelling_exports_portably(model, dynamo, tmp_path):
    portable = poolport.make_portable(model)
    path = tmp_path / "m.onnx"
    torch.onnx.export(portable, (X,), str(path), dynamo=dynamo)
    proto = onnx.load(str(path))
    ops = op_counts(proto)
    assert not set(ops) & NON_PORTABLE_OPS, ops
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: X.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(y), model(X), rtol=0, atol=1e-5)


def test_plain_model_fails_to_export(model, tmp_path):
    with pytest.raises(Exception, match="not factor of input size"):
        torch.onnx.export(model, (X,), str(tmp_path / "m.onnx"), dynamo=False)


def test_jit_trace_of_portable_model_keeps_torchs_op_exact_at_other_sizes(model):
    # a plain trace may be run or converted at other sizes (OpenVINO makes inputs dynamic): the native
    # op computes every size exactly there, a static plan would not
    traced = torch.jit.trace(poolport.make_portable(model), (X,))
    assert "aten::adaptive" in str(traced.inlined_graph)
    with torch.no_grad():
        torch.testing.assert_close(traced(X), model(X), rtol=0, atol=1e-5)


def test_torch_export_non_strict_of_portable_model(model):
    ep = torch.export.export(poolport.make_portable(model), (X,))
    native = [n for n in ep.graph.nodes if n.op == "call_function" and "adaptive" in str(n.target)]
    # torch.adaptive_max_pool1d always returns (values, indices): its native indices stay in the
    # program, unused (values come from poolport); ONNX export drops them as dead code
    assert [str(n.target) for n in native] == ["aten.adaptive_max_pool1d.default"]
    assert all(len(user.users) == 0 for n in native for user in n.users)
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(X), model(X), rtol=0, atol=1e-5)


def test_patch_around_strict_export_of_an_unmodified_model(model):
    with poolport.patch():
        ep = torch.export.export(model, (X,), strict=True)
    live = [str(n.target) for n in ep.graph.nodes
            if n.op == "call_function" and "adaptive" in str(n.target) and any(u.users for u in n.users)]
    assert not live, live
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(X), model(X), rtol=0, atol=1e-5)


def test_patch_forces_portable_path_even_in_eager(model, monkeypatch):
    # tools like torch2trt run eager code while converting: patch() must reach them too
    import poolport.functional.adaptive as mod

    calls = []
    real = mod.apply_plan
    monkeypatch.setattr(mod, "apply_plan", lambda x, plan: calls.append(plan) or real(x, plan))
    with torch.no_grad(), poolport.patch():
        y = model(X)
    assert len(calls) == 8
    with torch.no_grad():
        torch.testing.assert_close(y, model(X), rtol=0, atol=1e-6)


def test_intercepted_functions_cover_the_documented_entry_points():
    funcs = intercepted_functions()
    for f in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, torch.adaptive_avg_pool1d,
              torch.adaptive_max_pool1d, torch._C._nn.adaptive_avg_pool2d, torch._C._nn.adaptive_max_pool3d):
        assert f in funcs


def test_portable_model_deepcopies_and_state_dict_matches(model):
    portable = poolport.make_portable(model)
    again = copy.deepcopy(portable)
    assert again.state_dict().keys() == model.state_dict().keys()
    assert poolport.make_portable(portable) is not portable


def test_make_portable_with_example_inputs_verifies_sites(model):
    portable = poolport.make_portable(model, example_inputs=X)
    assert len(portable._poolport_sites) == 8


def test_make_portable_rejects_non_modules():
    with pytest.raises(poolport.PoolportError, match="torch.nn.Module"):
        poolport.make_portable(lambda x: x)


def test_structural_copy_for_export_leaves_the_original_alone(model):
    portable = poolport.make_portable(model, share_weights=True)
    assert portable.conv.weight is model.conv.weight  # shared, not copied
    assert type(model.pool) is nn.AdaptiveMaxPool2d and type(portable.pool) is poolport.nn.AdaptiveMaxPool2d
    assert not model._forward_pre_hooks and not model._forward_hooks
    portable.train()
    assert not model.training and not model.pool.training
    with torch.no_grad():
        torch.testing.assert_close(portable.eval()(X), model(X), rtol=0, atol=0)


def test_site_check_bound_follows_the_site_dtype():
    from poolport.plan import plan_pool
    from poolport.verify.in_pytorch import site_problems
    from poolport.verify.recorder import Site

    plan = plan_pool("avg", (9, 9), (7, 7))
    half = Site("a", "adaptive_avg_pool2d", (1, 1, 9, 9), (7, 7), plan, 1, 1e-3, 5e-4, dtype=torch.float16)
    single = Site("b", "adaptive_avg_pool2d", (1, 1, 9, 9), (7, 7), plan, 1, 1e-3, 5e-4, dtype=torch.float32)
    problems = site_problems([half, single])
    assert len(problems) == 1 and problems[0].startswith("b:") and "torch.float32" in problems[0]


@pytest.mark.parametrize("how", ["jit.trace", "torchscript exporter", "torch.export"])
def test_poolport_itself_warns_nothing_while_traced(how, tmp_path):
    # TracerWarnings from poolport's own code sat next to its exactness claims and hid users' warnings
    import logging
    import warnings

    from poolport.demo.models import build

    model, x = build("maxpool_style")
    portable = poolport.make_portable(model)
    run = {"jit.trace": lambda: torch.jit.trace(portable, (x,)),
           "torchscript exporter": lambda: torch.onnx.export(portable, (x,), str(tmp_path / "w.onnx"), dynamo=False),
           "torch.export": lambda: torch.export.export(portable, (x,))}[how]
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        logging.disable(logging.NOTSET)
    ours = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if "/poolport/" in w.filename.replace("\\", "/")]
    assert not ours, ours
