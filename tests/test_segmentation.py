"""Segmentation models at every size (issue 19): segmentation_models_pytorch (pinned in the test extras;
random weights, resnet18 encoder) accepts only sizes that are multiples of 32 (DeepLabV3+ says so itself),
declared as torch.export does it, ``{2: 32 * h, 3: 32 * w}``. Exported with H/W symbolic by both exporters,
verified by poolport at sizes it picks inside what was declared, then run here in ONNX Runtime (and
OpenVINO) at three other sizes against the eager model: exact up to float rounding.

Also: the sizes verification picks for derived Dims, the message when a model refuses every size, and
``--dynamic-spatial MIN:MAX:STEP``. The fast tier keeps PSPNet (both exporters); DeepLabV3+ is
``make test-slow``."""

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import poolport
from poolport.cli.main import main
from poolport.errors import PoolportError, VerificationError
from poolport.export.dynamic import parse_dynamic_shapes, verification_shapes
from poolport.runtimes.registry import RUNNERS, available

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights: nothing is downloaded, and nothing may try

# other sizes (H, W), all multiples of 32, none the example's (64 x 96): square, tall, wide
SIZES = [(128, 128), (160, 64), (96, 192)]


def smp_model(name: str):
    import segmentation_models_pytorch as smp  # a pinned test dependency: missing, the test fails, never skips
    torch.manual_seed(0)
    # the smallest encoder depth each architecture allows keeps the tests quick
    extra = {"PSPNet": {"encoder_depth": 3}}.get(name, {})
    return getattr(smp, name)(encoder_name="resnet18", encoder_weights=None, classes=3, **extra).eval()


def dims():
    return 32 * torch.export.Dim("h", min=2, max=16), 32 * torch.export.Dim("w", min=2, max=16)


def assert_exact(run, model, sizes=SIZES):
    """``run`` (an exported graph in a runtime) against the eager model at ``sizes``: max abs error within
    1e-5 x the output's scale (float rounding; the pooling itself is exact)."""
    for h, w in sizes:
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(h * 1000 + w))
        with torch.no_grad():
            want = model(x).numpy()
        got = np.asarray(run(x))
        assert got.shape == want.shape, ((h, w), got.shape, want.shape)
        err = float(np.abs(got - want).max()) / max(float(np.abs(want).max()), 1e-30)
        assert err <= 1e-5, ((h, w), err)


