"""The fractional max pooling plan (``poolport.plan.fractional``), torch-free: torch's window starts per
axis (its ``generate_intervals`` formula, written out here in exact rational arithmetic as the oracle, and
the float32 rounding that torch's kernel does), the grouping of planes with equal windows, the runs per
axis and the pieces that put the planes back in order. Against torch's own op: tests/test_fractional.py."""

import itertools
import random
from fractions import Fraction

import pytest

from poolport.errors import PoolportError
from poolport.plan.fractional import SAMPLE_AXES, fractional_plan, fractional_starts, start_runs


def _exact_starts(u: float, n: int, o: int, k: int) -> tuple[int, ...]:
    """torch's formula in exact arithmetic (what float64 gives away from rounding ties)."""
    if o == 1:
        return (n - k,)
    alpha = Fraction(n - k, o - 1)
    u = Fraction(u)
    return tuple(int((i + u) * alpha) - int(u * alpha) for i in range(o - 1)) + (n - k,)


@pytest.mark.parametrize("seed", range(4))
def test_starts_follow_torch_formula_and_fit(seed):
    rng = random.Random(seed)
    for _ in range(300):
        k = rng.randint(1, 5)
        n = rng.randint(k, 60)
        o = rng.randint(1, n - k + 1)
        u = rng.random()
        starts = fractional_starts(u, n, o, k, "float64")
        assert starts == _exact_starts(u, n, o, k)
        assert starts[0] == (0 if o > 1 else n - k) and starts[-1] == n - k
        assert all(b > a for a, b in zip(starts, starts[1:]))  # alpha >= 1: windows move on every step


def test_float32_rounding_is_torchs_not_float64():
    # found by search: torch's float32 kernel puts window 10 at 33, exact (and float64) arithmetic at 32
    u = 0.08333265781402588  # a float32 value
    f32 = fractional_starts(u, 38, 12, 2, "float32")
    f64 = fractional_starts(u, 38, 12, 2, "float64")
    assert f64 == _exact_starts(u, 38, 12, 2)
    assert (f32[10], f64[10]) == (33, 32)
    assert f32[:10] == f64[:10] and f32[11:] == f64[11:]


def test_start_runs_cover_the_windows():
    rng = random.Random(0)
    for _ in range(200):
        k = rng.randint(1, 4)
        n = rng.randint(k + 1, 50)
        o = rng.randint(1, n - k + 1)
        starts = fractional_starts(rng.random(), n, o, k, "float32")
        runs = start_runs(starts, k)
        windows = [w for r in runs for w in r.windows()]
        assert windows == [(s, s + k) for s in starts]
        assert all(0 < r.stride <= k or r.count == 1 for r in runs)  # LiteRT: stride > kernel loses +inf


def test_groups_share_their_common_passes():
    # two planes with equal H windows (sample 1) and different W windows (sample 0): the H pass (the most
    # reduction, first) is written once
    samples = ((0.1, 0.3), (0.6, 0.3))
    plan = fractional_plan((20, 20), (2, 2), (6, 12), samples, 2, "float64")
    assert plan.order == (0, 1) and len(plan.groups) == 2
    one = fractional_plan((20, 20), (2, 2), (6, 12), samples[:1], 1, "float64").op_counts()
    both = plan.op_counts()
    assert both["MaxPool"] < 2 * one["MaxPool"]


def test_plan_groups_planes_with_equal_windows_and_restores_order():
    rng = random.Random(3)
    channels, batch = 5, 3
    samples = tuple(tuple(rng.choice((0.1, 0.35, 0.8)) for _ in range(2)) for _ in range(batch * channels))
    plan = fractional_plan((13, 11), (3, 2), (5, 6), samples, channels, "float32")
    assert plan.batch == batch and plan.planes == batch * channels and plan.folded
    seen = sorted(p for g in plan.groups for p in g.planes)
    assert seen == list(range(batch * channels))  # every plane in exactly one group
    for g in plan.groups:
        for p in g.planes:  # the group's windows are its planes' windows: sample 0 drives W, sample 1 H
            assert g.starts == (fractional_starts(samples[p][1], 13, 5, 3, "float32"),
                                fractional_starts(samples[p][0], 11, 6, 2, "float32"))
    assert len({g.starts for g in plan.groups}) == len(plan.groups)
    order = [p for piece in plan.pieces for p in range(piece.first, piece.first + piece.count)]
    assert order == list(range(batch * channels))
    for piece in plan.pieces:  # each piece's planes belong to its group
        assert set(range(piece.first, piece.first + piece.count)) <= set(plan.groups[piece.group].planes)
    assert all(a.group != b.group for a, b in zip(plan.pieces, plan.pieces[1:]))  # maximal pieces
    assert "fractional max pool 13x11 -> 5x6" in str(plan)
    assert plan.op_counts()["MaxPool"] >= len(plan.groups)


