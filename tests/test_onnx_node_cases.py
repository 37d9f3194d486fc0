"""onnx's own AveragePool/MaxPool node tests (``onnx.backend.test.case.node``), legalized for each runtime
(``legalize --target R``) and run in that runtime against the outputs the ONNX test suite expects: exact
wherever the runtime loads the graph. Where it refuses, the reason is recorded, never a wrong answer.
Some expected outputs are written to 4 decimals in the ONNX suite: compared with the suite's own tolerance
(its TestCase rtol/atol, as ONNX's backend runner does), and against ONNX Runtime on the original at 1e-6."""

import warnings

import numpy as np
import onnx
import pytest
from helpers import run_merged

import poolport
from poolport.runtimes.registry import NAMES, available, run_batch


def node_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    picked = {c.name: c for c in cases if c.name.startswith(("test_averagepool", "test_maxpool"))}
    return [picked[n] for n in sorted(picked)]


CASES = node_cases()
LITERT_REFUSES = {"test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True",
                  "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True"}


def _ir8(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = min(m.ir_version, 9 if max(o.version for o in m.opset_import) > 17 else 8)
    return m


def test_every_node_case_is_collected():
    assert len(CASES) >= 39
    assert {"test_averagepool_2d_ceil_last_window_starts_on_pad", "test_maxpool_2d_same_lower",
            "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True"} <= {c.name for c in CASES}


def _close(case, want, got):
    assert len(got) == len(want), case.name
    for w, g in zip(want, got):
        g = np.asarray(g)
        assert g.shape == w.shape, (case.name, g.shape, w.shape)
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=case.rtol, atol=case.atol,
                                   err_msg=case.name)


@pytest.mark.parametrize("case", CASES, ids=[c.name[5:] for c in CASES])
def test_legalized_for_all_equals_the_expected_outputs(case):
    # every rule at once, judged by ONNX Runtime against the ONNX suite's own expected outputs (nodes no form
    # is right for on every runtime are kept: test_kept_node_cases_fail_closed)
    result = poolport.legalize(_ir8(case.model), "all", verify=False, keep_unfixed=True)
    from poolport.runtimes.onnxruntime_rt import run_onnxruntime

    for inputs, outputs in case.data_sets:
        feeds = {i.name: a for i, a in zip(case.model.graph.input, inputs)}
        got = run_onnxruntime(result.model, feeds)[: len(outputs)]
        _close(case, outputs, got)
        original = run_onnxruntime(_ir8(case.model), feeds)[: len(outputs)]
        for o, g in zip(original, got):
            np.testing.assert_allclose(g, o, rtol=1e-6, atol=1e-6, err_msg=case.name)


# what legalize leaves as it was for a runtime that computes it wrongly, and why (docs/runtimes.md): legalize
# fails closed on these (KeptNodesError); with keep_unfixed the runtime computes them wrongly, as the original.
# The test fails if one of them starts passing, so that this list is kept true
STILL_WRONG = {
    # MaxPool's Indices output with storage_order 1: MNN computes the indices wrongly, and rule max-indices has no
    # column-major form, so it keeps the node (storage_order 0 gets plan.indices' form, exact in MNN)
    ("mnn", "test_maxpool_with_argmax_2d_precomputed_strides"),
    # onnx2tf ignores 3-D AveragePool dilations (wrong shape) and its layout guess breaks the 2-D form where
    # every size is equal (C = 1, D = H = W)
    ("litert", "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False"),
    ("litert", "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False"),
    ("litert", "test_averagepool_3d_dilations_small"),
}


@pytest.mark.parametrize("runtime", [r for r in NAMES if r != "onnxruntime"])
def test_kept_node_cases_fail_closed(runtime):
    # the node cases a rule matches and that the runtime computes wrongly after legalize are refused by
    # legalize itself
    from poolport.legalizer.run import KeptNodesError

    refused = set()
    for case in CASES:
        try:
            poolport.legalize(_ir8(case.model), runtime, verify=False)
        except KeptNodesError:
            refused.add(case.name)
    assert {name for rt, name in STILL_WRONG if rt == runtime} <= refused
    # every use of MaxPool's Indices output is kept for LiteRT (rule max-indices: its form is wrong there), not
    # only the cases measured wrong above; for MNN and ncnn only storage_order 1 (..._strides) is kept
    argmax = {case.name for case in CASES if "argmax" in case.name}
    column_major = {"test_maxpool_with_argmax_2d_precomputed_strides"}
    kept = {"litert": argmax, "mnn": column_major, "ncnn": column_major}.get(runtime, set())
    assert argmax and argmax & refused == kept


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", [r for r in NAMES if r != "onnxruntime"])
def test_node_cases_legalized_for_a_runtime_are_exact_there(runtime):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    items, expected = [], []
    for case in CASES:
        model = poolport.legalize(_ir8(case.model), runtime, verify=False, keep_unfixed=True).model
        inputs, outputs = case.data_sets[0]
        items.append((model, {i.name: a for i, a in zip(case.model.graph.input, inputs)}))
        expected.append(outputs)
    # LiteRT converts each model in seconds: the cases run merged into one model (helpers.run_merged), but for
    # those with two outputs (the harness may match their outputs by position, which shuffles a merged
    # model's) and those it refuses (measured), each on its own
    alone = {i for i, c in enumerate(CASES) if len(c.model.graph.output) > 1 or c.name in LITERT_REFUSES}
    answers = run_merged(runtime, items, alone) if runtime == "litert" else run_batch(runtime, items)
    wrong, refused = [], []
    for case, want, got in zip(CASES, expected, answers):
        if isinstance(got, Exception):
            refused.append(case.name)
            continue
        try:
            _close(case, want, list(got)[: len(want)])
        except AssertionError as e:
            wrong.append(f"{case.name}: {str(e).strip().splitlines()[0][:200]}")
    known = {name for rt, name in STILL_WRONG if rt == runtime}
    assert not [w for w in wrong if w.split(":")[0] not in known], f"{runtime} computes these wrongly: {wrong}"
    fixed = known - {w.split(":")[0] for w in wrong}
    assert not fixed, f"{runtime} now computes {fixed} right: update STILL_WRONG and docs/runtimes.md"
    assert len(refused) < len(CASES), f"{runtime} loaded none of the node tests"
