"""The torch-free planning layer: windows, the per-axis plan, the copied formula's verdict."""

import math
from fractions import Fraction

import pytest

from poolport.errors import PoolportError
from poolport.plan import adaptive_windows, copied_formula, plan_axis

GRID = [(n, o) for n in range(1, 65) for o in range(1, 65)]


def test_planning_layer_imports_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['numpy'] = None\n"
        "from poolport.plan import plan_pool; print(plan_pool('avg', (9, 9), (7, 7)).kind)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "passes"


def test_windows_match_the_definition():
    for n, o in GRID + [(1000, 999), (4097, 33)]:
        expected = [(math.floor(Fraction(i * n, o)), math.ceil(Fraction((i + 1) * n, o))) for i in range(o)]
        assert list(adaptive_windows(n, o)) == expected, (n, o)


def test_window_lengths_take_at_most_two_values():
    for n, o in GRID:
        lengths = {b - a for a, b in adaptive_windows(n, o)}
        assert len(lengths) <= 2, (n, o, lengths)


def test_runs_reproduce_the_windows_exactly():
    for n, o in GRID + [(1, 7), (3, 100), (257, 33), (1000, 999)]:
        plan = plan_axis(n, o)
        rebuilt = [w for run in plan.runs for w in run.windows()]
        assert rebuilt == list(adaptive_windows(n, o)), (n, o)
        for run in plan.runs:
            assert 0 <= run.start < run.stop <= n
            assert run.pool_stride >= 1
            # the pooling op over the slice yields exactly `count` cells (or 1 for a repeat)
            pooled = (run.stop - run.start - run.kernel) // run.pool_stride + 1
            assert pooled == (run.count if run.copies == 1 else 1)


def test_plan_kind_preference_order():
    assert plan_axis(7, 7).kind == "identity"
    assert plan_axis(7, 1).kind == "global"
    assert plan_axis(1, 1).kind == "identity"
    for n, o, k, s in [(8, 7, 2, 1), (5, 2, 3, 2), (13, 6, 3, 2), (224, 7, 32, 32), (12, 4, 3, 3)]:
        p = plan_axis(n, o)
        assert (p.kind, p.kernel, p.stride) == ("uniform", k, s), (n, o)
    assert plan_axis(9, 7).kind == "runs"
    assert plan_axis(128, 14).kind == "runs"
    assert plan_axis(3, 7).kind == "runs"  # output larger than input


def test_uniform_covers_far_more_than_divisible():
    # n in 1..128, o in 1..32: 507 pairs divisible, 912 with one window length and one step;
    # 31 of those are n == 1 with o > 1 (every window [0, 1), step 0): a repeat, not one pooling op.
    pairs = [(n, o) for n in range(1, 129) for o in range(1, 33)]
    assert sum(n % o == 0 for n, o in pairs) == 507
    single = [(n, o) for n, o in pairs if plan_axis(n, o).single_op]
    repeats = [(n, o) for n, o in pairs if len(plan_axis(n, o).runs) == 1 and plan_axis(n, o).runs[0].stride == 0]
    assert len(single) == 881
    assert repeats == [(1, o) for o in range(2, 33)]
    assert len(single) + len(repeats) == 912


def test_single_op_exactly_when_windows_are_uniform():
    for n, o in GRID:
        w = adaptive_windows(n, o)
        lengths = {b - a for a, b in w}
        steps = {w[i + 1][0] - w[i][0] for i in range(len(w) - 1)}
        uniform = len(lengths) == 1 and len(steps) <= 1 and 0 not in steps
        assert plan_axis(n, o).single_op == uniform, (n, o)


def test_runs_are_maximal():
    # no two neighbouring runs could be merged into one run
    for n, o in GRID:
        runs = plan_axis(n, o).runs
        for r1, r2 in zip(runs, runs[1:]):
            merged = r1.windows() + r2.windows()
            lengths = {b - a for a, b in merged}
            steps = {merged[i + 1][0] - merged[i][0] for i in range(len(merged) - 1)}
            assert not (len(lengths) == 1 and len(steps) == 1), (n, o, r1, r2)


@pytest.mark.parametrize(
    "n,o,exact",
    [(224, 7, True), (8, 7, True), (9, 7, False), (10, 7, False), (128, 14, False), (5, 2, True), (13, 6, True), (10, 4, False)],
)
def test_copied_formula_verdict(n, o, exact):
    verdict = copied_formula(n, o)
    assert verdict.exact == exact
    if not exact:
        true = adaptive_windows(n, o)
        assert verdict.differing
        assert all(verdict.windows()[i] != true[i] for i in verdict.differing)
        assert all(verdict.windows()[i] == true[i] for i in range(o) if i not in verdict.differing)


def test_copied_formula_exact_only_where_windows_agree():
    for n, o in GRID:
        v = copied_formula(n, o)
        assert v.exact == (v.defined and v.windows() == adaptive_windows(n, o))


def test_copied_formula_undefined_when_output_larger():
    v = copied_formula(3, 5)
    assert not v.defined and not v.exact and "undefined" in v.verdict()


@pytest.mark.parametrize("n,o", [(0, 3), (5, 0), (5, -1), (-2, 2)])
def test_bad_sizes_raise_poolport_error(n, o):
    with pytest.raises(PoolportError, match=str(n) if n <= 0 else str(o)):
        plan_axis(n, o)


def test_planning_is_cached():
    assert plan_axis(257, 33) is plan_axis(257, 33)