def test_equal_samples_are_one_group_without_channel_slices():
    plan = fractional_plan((10, 10), (3, 3), (4, 4), ((0.5, 0.25),) * 6, 6, "float32")
    assert len(plan.groups) == 1 and len(plan.pieces) == 1
    assert plan.op_counts()["Concat"] <= 2  # one per runs axis, no Concat of channel pieces


def test_uniform_and_identity_axes():
    # 9 -> 4 with k 3: alpha 2, windows every 2 cells: one pooling op; k 1 onto every cell: identity
    plan = fractional_plan((9, 6), (3, 1), (4, 6), ((0.5, 0.5),), 1, "float64")
    group = plan.groups[0]
    kinds = {a: one.axes[a].kind for a, one in zip(plan.order, group.passes)}
    assert kinds == {0: "uniform", 1: "identity"}
    assert plan.op_counts() == {"MaxPool": 1}


@pytest.mark.parametrize("spatial, kernel, out, match", [
    ((10, 10), (3, 3), (9, 5), "output \\+ kernel - 1 <= input"),
    ((4, 4, 4), (2, 2, 2), (3, 2, 2), "output \\+ kernel - 1 < input"),  # torch's 3-D check is strict
    ((10, 10), (0, 3), (4, 4), "kernel_size must be positive"),
    ((10, 10), (3, 3), (0, 4), "empty axis"),
])
def test_torchs_argument_checks(spatial, kernel, out, match):
    d = len(spatial)
    with pytest.raises(PoolportError, match=match):
        fractional_plan(spatial, kernel, out, ((0.5,) * d,), 1, "float32")


def test_bad_samples_refused():
    with pytest.raises(PoolportError, match="samples per plane"):
        fractional_plan((10, 10), (3, 3), (4, 4), ((0.5, 0.5),) * 3, 2, "float32")
    with pytest.raises(PoolportError, match="finite"):
        fractional_plan((10, 10), (3, 3), (4, 4), ((float("nan"), 0.5),), 1, "float32")
    with pytest.raises(PoolportError, match="outside its 10 inputs"):  # float16 rounds 4003 to 4004: torch asserts
        fractional_plan((10, 10), (3, 3), (4, 4), ((0.5, 4000.0),), 1, "float16")
    with pytest.raises(PoolportError, match="arithmetic"):
        fractional_starts(0.5, 10, 4, 3, "float8")


def test_sample_axes_cover_every_axis():
    for d, axes in SAMPLE_AXES.items():
        assert sorted(axes) == list(range(d))


def test_half_precision_rounding_differs_and_stays_in_bounds():
    # float16 rounds every operation: windows differ from float32's for many samples, but fit the input
    diffs = 0
    for u, (n, o, k) in itertools.product((0.1, 0.3, 0.7, 0.9), ((37, 12, 3), (100, 40, 2))):
        h = fractional_starts(u, n, o, k, "float16")
        diffs += h != fractional_starts(u, n, o, k, "float32")
        assert h[-1] == n - k and min(h) >= 0
    assert diffs


def test_one_cell_windows_are_slices_not_pools():
    # OpenVINO and MNN return a finite value for a MaxPool window of one -inf cell (LiteRT too at stride > 1)
    plan = fractional_plan((10, 12), (1, 1), (7, 9), ((0.3, 0.6), (0.8, 0.1)), 2, "float32")
    assert plan.op_counts()["MaxPool"] == 0
    for group in plan.groups:
        for a, one in zip(plan.order, group.passes):
            assert all(r.stride == 1 for r in one.axes[a].runs)
