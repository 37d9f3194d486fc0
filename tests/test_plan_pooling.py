"""Composition of per-axis plans into passes, and the ONNX operators a plan is written with (counted by the
counting backend; tests/test_plan_truth.py holds them against exported graphs)."""

import json

import pytest

from poolport.backend.counting import count_ops
from poolport.errors import PoolportError
from poolport.plan import plan_pool


def test_all_uniform_axes_make_one_pooling_op():
    p = plan_pool("avg", (8, 5, 13), (7, 2, 6))
    assert p.kind == "single"
    assert len(p.passes) == 1
    assert p.passes[0].pool_params(p.axes, None) == ((2, 3, 3), (1, 2, 2))
    assert dict(count_ops(p)) == {"AveragePool": 1}


def test_uniform_and_global_mix_is_one_op():
    p = plan_pool("max", (12, 9), (4, 1))
    assert p.kind == "single"
    assert p.passes[0].pool_params(p.axes, None) == ((3, 9), (3, 9))
    assert dict(count_ops(p)) == {"MaxPool": 1}


def test_all_global_is_one_whole_plane_pool():
    # not ReduceMean/ReduceMax: ncnn via pnnx mishandles both (tests/test_portable_runtimes.py)
    assert dict(count_ops(plan_pool("avg", (9, 10), (1, 1)))) == {"AveragePool": 1}
    assert dict(count_ops(plan_pool("max", (9,), (1,)))) == {"MaxPool": 1}


def test_identity_emits_one_copy():
    p = plan_pool("avg", (6, 6), (6, 6))
    assert p.kind == "identity" and dict(count_ops(p)) == {"Identity": 1}


def test_runs_axes_get_their_own_pass_and_single_axes_fold_into_the_first():
    p = plan_pool("avg", (9, 8, 128), (7, 7, 14))
    assert p.kind == "passes"
    # 128 -> 14 shrinks most, so it goes first, carrying the uniform 8 -> 7 axis with it
    assert [q.runs_axis for q in p.passes] == [2, 0]
    assert p.passes[0].folded == (1,)
    assert p.passes[1].folded == ()
    first_run = p.passes[0].runs[0]
    assert p.passes[0].pool_params(p.axes, first_run) == ((1, 2, 10), (1, 1, 9))


def test_onnx_ops_counts_for_a_runs_plan():
    ops = count_ops(plan_pool("avg", (9, 9), (7, 7)))
    assert dict(ops) == {"Slice": 6, "AveragePool": 6, "Concat": 2}
    assert set(ops) <= {"Slice", "AveragePool", "MaxPool", "Concat"}


def test_plan_prints_and_serialises():
    p = plan_pool("max", (128, 128), (14, 14))
    text = str(p)
    assert "128x128 -> 14x14" in text and "slice [64:128)" in text
    d = json.loads(json.dumps(p.to_dict()))
    assert d["axes"][0]["runs"][1] == {"start": 64, "stop": 128, "kernel": 10, "stride": 9, "count": 7}
    assert dict(count_ops(p)) == {"Concat": 2, "MaxPool": 4, "Slice": 4}


@pytest.mark.parametrize(
    "args,match",
    [
        (("avg", (9, 9), (7,)), "1, 2 or 3"),
        (("sum", (9,), (7,)), "op must be"),
        (("avg", (9, 9, 9, 9), (7, 7, 7, 7)), "1, 2 or 3"),
        (("avg", (9, 0), (7, 7)), "empty"),
    ],
)
def test_bad_plans_raise(args, match):
    with pytest.raises(PoolportError, match=match):
        plan_pool(*args)
