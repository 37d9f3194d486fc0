"""Each stage of ``export_onnx`` on its own (``poolport.export.onnx_export``), on a real small model,
against an independent oracle: torch's native op in plain eager mode, ONNX Runtime running what the
stage wrote, or onnx's own tables and checker."""

import collections
import dataclasses
import inspect
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import poolport
from poolport import PoolportError
from poolport.errors import VerificationError
from poolport.export import onnx_export as stages
from poolport.onnxfile.staging import staging_folder


def options(**given) -> stages.ExportOptions:
    """``export_onnx``'s defaults (read from its signature, the one place they are written), overridden by
    ``given``."""
    params = inspect.signature(poolport.export_onnx).parameters.values()
    defaults = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}
    return stages.ExportOptions(**{**defaults, **given})


class Head(nn.Module):
    """A convolution, then adaptive pooling with uneven, overlapping windows (10 -> 3 and 10 -> (2, 3))."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.avg = nn.AdaptiveAvgPool2d(3)
        self.max = nn.AdaptiveMaxPool2d((2, 3))

    def forward(self, x):
        y = self.conv(x)
        return torch.cat([self.avg(y).flatten(1), self.max(y).flatten(1)], 1)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Head().eval()


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(1, 3, 10, 10)


def eager(model, x) -> np.ndarray:
    """The model in plain eager mode: torch's native pooling ops (the oracle)."""
    with torch.no_grad():
        return model(x).numpy()


