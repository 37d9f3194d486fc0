"""The runtime registry: every runtime's knowledge in its own module (``poolport/runtimes/*_rt.py``), and
every other place (reports, check, probe, the legalizer's targets, the command line) asking the registry."""

import pytest

from poolport.errors import PoolportError
from poolport.export.report import versions
from poolport.runtimes import registry
from poolport.runtimes.base import Runtime


def test_every_runtime_module_says_all_poolport_needs():
    assert registry.NAMES[0] == "onnxruntime"  # the reference, first in every table
    assert {"openvino", "ncnn", "mnn", "litert"} <= set(registry.NAMES)
    assert set(registry.RUNNERS) == set(registry.NAMES)
    for name in registry.NAMES:
        rt = registry.get(name)
        assert isinstance(rt, Runtime) and rt.name == name
        assert rt.label and rt.install and rt.activity, name
    orders = [registry.get(n).order for n in registry.NAMES]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    assert registry.ALIASES == {"tflite": "litert"}


def test_unknown_runtimes_are_named_with_the_choices():
    with pytest.raises(PoolportError, match="unknown runtime tensorrtx, tvm: choose from onnxruntime, openvino"):
        registry.select(["onnxruntime", "tensorrtx", "tvm"])
    with pytest.raises(PoolportError, match="unknown runtime tensorrtx"):
        registry.get("tensorrtx")
    assert not registry.available("tensorrtx") and registry.version("tensorrtx") == ""


def test_the_legalizer_targets_every_runtime_by_name_and_alias():
    from poolport.legalizer.targets import TARGETS

    assert TARGETS[:2] == ("all", "auto")
    assert set(TARGETS[2:]) == set(registry.NAMES) | set(registry.ALIASES)


def test_the_command_line_parses_every_runtime_list_alike(tmp_path, capsys):
    from poolport.cli.args import parse_runtimes
    from poolport.cli.main import main

    assert parse_runtimes(None) is None and parse_runtimes("") is None
    assert parse_runtimes(" onnxruntime, ncnn ,") == ("onnxruntime", "ncnn")
    with pytest.raises(PoolportError, match="unknown runtime tensorrtx"):
        parse_runtimes("ncnn,tensorrtx")
    # convert refuses an unknown --verify-in before it loads or writes anything
    out = tmp_path / "m.onnx"
    assert main(["convert", "torchvision.models:resnet18", "--input", "1x3x32x32", "-o", str(out),
                 "--verify-in", "tensorrtx", "--quiet"]) == 2
    assert "unknown runtime tensorrtx" in capsys.readouterr().err and not out.exists()
    assert main(["probe", "--runtimes", "tensorrtx", "--quiet"]) == 2
    assert "unknown runtime tensorrtx" in capsys.readouterr().err


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["ncnn", "mnn", "litert"])
def test_reports_take_each_runtimes_version_from_the_registry(runtime):
    if not registry.available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    found = versions((runtime,))
    # LiteRT's version comes from its own environment: no distribution named litert is installed here
    assert found[runtime] == registry.version(runtime) != ""
    assert found["onnxruntime"] == registry.version("onnxruntime")
