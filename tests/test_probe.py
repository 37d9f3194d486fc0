"""``poolport probe`` and ``legalize --target auto``: the conformance cases against the ONNX reference
evaluator in each real runtime; every case, legalized for a runtime, is exact in that runtime or refused
loudly there (never wrong); auto applies only rewrites the probed runtimes compute right."""

import json

import numpy as np
import onnx
import pytest
from helpers import run_merged

import poolport
from poolport.cli.main import main
from poolport.legalizer import probe
from poolport.legalizer.rules import RULES, case_matches
from poolport.runtimes.registry import NAMES, available, run_batch
from poolport.testing import reference
from poolport.verify.compare import compare_arrays

# where legalize leaves a case the runtime refuses, loudly (docs/runtimes.md): onnx2tf refuses 3-D AveragePool
# without pads, and with the channels equal to the outputs' sizes its layout guess would make the 2-D form
# wrong, so it stays refused. (ncnn's dilated cases were here until their sub-lattice form, 2026-12-05.)
REFUSED_AFTER = {("litert", "avg-3d-ceil"),
                 ("ncnn", "lp-p3-1d-ceil"),  # p = 3 needs Pow, wrong on ncnn: the LpPool node is kept
                 # ncnn has no int64: pnnx leaves the Cast to ONNX's int64 indices unconverted
                 ("ncnn", "max-indices")}
# where legalize keeps the nodes (and fails closed without keep_unfixed, tests/test_legalize_indices.py): onnx2tf
# computes MaxPool's Indices wrongly and refuses MaxUnpool, and the forms are wrong there too (docs/runtimes.md)
KEPT_AFTER = {("litert", "max-indices"), ("litert", "max-unpool"), ("litert", "max-unpool-3d")}


