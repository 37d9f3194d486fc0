"""The portable path (forced, even in eager mode) equals torch's native op and the numpy reference."""

import pytest
import torch
from helpers import assert_matches_oracles
from hypothesis import given, settings
from hypothesis import strategies as st

import poolport
import poolport.functional as PF
from poolport.functional.adaptive import adaptive_pool

FUNCS = {
    ("avg", 1): PF.adaptive_avg_pool1d,
    ("avg", 2): PF.adaptive_avg_pool2d,
    ("avg", 3): PF.adaptive_avg_pool3d,
    ("max", 1): PF.adaptive_max_pool1d,
    ("max", 2): PF.adaptive_max_pool2d,
    ("max", 3): PF.adaptive_max_pool3d,
}


@pytest.mark.parametrize("op", ["avg", "max"])
def test_1d_every_size_pair_up_to_64(op):
    g = torch.Generator().manual_seed(0)
    with poolport.always_portable():
        for n in range(1, 65):
            x = torch.randn(2, 3, n, generator=g)
            for o in range(1, 65):
                assert_matches_oracles(x, FUNCS[op, 1](x, o), (o,), op)


def test_always_portable_really_takes_the_portable_path(monkeypatch):
    calls = []
    import poolport.functional.adaptive as mod

    real = mod.apply_plan
    monkeypatch.setattr(mod, "apply_plan", lambda x, plan: calls.append(plan) or real(x, plan))
    x = torch.randn(1, 2, 9, 9)
    PF.adaptive_avg_pool2d(x, 7)
    assert calls == []  # plain eager: the native op
    with poolport.always_portable():
        PF.adaptive_avg_pool2d(x, 7)
    assert len(calls) == 1 and calls[0].kind == "passes"


def _axis_size():
    # mixes uniform (divisible or not), non-uniform, global, identity and output > input
    return st.tuples(st.integers(1, 40), st.integers(1, 40))


@settings(max_examples=400)
@given(st.lists(_axis_size(), min_size=2, max_size=2), st.sampled_from(["avg", "max"]), st.booleans())
def test_2d_random_sizes(axes, op, use_none):
    in_size = tuple(n for n, _ in axes)
    out = tuple(o for _, o in axes)
    if use_none:
        out = (None, out[1])
    x = torch.randn(2, 3, *in_size)
    with poolport.always_portable():
        y = FUNCS[op, 2](x, out)
    assert_matches_oracles(x, y, out, op)


@settings(max_examples=150)
@given(st.lists(_axis_size(), min_size=3, max_size=3), st.sampled_from(["avg", "max"]), st.integers(0, 3))
def test_3d_random_sizes(axes, op, none_at):
    in_size = tuple(n for n, _ in axes)
    out = tuple(None if i == none_at else o for i, (_, o) in enumerate(axes))
    x = torch.randn(1, 2, *in_size)
    with poolport.always_portable():
        y = FUNCS[op, 3](x, out)
    assert_matches_oracles(x, y, out, op)


@pytest.mark.parametrize(
    "in_size,out",
    [((128, 128), 14), ((9, 9), 7), ((10, 10), 7), ((257, 257), 33), ((60, 60), 6), ((60, 60), (1, 2)),
     ((7, 11), (3, 6)), ((3, 4), (7, 9)), ((1, 1), (5, 3)), ((31, 17), (1, 1))],
)
@pytest.mark.parametrize("op", ["avg", "max"])
def test_2d_named_cases(in_size, out, op):
    x = torch.randn(2, 4, *in_size)
    with poolport.always_portable():
        y = FUNCS[op, 2](x, out)
    assert_matches_oracles(x, y, (out, out) if isinstance(out, int) else out, op)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_dtypes(dtype, rtol, d, op):
    # half types: one rounding of the result, as the native op (bound: one ulp, relative to the scale)
    x = torch.randn(2, 3, *([9] * d)).to(dtype)
    out = (7, 4, None)[:d]
    with poolport.always_portable():
        y = FUNCS[op, d](x, out)
    assert y.dtype == dtype
    assert_matches_oracles(x, y, out, op, rtol=rtol)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_unbatched_input(d, op):
    x = torch.randn(3, *([10] * d))
    out = (7, 3, 4)[:d]
    with poolport.always_portable():
        y = FUNCS[op, d](x, out)
    assert y.shape == (3, *out)
    assert_matches_oracles(x.unsqueeze(0), y.unsqueeze(0), out, op)


@pytest.mark.parametrize("d,fmt", [(2, torch.channels_last), (3, torch.channels_last_3d)])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_channels_last_keeps_layout_and_values(d, fmt, op):
    x = torch.randn(2, 8, *([9] * d)).contiguous(memory_format=fmt)
    with poolport.always_portable():
        y = FUNCS[op, d](x, 7)
    assert y.is_contiguous(memory_format=fmt)
    assert_matches_oracles(x, y, (7,) * d, op)


def test_zero_batch_is_allowed_like_torch():
    x = torch.randn(0, 3, 9, 9)
    with poolport.always_portable():
        assert PF.adaptive_avg_pool2d(x, 7).shape == (0, 3, 7, 7)


@pytest.mark.parametrize("op", ["avg", "max"])
def test_eager_default_equals_native(op):
    x = torch.randn(2, 3, 13, 9)
    assert_matches_oracles(x, FUNCS[op, 2](x, (6, 7)), (6, 7), op)


def test_nn_modules_are_drop_in():
    for cls, torch_cls, args in [
        (poolport.nn.AdaptiveAvgPool2d, torch.nn.AdaptiveAvgPool2d, ((7, None),)),
        (poolport.nn.AdaptiveMaxPool3d, torch.nn.AdaptiveMaxPool3d, (3,)),
        (poolport.nn.AdaptiveAvgPool1d, torch.nn.AdaptiveAvgPool1d, (5,)),
    ]:
        m = cls(*args)
        assert isinstance(m, torch_cls)
        assert repr(m) == repr(torch_cls(*args))
    x = torch.randn(2, 3, 10, 10)
    with poolport.always_portable():
        y = poolport.nn.AdaptiveMaxPool2d((7, 3))(x)
    assert_matches_oracles(x, y, (7, 3), "max")


def test_portable_flag_on_adaptive_pool_overrides_context():
    x = torch.randn(1, 1, 9)
    assert torch.equal(adaptive_pool(x, 7, "max", 1, portable=True), torch.nn.functional.adaptive_max_pool1d(x, 7))