def in_ort(path, x) -> np.ndarray:
    """The ONNX model at ``path`` (by path: its weights may be in a data file beside it) in ONNX Runtime."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


def job_for(model, x, path, **given) -> stages.ExportJob:
    return stages.validate_inputs(model, x, path, options(**given))


def staged_job(model, x, folder, path, **given) -> stages.ExportJob:
    """A job through export_to_staging (and check_staged), staged in ``folder``."""
    job = job_for(model, x, path, **given)
    stages.make_portable_and_record(job)
    stages.export_to_staging(job, folder)
    return job


def test_the_options_are_export_onnx_keyword_arguments():
    params = inspect.signature(poolport.export_onnx).parameters.values()
    keywords = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    assert [f.name for f in dataclasses.fields(stages.ExportOptions)] == keywords


# --- validate_inputs ---

def test_validate_inputs_starts_the_report_and_writes_nothing(model, x, tmp_path):
    job = job_for(model, x, tmp_path / "m.onnx", name="head", runtimes=["openvino"])
    assert job.args == (x,) and job.args[0] is x and job.path == tmp_path / "m.onnx"
    assert job.opset == 18 and job.rtol == 1e-4 and job.axes == [] and job.runtimes == ("openvino",)
    r = job.report
    assert (r.model, r.exporter, r.opset, r.output, r.tolerance) == ("head", "dynamo", 18, None, 1e-4)
    assert r.input_shapes == [[1, 3, 10, 10]] and r.input_dtypes == ["float32"]
    assert r.versions["torch"] == torch.__version__.split("+")[0] and r.versions["onnx"] == onnx.__version__
    assert r.versions["onnxruntime"] == ort.__version__
    assert list(tmp_path.iterdir()) == []
    assert job_for(model, x.double(), tmp_path / "m.onnx", exporter="torchscript").opset == 17


def test_validate_inputs_reads_the_dynamic_axes(model, x, tmp_path):
    job = job_for(model, x, tmp_path / "m.onnx", dynamic_shapes=({2: "h", 3: "w"},), dynamic_batch=True)
    assert sorted((a.input, a.axis, a.name, a.spatial) for a in job.axes) == [
        (0, 0, "batch", False), (0, 2, "h", True), (0, 3, "w", True)]


@pytest.mark.parametrize("given,match", [
    ({"exporter": "tflite"}, "exporter must be one of"),
    ({"random_checks": True}, "random_checks must be a whole number"),
    ({"opset": 6}, r"7 or newer\), got 6; leave it out for the exporter's default \(18\)"),
    ({"report": "SAME"}, "the report and the model would both be"),
])
def test_validate_inputs_refuses_a_bad_request(model, x, tmp_path, given, match):
    if given.get("report") == "SAME":
        given = {"report": tmp_path / "m.onnx"}
    with pytest.raises(PoolportError, match=match):
        job_for(model, x, tmp_path / "m.onnx", **given)
    assert list(tmp_path.iterdir()) == []


def test_validate_inputs_refuses_a_destination_it_would_overwrite(model, x, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"keep")
    with pytest.raises(PoolportError, match="already exists; pass overwrite=True"):
        job_for(model, x, tmp_path / "m.onnx")
    assert job_for(model, x, tmp_path / "m.onnx", overwrite=True).path == tmp_path / "m.onnx"
    assert (tmp_path / "m.onnx").read_bytes() == b"keep"


# --- make_portable_and_record ---

def test_make_portable_and_record_checks_every_site_against_torch(model, x, tmp_path):
    job = job_for(model, x, tmp_path / "m.onnx")
    stages.make_portable_and_record(job)
    assert not job.scripted and job.portable is not model
    assert job.portable.conv.weight.data_ptr() == model.conv.weight.data_ptr()  # weights shared, not copied
    # the recorded run passes the native result on: the output is torch's own
    np.testing.assert_array_equal(job.reference.numpy(), eager(model, x))
    assert [(s.op, s.input_shape, s.output_size) for s in job.report.sites] == [
        ("adaptive_avg_pool2d", (1, 4, 10, 10), (3, 3)), ("adaptive_max_pool2d", (1, 4, 10, 10), (2, 3))]
    assert all(s.measured and s.calls == 1 and s.max_abs_error <= 1e-6 for s in job.report.sites)
    with torch.no_grad(), poolport.always_portable():  # the copy computes torch's result on its portable path
        np.testing.assert_allclose(job.portable(x).numpy(), eager(model, x), rtol=1e-6, atol=1e-6)
    assert job.report.verify_seconds > 0
    assert list(tmp_path.iterdir()) == []


def test_make_portable_and_record_refuses_a_site_that_differs_from_torch(model, x, tmp_path, monkeypatch):
    from poolport.functional import adaptive

    plan_ops = adaptive.apply_plan
    monkeypatch.setattr(adaptive, "apply_plan", lambda x, plan: plan_ops(x, plan) + 0.5)  # a broken portable path
    job = job_for(model, x, tmp_path / "m.onnx")
    with pytest.raises(VerificationError, match=r"^pooling sites failed verification:\n  .*adaptive_avg_pool2d"):
        stages.make_portable_and_record(job)
    assert all(s.max_abs_error == pytest.approx(0.5) for s in job.report.sites)


def test_make_portable_and_record_takes_a_scripted_model_as_it_is(model, x, tmp_path):
    scripted = torch.jit.script(model)
    job = job_for(scripted, x, tmp_path / "m.onnx", exporter="torchscript")
    stages.make_portable_and_record(job)
    assert job.scripted and job.report.sites == [] and job.reference is None
    with torch.no_grad():
        np.testing.assert_array_equal(job.portable(x).numpy(), eager(model, x))
    with pytest.raises(PoolportError, match="exports with the torchscript exporter only"):
        stages.make_portable_and_record(job_for(scripted, x, tmp_path / "m.onnx"))


# --- export_to_staging ---

@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_export_to_staging_writes_a_graph_that_computes_the_model(model, x, tmp_path, exporter):
    path = tmp_path / "m.onnx"
    with staging_folder(path) as folder:
        job = staged_job(model, x, folder, path, exporter=exporter)
        assert job.staged.path == folder / "m.onnx" and not path.exists()
        np.testing.assert_allclose(in_ort(job.staged.path, x), eager(model, x), rtol=1e-5, atol=1e-5)
        assert job.staged.self_contained == (exporter == "torchscript")  # dynamo: weights in m.onnx.data
        assert job.report.export_seconds > 0 and job.report.dynamic_axes == []
    assert list(tmp_path.iterdir()) == []  # the staging folder is gone, nothing published


def test_export_to_staging_lists_a_scripted_models_sites_as_exported(model, x, tmp_path):
    path = tmp_path / "m.onnx"
    with staging_folder(path) as folder:
        job = staged_job(torch.jit.script(model), x, folder, path, exporter="torchscript")
        assert [(s.where, s.input_shape, s.output_size, s.measured) for s in job.report.sites] == [
            ("adaptive_avg_pool2d #1", (1, 4, 10, 10), (3, 3), False),
            ("adaptive_max_pool2d #2", (1, 4, 10, 10), (2, 3), False)]
        np.testing.assert_allclose(in_ort(job.staged.path, x), eager(model, x), rtol=1e-5, atol=1e-5)


def test_export_to_staging_names_the_dynamic_axes(model, x, tmp_path):
    path = tmp_path / "m.onnx"
    with staging_folder(path) as folder:
        job = staged_job(model, x, folder, path, exporter="torchscript", dynamic_shapes=({2: "h", 3: "w"},))
        assert job.report.dynamic_axes == ["input 0 axis 2: h in [1, 65536]", "input 0 axis 3: w in [1, 65536]"]
        other = torch.randn(1, 3, 13, 17)  # another size: the graph is size-generic
        np.testing.assert_allclose(in_ort(job.staged.path, other), eager(model, other), rtol=1e-5, atol=1e-5)


# --- legalize_staged ---

def test_legalize_staged_rewrites_what_the_target_computes_wrongly(tmp_path):
    model = nn.Sequential(nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=True),
                          nn.AdaptiveAvgPool2d(3)).eval()
    x = torch.randn(1, 2, 8, 8)
    path = tmp_path / "m.onnx"
    with staging_folder(path) as folder:
        job = staged_job(model, x, folder, path, exporter="torchscript", target="openvino")
        before = job.staged
        stages.legalize_staged(job, folder)
        assert job.staged is not before and job.staged.path == folder / "m.onnx"
        assert any("avg-ceil-include-pad" in c for c in job.report.legalized)
        pools = [n for n in onnx.load(str(job.staged.path)).graph.node if n.op_type == "AveragePool"]
        assert all(a.i == 0 for n in pools for a in n.attribute if a.name == "ceil_mode")
        np.testing.assert_allclose(in_ort(job.staged.path, x), eager(model, x), rtol=1e-5, atol=1e-5)


def test_legalize_staged_without_a_target_does_nothing(model, x, tmp_path):
    path = tmp_path / "m.onnx"
    with staging_folder(path) as folder:
        job = staged_job(model, x, folder, path, exporter="torchscript")
        before, data = job.staged, job.staged.path.read_bytes()
        stages.legalize_staged(job, folder)
        assert job.staged is before and job.staged.path.read_bytes() == data and job.report.legalized == []


# --- check_staged ---

def test_check_staged_takes_the_lowest_ir_version_and_counts_the_operators(model, x, tmp_path):
    path = tmp_path / "m.onnx"
    with staging_folder(path) as folder:
        job = staged_job(model, x, folder, path, exporter="torchscript")
        stages.check_staged(job)
        lowest = min(ir for _release, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE if ai_onnx >= 17)
        on_disk = onnx.load(str(job.staged.path))
        onnx.checker.check_model(on_disk)
        assert job.report.ir_version == on_disk.ir_version == lowest and job.report.opset == 17
        assert job.report.onnx_ops == dict(collections.Counter(n.op_type for n in on_disk.graph.node))
        np.testing.assert_allclose(in_ort(job.staged.path, x), eager(model, x), rtol=1e-5, atol=1e-5)


def test_check_staged_refuses_another_opset_than_asked(model, x, tmp_path):
    path = tmp_path / "m.onnx"
    with staging_folder(path) as folder:
        job = staged_job(model, x, folder, path, exporter="torchscript", opset=17)
        stages.check_staged(job)  # what was asked is what was written
        job.options = dataclasses.replace(job.options, opset=16)  # as if 16 had been asked for
        with pytest.raises(PoolportError, match=r"^opset 16 was asked for, but the torchscript exporter wrote "
                                                r"opset 17; ask for 17 or newer\.$"):
            stages.check_staged(job)


# --- verify_staged ---

def test_verify_staged_measures_the_model_in_onnx_runtime(model, x, tmp_path):
    path = tmp_path / "m.onnx"
    with staging_folder(path) as folder:
        job = staged_job(model, x, folder, path, exporter="torchscript", random_checks=2)
        stages.check_staged(job)
        stages.verify_staged(job)
        checks = job.report.checks
        assert [(c.inputs, c.runtime, c.passed) for c in checks] == [
            ("example inputs", "onnxruntime", True), ("random inputs #1", "onnxruntime", True),
            ("random inputs #2", "onnxruntime", True)]
        own = np.abs(in_ort(job.staged.path, x) - eager(model, x)).max()  # measured here, independently
        assert checks[0].max_abs_error == pytest.approx(own, abs=1e-7) and own <= 1e-5
        assert job.report.sizes_verified == [] and not path.exists()


def test_verify_staged_refuses_a_staged_model_that_differs_from_torch(model, x, tmp_path):
    path = tmp_path / "m.onnx"
    with staging_folder(path) as folder:
        job = staged_job(model, x, folder, path, exporter="torchscript", random_checks=0)
        stages.check_staged(job)
        bias = next(t for t in job.staged.proto.graph.initializer if t.name.endswith("conv.bias"))
        values = onnx.numpy_helper.to_array(bias) + 1  # the staged graph no longer computes the model
        bias.CopyFrom(onnx.numpy_helper.from_array(values, bias.name))
        job.staged.save_graph()
        assert np.abs(in_ort(job.staged.path, x) - eager(model, x)).max() > 0.5
        with pytest.raises(VerificationError, match=rf"^verification failed, nothing written to {path}: "
                                                    r"onnxruntime differs from PyTorch beyond 0.0001 x"):
            stages.verify_staged(job)
        assert job.report.checks[0].max_abs_error > 0.5 and not job.report.checks[0].passed
        assert job.report.total_seconds > 0 and not path.exists()


def test_verify_staged_with_verify_false_does_nothing(model, x, tmp_path):
    path = tmp_path / "m.onnx"
    with staging_folder(path) as folder:
        job = staged_job(model, x, folder, path, exporter="torchscript", verify=False)
        stages.verify_staged(job)
        assert job.report.checks == [] and job.report.status == "unverified"


# --- publish_staged ---

@pytest.mark.parametrize("exporter,external", [("torchscript", None), ("dynamo", None), ("dynamo", True)])
def test_publish_staged_moves_the_model_into_place(model, x, tmp_path, exporter, external):
    path = tmp_path / "m.onnx"
    with staging_folder(path) as folder:
        job = staged_job(model, x, folder, path, exporter=exporter, external_data=external)
        stages.check_staged(job)
        stages.publish_staged(job)
    data = tmp_path / "m.onnx.data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"] + (["m.onnx.data"] if external else [])
    assert job.report.external_data == (str(data) if external else None)
    assert onnx.load(str(path), load_external_data=False).ir_version == job.report.ir_version
    np.testing.assert_allclose(in_ort(path, x), eager(model, x), rtol=1e-5, atol=1e-5)


# --- finish_report ---

def test_finish_report_writes_what_was_done(model, x, tmp_path):
    job = job_for(model, x, tmp_path / "m.onnx", report=tmp_path / "r.json", name="head")
    stages.finish_report(job)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["output"] == str(tmp_path / "m.onnx") and data["error"] is None and data["model"] == "head"
    assert data["total_seconds"] >= 0 and job.report.total_seconds > 0


def test_finish_report_after_a_failure_says_why_it_stopped(model, x, tmp_path):
    job = job_for(model, x, tmp_path / "m.onnx", report=tmp_path / "r.json")
    stages.finish_report(job, VerificationError("verification failed, nothing written\nthe tables"))
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["output"] is None and data["status"] == "failed" and not data["passed"]
    assert data["error"] == "verification failed, nothing written"
    assert job.report.to_dict() == data


def test_finish_report_without_a_report_path_writes_nothing(model, x, tmp_path):
    job = job_for(model, x, tmp_path / "m.onnx")
    stages.finish_report(job)
    assert job.report.output == str(tmp_path / "m.onnx") and list(tmp_path.iterdir()) == []
