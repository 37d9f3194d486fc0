"""Real model definitions (random weights) exported with poolport and verified in ONNX Runtime.

CI runs each required torchvision model at one non-224 size (the sizes rotate so all five are covered)
with both exporters, plus timm models with non-global adaptive pooling; `pytest -m slow` runs every
model at every size."""

import onnx
import pytest
import torch

import poolport
from poolport.onnxfile.graph import NON_PORTABLE_OPS, op_counts

TORCHVISION = ["vgg11", "alexnet", "densenet121", "squeezenet1_0", "googlenet", "mobilenet_v3_small",
               "resnet18", "efficientnet_b0", "regnet_y_400mf"]
SIZES = [193, 224, 256, 299, 320]
CI_PAIRS = [(name, SIZES[i % len(SIZES)]) for i, name in enumerate(TORCHVISION)]
SLOW_PAIRS = [(n, s) for n in TORCHVISION for s in SIZES if (n, s) not in CI_PAIRS]

# timm architectures whose adaptive pooling is not global (or is adaptive max pooling)
TIMM = [
    ("pvt_v2_b2_li", {}, 256),  # AdaptiveAvgPool2d(7) in attention: 64->7, 32->7, 16->7, 8->7
    ("bat_resnext26ts", {}, 256),  # non-local attention: adaptive max pool (1, 8) and (8, 1)
    ("resnet18", {"global_pool": "catavgmax"}, 193),  # functional avg + max head
]
# timm's vgg11 at 193 (ConvMlp: 6x6 -> 7x7, output larger than input) is torchvision's vgg11-193 case again,
# which the fast tier runs with both exporters
TIMM_SLOW = [("vgg11", {}, 193), ("csatv2", {}, 256), ("inception_v3", {"global_pool": "avgmax"}, 299)]


def torchvision_model(name):
    import torchvision

    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None, **kwargs).eval()


def plain_ops(model, x, exporter, tmp_path):
    """Operator counts of torch.onnx.export of the unmodified model, or None if torch refuses it."""
    import logging
    import warnings

    path = tmp_path / f"plain-{exporter}.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            torch.onnx.export(model, (x,), str(path), dynamo=exporter == "dynamo")
        except Exception:
            return None
        finally:
            logging.disable(logging.NOTSET)
    return op_counts(onnx.load(str(path), load_external_data=False))


def check(model, size, exporter, tmp_path):
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    report = poolport.export_onnx(model, (x,), tmp_path / f"m-{exporter}.onnx", exporter=exporter)
    assert report.passed and report.max_rel_error <= 1e-4
    assert report.sites, "the model has adaptive pooling sites"
    # read from the exported graph itself, against torch's own export of the same model: poolport adds no
    # operator a runtime mishandles (the model's own MatMul or Where in attention stay, of course)
    ops = op_counts(onnx.load(str(tmp_path / f"m-{exporter}.onnx")))
    plain = plain_ops(model, x, exporter, tmp_path)
    if plain is None:  # this exporter refuses the model: the other one's graph is the baseline
        plain = plain_ops(model, x, "torchscript" if exporter == "dynamo" else "dynamo", tmp_path)
    if plain is None:  # both refuse (VGG, AlexNet off 224): nothing non-portable at all
        assert not set(ops) & NON_PORTABLE_OPS, {k: v for k, v in ops.items() if k in NON_PORTABLE_OPS}
    else:
        added = {k: ops[k] - plain[k] for k in NON_PORTABLE_OPS if ops[k] > plain[k]}
        assert not added, f"poolport's graph has more of these than torch's: {added}"
    assert ops["AveragePool"] + ops["MaxPool"] + ops["GlobalAveragePool"] + ops["GlobalMaxPool"] >= len(report.sites)
    for site in report.sites:
        assert site.max_rel_error <= 1e-5
    return report


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name,size", CI_PAIRS, ids=[f"{n}-{s}" for n, s in CI_PAIRS])
def test_torchvision(name, size, exporter, tmp_path):
    check(torchvision_model(name), size, exporter, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name,size", SLOW_PAIRS, ids=[f"{n}-{s}" for n, s in SLOW_PAIRS])
def test_torchvision_every_size(name, size, exporter, tmp_path):
    check(torchvision_model(name), size, exporter, tmp_path)


def _timm(name, kwargs):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()


@pytest.mark.parametrize("name,kwargs,size", TIMM, ids=[t[0] for t in TIMM])
def test_timm_non_global_pooling(name, kwargs, size, tmp_path):
    report = check(_timm(name, kwargs), size, "torchscript", tmp_path)
    assert any(s.plan.kind not in ("global", "identity") for s in report.sites) or name == "resnet18"


@pytest.mark.slow
@pytest.mark.parametrize("name,kwargs,size", TIMM + TIMM_SLOW, ids=[t[0] for t in TIMM + TIMM_SLOW])
def test_timm_dynamo(name, kwargs, size, tmp_path):
    check(_timm(name, kwargs), size, "dynamo", tmp_path)


def test_plain_export_of_vgg_at_193_fails_where_poolport_works(tmp_path):
    model = torchvision_model("vgg11")
    x = torch.randn(1, 3, 193, 193)
    with pytest.raises(Exception, match="not factor of input size"):
        torch.onnx.export(model, (x,), str(tmp_path / "plain.onnx"), dynamo=False)