def export_and_check(name, exporter, tmp_path):
    model = smp_model(name)
    path = tmp_path / f"{name}.onnx"
    h, w = dims()
    runtimes = ["openvino"] if available("openvino") else []
    report = poolport.export_onnx(model, torch.randn(1, 3, 64, 96), path, exporter=exporter,
                                  dynamic_shapes=({2: h, 3: w},), runtimes=runtimes)
    verified = [tuple(int(n) for n in s.split("x")[2:]) for s in report.sizes_verified]
    assert len(verified) >= 3 and all(n % 32 == 0 for s in verified for n in s), verified
    assert any(a != b for a, b in verified), verified  # non-square ones among them
    assert any(s.op == "adaptive_avg_pool2d" for s in report.sites)
    assert "GatherND" not in report.onnx_ops, report.onnx_ops  # not torch's lowering, baked for one size
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = onnx.load(str(path), load_external_data=False).graph.input[0].name
    assert_exact(lambda t: sess.run(None, {input_name: t.numpy()})[0], model)
    if runtimes:
        assert_exact(lambda t: RUNNERS["openvino"](path, {input_name: t.numpy()})[0], model)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_pspnet(exporter, tmp_path):
    export_and_check("PSPNet", exporter, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name,exporter", [("DeepLabV3Plus", "dynamo"), ("DeepLabV3Plus", "torchscript")])
def test_segmentation_models(name, exporter, tmp_path):
    export_and_check(name, exporter, tmp_path)


# --- the sizes verification picks ---

def test_derived_dims_give_only_their_own_sizes():
    h, w = dims()
    x = torch.randn(1, 3, 64, 96)
    axes = parse_dynamic_shapes(({2: h, 3: w},), (x,), None)
    assert [str(a) for a in axes] == ["input 0 axis 2: 32*h in [64, 512] step 32",
                                      "input 0 axis 3: 32*w in [64, 512] step 32"]
    sets = verification_shapes(axes, (x,), [])
    sizes = [s[0][2:] for s in sets]
    assert len(sizes) >= 3 and (64, 96) not in sizes
    assert all(n % 32 == 0 and 64 <= n <= 512 for s in sizes for n in s), sizes
    assert sum(a != b for a, b in sizes) >= 3, sizes


def test_an_offset_and_a_shared_root_change_together():
    k = torch.export.Dim("k", min=3, max=40)
    x, y = torch.randn(1, 2, 9, 10), torch.randn(1, 2, 19)  # 2k + 3 = 9 and 4k + 7 = 19 at k = 3
    axes = parse_dynamic_shapes(({2: 2 * k + 3}, {2: 4 * k + 7}), (x, y), None)
    sets = verification_shapes(axes, (x, y), [])
    assert len(sets) >= 3
    for a, b in sets:
        kk = (a[2] - 3) // 2
        assert a[2] == 2 * kk + 3 and b[2] == 4 * kk + 7 and 3 <= kk <= 40 and kk != 3


def test_an_example_the_derived_dim_does_not_allow_is_refused_before_exporting():
    h, w = dims()
    with pytest.raises(PoolportError, match=r"input 0 axis 2 is 70 .*does not allow \(its sizes are 32k\)"):
        parse_dynamic_shapes(({2: h, 3: w},), (torch.randn(1, 3, 70, 96),), None)


class Multiple(torch.nn.Module):
    """Takes only sizes that are multiples of 32, as smp's models do; adaptive pooling inside."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(5)

    def forward(self, x):
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()) and (x.shape[2] % 32 or x.shape[3] % 32):
            raise RuntimeError(f"Expected image height and width divisible by 32, got {tuple(x.shape[2:])}")
        return self.pool(self.conv(x))


def build():
    torch.manual_seed(0)
    return Multiple().eval()


def test_a_model_that_refuses_every_size_is_told_with_the_sizes_and_its_own_error(tmp_path):
    with pytest.raises(VerificationError) as e:
        poolport.export_onnx(build(), torch.randn(1, 3, 64, 96), tmp_path / "m.onnx", exporter="dynamo",
                             dynamic_shapes=({2: "h", 3: "w"},))
    msg = str(e.value)
    assert "the model ran at only 0 of the" in msg and "tried 1x3x" in msg, msg
    assert "raised in <root> (Multiple): RuntimeError: Expected image height and width divisible by 32" in msg, msg
    assert "--dynamic-spatial MIN:MAX:STEP" in msg and not (tmp_path / "m.onnx").exists()


# --- --dynamic-spatial MIN:MAX:STEP ---

@pytest.fixture
def factory(tmp_path):
    f = tmp_path / "multiple.py"
    f.write_text("from test_segmentation import build\n")
    return f"{f}:build"


def test_cli_dynamic_spatial_with_a_step(factory, tmp_path, capsys):
    out, report = tmp_path / "m.onnx", tmp_path / "r.json"
    code = main(["convert", factory, "--input", "1x3x64x96", "-o", str(out), "--quiet",
                 "--dynamic-spatial", "64:512:32", "--report", str(report)])
    assert code == 0, capsys.readouterr().err
    import json

    data = json.loads(report.read_text())
    verified = [[int(n) for n in s.split("x")[2:]] for s in data["sizes_verified"]]
    assert len(verified) >= 3 and all(n % 32 == 0 and 64 <= n <= 512 for s in verified for n in s), verified
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    model = build()
    assert_exact(lambda t: sess.run(None, {sess.get_inputs()[0].name: t.numpy()})[0], model)


def test_cli_dynamic_spatial_per_axis_and_without_a_step(factory, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code = main(["convert", factory, "--input", "1x3x64x96", "-o", str(out), "--quiet",
                 "--dynamic-spatial", "64:256:32,96:480:32"])
    assert code == 0, capsys.readouterr().err
    code = main(["convert", factory, "--input", "1x3x64x96", "-o", str(tmp_path / "n.onnx"), "--quiet",
                 "--dynamic-spatial", "32:512"])  # every size: the model refuses all but multiples of 32
    assert code == 1
    assert "Expected image height and width divisible by 32" in capsys.readouterr().err


def test_cli_dynamic_spatial_before_the_model_keeps_the_model(factory, tmp_path, capsys):
    # the option's value is optional: argparse hands it MODEL, which convert takes back (the default range)
    code = main(["convert", "--dynamic-spatial", factory, "--input", "1x3x64x96", "-o", str(tmp_path / "m.onnx"),
                 "--quiet"])
    assert code == 1 and "Expected image height and width divisible by 32" in capsys.readouterr().err
    code = main(["convert", "--dynamic-spatial", "64:512:32", "--input", "1x3x64x96", "-o", str(tmp_path / "m.onnx")])
    assert code == 2 and "give the MODEL to convert" in capsys.readouterr().err


@pytest.mark.parametrize("ranges,says", [
    ("64:1024:0", "MIN and STEP must be >= 1"),
    ("64-1024", "is not a range MIN:MAX or MIN:MAX:STEP"),
    ("64:512:32,64:512:32,64:512:32", "3 ranges for input 0 (1x3x64x96), which has 2 spatial axes"),
    ("96:512:32", "is 64 on axis 2, not one of the sizes its range allows (96, 128, ..., 512)"),
])
def test_cli_dynamic_spatial_bad_ranges_are_usage_errors(factory, tmp_path, capsys, ranges, says):
    code = main(["convert", factory, "--input", "1x3x64x96", "-o", str(tmp_path / "m.onnx"), "--quiet",
                 "--dynamic-spatial", ranges])
    err = capsys.readouterr().err
    assert code == 2 and says in err, err
    assert not (tmp_path / "m.onnx").exists()


class Baked(torch.nn.Module):
    """Reads H as a Python int: the TorchScript trace bakes it, so the graph fails at other sizes in ONNX
    Runtime while PyTorch runs there."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x + torch.ones(int(x.shape[2]), 1), 2)


def test_onnx_runtime_failing_at_another_size_is_a_failed_verification_not_a_bug(tmp_path):
    with pytest.raises(VerificationError, match=r"onnxruntime could not load, convert or run the model \(could "
                                                r"not run it at 1x3x\d+x\d+"):
        with pytest.warns(torch.jit.TracerWarning):
            poolport.export_onnx(Baked(), torch.randn(1, 3, 20, 22), tmp_path / "m.onnx", exporter="torchscript",
                                 dynamic_shapes=({2: "h", 3: "w"},))
    assert not (tmp_path / "m.onnx").exists()


class Picky(torch.nn.Module):
    """Fails on inputs other than its example's values (a model's own check on values)."""

    def forward(self, x):
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling() and float(x[0, 0, 0, 0]) != 0.5:
            raise ValueError("first cell must be 0.5")
        return torch.nn.functional.adaptive_avg_pool2d(x, 3)


def test_a_model_failing_on_random_inputs_is_the_models_failure(tmp_path):
    x = torch.randn(1, 2, 10, 10)
    x[0, 0, 0, 0] = 0.5
    with pytest.raises(PoolportError, match=r"the model fails on random inputs #1 \(seed \d+, 1x2x10x10\) in <root> "
                                            r"\(Picky\): ValueError: first cell must be 0.5"):
        poolport.export_onnx(Picky(), x, tmp_path / "m.onnx", exporter="torchscript")
    poolport.export_onnx(Picky(), x, tmp_path / "m.onnx", exporter="torchscript", random_checks=0)