def test_the_oracle_agrees_with_the_definition():
    # the probe's oracle (the ONNX reference evaluator, auto_pad written out) against PyTorch's own pooling
    # and poolport's numpy reference of TensorFlow's SAME, for the cases they express
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    for name, op, k, s, pad, ceil in [("avg-pads-exclude", "avg", 3, 2, 1, False), ("max-ceil", "max", 3, 2, 0, True),
                                      ("avg-ceil", "avg", 3, 2, 0, True)]:
        case = next(c for c in probe.CASES if c.name == name)
        x = rng.standard_normal(case.shape).astype(np.float32)
        (got,) = probe.reference(case, {"x": x})
        t = torch.from_numpy(x)
        want = (F.avg_pool2d(t, k, s, pad, ceil_mode=ceil, count_include_pad=False) if op == "avg"
                else F.max_pool2d(t, k, s, pad, ceil_mode=ceil)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    for name, op in [("avg-same-upper", "avg"), ("max-same-upper", "max")]:
        case = next(c for c in probe.CASES if c.name == name)
        x = rng.standard_normal(case.shape)
        (got,) = probe.reference(case, {"x": x.astype(np.float32)})
        want = reference.same_pool(x.astype(np.float32).astype(np.float64), (3, 3), (2, 2), op)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_every_case_with_a_rule_is_rewritten_exactly():
    # the rewrite of every case a rule matches equals the original under the evaluator and ONNX Runtime
    for case in probe.CASES:
        names = tuple(r.name for r in RULES if case_matches(r, case))
        if names:
            result = poolport.legalize(case.model(), rules=names)
            assert result.verified and result.rewritten, case.name


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", [r for r in NAMES if r != "onnxruntime"])
def test_every_case_legalized_for_a_runtime_is_exact_there_or_refused(runtime):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    rng = np.random.default_rng(3)
    cases = probe.CASES
    inputs = [{"x": rng.standard_normal(c.shape).astype(np.float32)} for c in cases]
    # keep_unfixed: a node the runtime computes wrongly is refused by legalize (test_legalize.py); kept, the
    # runtime refuses it loudly here
    results = [poolport.legalize(c.model(), runtime, keep_unfixed=True) for c in cases]
    # one merged model per opset (one onnx2tf conversion, not 46: same answers, measured), the expected
    # refusals, the kept nodes and the two-output index cases on their own
    alone = {i for i, c in enumerate(cases) if (runtime, c.name) in REFUSED_AFTER | KEPT_AFTER
             or isinstance(c, probe.IndicesCase)}
    answers = run_merged(runtime, [(r.model, f) for r, f in zip(results, inputs)], alone)
    for case, feeds, got, result in zip(cases, inputs, answers, results):
        want = probe.reference(case, feeds)
        if (runtime, case.name) in KEPT_AFTER:
            assert result.kept, f"{case.name}: expected legalize to keep it for {runtime}"
            continue
        if (runtime, case.name) in REFUSED_AFTER:
            assert isinstance(got, Exception), f"{case.name}: expected a refusal on {runtime}, got an answer"
            continue
        assert not isinstance(got, Exception), f"{case.name} refused on {runtime}: {got}"
        # MNN holds int64 tensors (ONNX's Indices) as int32: its harness widens them back (runtimes/isolated.py)
        dtypes = [{"float64": "float32"}.get(str(w.dtype), str(w.dtype)) for w in want]
        result = compare_arrays(want, got, rtol=1e-5, unit_dims=True, dtypes=dtypes)
        assert result.passed, f"{case.name} on {runtime}: {result.reason}"


@pytest.mark.runtime
def test_probe_and_auto_on_ncnn(tmp_path, capsys):
    if not available("ncnn"):
        pytest.skip("ncnn not installed (pip install 'poolport[runtimes]')")
    out = tmp_path / "probe.json"
    assert main(["probe", "--runtimes", "onnxruntime,ncnn", "--json", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert not [r for r in data["results"]["onnxruntime"] if r["verdict"] != "ok"]
    wrong = {r["case"] for r in data["results"]["ncnn"] if r["verdict"] != "ok"}
    assert {"avg-same-upper", "avg-ceil-window-in-padding", "avg-ceil-pads-include"} <= wrong
    assert {"auto-pad-same-upper", "dilated-pool-lattice"} <= set(data["rules"]["ncnn"])
    assert data["rules"]["onnxruntime"] == []
    # auto rewrites what ncnn gets wrong, and the result is exact in ncnn
    case = next(c for c in probe.CASES if c.name == "avg-same-upper")
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(case.model(), src)
    assert main(["legalize", str(src), "-o", str(dst), "--target", "auto", "--runtimes", "ncnn"]) == 0
    text = capsys.readouterr().out
    # `poolport probe` cached what it measured: auto reuses it instead of probing ncnn again
    assert "ncnn: cached at" in text and "using the probe cached at" in text and "probed ncnn" not in text
    assert "auto-pad-same-upper" in text
    assert main(["check", str(dst), "--runtimes", "ncnn", "--quiet"]) == 0
    assert main(["check", str(src), "--runtimes", "ncnn", "--quiet"]) == 1
    _export_onnx_target_auto_probes_the_runtimes_it_verifies_in(tmp_path)


def test_runtimes_option_needs_auto(tmp_path, capsys):
    src = tmp_path / "in.onnx"
    onnx.save(probe.CASES[0].model(), src)
    assert main(["legalize", str(src), "-o", str(tmp_path / "o.onnx"), "--target", "ncnn", "--runtimes", "ncnn"]) == 2
    assert "--runtimes goes with --target auto" in capsys.readouterr().err
    with pytest.raises(poolport.PoolportError, match="unknown rule"):
        poolport.legalize(probe.CASES[0].model(), rules=("no-such-rule",))


def _export_onnx_target_auto_probes_the_runtimes_it_verifies_in(tmp_path):
    # run by test_probe_and_auto_on_ncnn, whose probe of ncnn is cached by then (one ncnn probe, not two)
    import torch

    # TF 'SAME' average pooling whose plan pads asymmetrically with count_include_pad=0 (ncnn cannot load
    # that AveragePool): auto, probing ncnn, rewrites it and the export verifies in ncnn
    model = poolport.nn.AvgPool2dSame(2, 1).eval()
    x = torch.randn(1, 5, 9, 11)
    report = poolport.export_onnx(model, (x,), tmp_path / "m.onnx", target="auto", runtimes=("ncnn",))
    assert report.legalized and report.legalized[0].startswith("auto: rules") and "ncnn" in report.legalized[0]
    assert any(c.runtime == "ncnn" and c.passed for c in report.checks)


@pytest.mark.runtime
def test_litert_target_writes_maxpool_same_as_pads_where_channels_equal_the_sizes():
    # onnx2tf misplaces a Pad node where C == H == W (the Pad form was 2.8 off, measured): for LiteRT the
    # SAME_LOWER MaxPool keeps no Pad node, only its pads written out, and is exact there
    if not available("litert"):
        pytest.skip("litert not installed (make litert)")
    case = probe._case("max-same-lower-cube", "MaxPool", (1, 8, 8, 8), auto_pad="SAME_LOWER", kernel_shape=[3, 3],
                       strides=[2, 2])
    feeds = {"x": np.random.default_rng(0).standard_normal(case.shape).astype(np.float32)}
    fixed = poolport.legalize(case.model(), "litert").model
    assert [n.op_type for n in fixed.graph.node] == ["MaxPool"]
    (got,) = run_batch("litert", [(fixed, feeds)])
    assert not isinstance(got, Exception), got
    result = compare_arrays(probe.reference(case, feeds), got, rtol=1e-5, unit_dims=True, dtypes=["float32"])
    assert result.passed, result.reason


def test_auto_reuses_the_probe_cached_per_runtime_version(tmp_path, monkeypatch, capsys):
    # the probe runs for real (ONNX Runtime); only its calls are counted
    from poolport.legalizer import probe_cache
    from poolport.runtimes import registry

    cache = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    calls = []
    real = probe.run_probe

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(probe, "run_probe", counted)
    models = tmp_path / "models"
    models.mkdir()
    src = models / "in.onnx"
    onnx.save(next(c for c in probe.CASES if c.name == "avg-same-upper").model(), src)

    def auto(*extra):
        out = models / "out.onnx"
        assert main(["legalize", str(src), "-o", str(out), "--target", "auto", "--runtimes", "onnxruntime", "--force",
                     *extra]) == 0
        return capsys.readouterr().out

    text = auto()
    (path,) = sorted((cache / "poolport" / "probe").iterdir())
    assert len(calls) == 1 and f"cached at {path}" in text and "using the probe cached" not in text
    assert path.name.startswith(f"onnxruntime-{registry.version('onnxruntime')}-poolport-")
    assert sorted(p.name for p in models.iterdir()) == ["in.onnx", "out.onnx"]  # nothing beside the model
    text = auto()
    assert len(calls) == 1, "the second call probed again"
    assert f"using the probe cached at {path} (onnxruntime {registry.version('onnxruntime')}, " in text
    # what the cached probe says is what a fresh one says
    fresh = real(("onnxruntime",))
    from poolport.legalizer.run import legalize

    assert legalize(src, "auto", runtimes=("onnxruntime",)).probe.to_dict() == fresh.to_dict()
    assert len(calls) == 1
    auto("--reprobe")
    assert len(calls) == 2
    # a corrupt file is ignored and written again
    path.write_text("{not json")
    auto()
    assert len(calls) == 3 and json.loads(path.read_text())["runtime"] == "onnxruntime"
    auto()
    assert len(calls) == 3
    # another runtime version, or another poolport version, is another probe
    monkeypatch.setattr(registry, "version", lambda name: "99.0-test")
    text = auto()
    assert len(calls) == 4 and "onnxruntime-99.0-test-poolport-" in text
    monkeypatch.setattr(probe_cache, "_poolport_version", lambda: "0.0.0-test")
    auto()
    assert len(calls) == 5
    auto()
    assert len(calls) == 5
    assert len(list((cache / "poolport" / "probe").iterdir())) == 3


def test_reprobe_goes_with_auto(tmp_path, capsys):
    src = tmp_path / "in.onnx"
    onnx.save(probe.CASES[0].model(), src)
    assert main(["legalize", str(src), "-o", str(tmp_path / "o.onnx"), "--target", "ncnn", "--reprobe"]) == 2
    assert "--reprobe goes with --target auto" in capsys.readouterr().err


def test_a_rule_that_worsens_a_case_on_one_probed_runtime_is_withheld():
    # the probe's bookkeeping on recorded verdicts (the slow test below runs the real probe): a rule that
    # fixes a case on one runtime but turns a loud refusal into a wrong answer on another is left out of
    # auto's rules for the two, and named with that runtime; for the first alone it is chosen
    ok, wrong, refused = (lambda c, v: probe.CaseResult(c, v)), "WRONG", "refused"
    report = probe.ProbeReport(results={"mnn": [ok("max-3d-ceil", wrong), ok("avg-3d-ceil", "ok")],
                                        "litert": [ok("max-3d-ceil", "ok"), ok("avg-3d-ceil", refused)]},
                               fixes={"mnn": {"max-3d-ceil": (("pool-3d-as-2d",), ok("max-3d-ceil", "ok"))},
                                      "litert": {"avg-3d-ceil": (("pool-3d-as-2d",), ok("avg-3d-ceil", wrong))}})
    assert "pool-3d-as-2d" in [r.name for r in report.chosen_rules(("mnn",))]
    assert "pool-3d-as-2d" not in [r.name for r in report.chosen_rules()]
    assert set(report.withheld()["pool-3d-as-2d"]) == {"litert"}


@pytest.mark.runtime
@pytest.mark.slow  # a LiteRT probe (every case converted by onnx2tf): minutes
def test_auto_keeps_a_node_whose_rule_the_probe_withholds(tmp_path):
    # probing MNN and LiteRT: pool-3d-as-2d fixes MNN's 3-D cases but turns LiteRT's loud refusal of avg-3d-ceil
    # into a wrong answer (its 2-D form's tensors have all their sizes equal), so auto leaves it out; a 3-D
    # node only it matches is then kept and legalize fails closed naming LiteRT. (Until 2026-12-05 this was
    # dilated-pool on ncnn and MNN; the sub-lattice form is exact on both.)
    if not (available("mnn") and available("litert")):
        pytest.skip("MNN and LiteRT not installed (pip install 'poolport[runtimes]'; make litert)")
    from poolport.legalizer.run import KeptNodesError

    case = next(c for c in probe.CASES if c.name == "max-3d-ceil")
    with pytest.raises(KeptNodesError, match="wrong on litert") as e:
        poolport.legalize(case.model(), "auto", runtimes=("mnn", "litert"))
    report = e.value.result.probe
    assert "pool-3d-as-2d" not in e.value.result.rules and "litert" in report.withheld()["pool-3d-as-2d"]
    assert [k.rules for k in e.value.result.kept] == [("pool-3d-as-2d",)]


@pytest.mark.runtime
def test_a_3d_case_a_2d_rule_fixes_does_not_credit_the_split():
    # OpenVINO divides the ceil_mode overhang of count_include_pad=1 by the whole kernel at 3-D as at 2-D:
    # avg-ceil-include-pad's explicit form fixes avg-3d-ceil-pads-include without splitting the 3-D pool,
    # so auto for OpenVINO applies that rule and never pool-3d-as-2d / avg-3d-as-2d (measured right there)
    if not available("openvino"):
        pytest.skip("openvino not installed (pip install 'poolport[runtimes]')")
    report = probe.run_probe(("openvino",))
    rules, after = report.fixes["openvino"]["avg-3d-ceil-pads-include"]
    assert rules == ("avg-ceil-include-pad",) and after.verdict == "ok"
    # (and the LpPool rules: their form of every LpPool case is exact there, lp-p3-1d-ceil's fixes it; and the
    # index rules: OpenVINO refuses MaxUnpool, the pair's rewrite by both is exact there)
    assert {r.name for r in report.chosen_rules()} == {"avg-ceil-include-pad", "ceil-window-in-padding", "lppool",
                                                       "lppool-mnn", "lppool-ceil", "max-indices", "max-unpool"}
    assert not report.unfixed()


def test_merged_models_give_each_case_its_own_answer():
    # the runtime tests run the cases merged into one model (helpers.run_merged): in ONNX Runtime the merged
    # answers are bit-identical to the separate ones, and an expected refusal runs alone
    rng = np.random.default_rng(3)
    items = [(c.model(), {"x": rng.standard_normal(c.shape).astype(np.float32)}) for c in probe.CASES]
    separate = run_batch("onnxruntime", items)
    merged = run_merged("onnxruntime", items, alone={0})
    for case, want, got in zip(probe.CASES, separate, merged):
        assert len(want) == len(got) and all(np.array_equal(w, g) for w, g in zip(want, got)), case.name
