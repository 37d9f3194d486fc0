"""The public names keep working across restructurings, and each carries its documentation."""

import inspect

import pytest

import poolport
import poolport.functional as PF
import poolport.nn as PN

TOP = ["functional", "nn", "plan", "make_portable", "patch", "always_portable", "export_onnx", "onnx_translations", "Report",
       "verify_sites", "legalize", "PoolportError", "__version__"]


@pytest.mark.parametrize("name", TOP)
def test_top_level_names(name):
    assert getattr(poolport, name) is not None
    assert name in dir(poolport)


@pytest.mark.parametrize("name", PF.__all__)
def test_functional_is_documented_with_args_and_raises(name):
    doc = inspect.getdoc(getattr(PF, name)) or ""
    assert "Raises" in doc or "PoolportError" in doc, f"poolport.functional.{name}: {doc[:80]!r}"


@pytest.mark.parametrize("name", PN.__all__)
def test_nn_classes_are_documented(name):
    cls = getattr(PN, name)
    assert cls.__doc__ and "poolport.functional" in cls.__doc__ or "Keras" in (cls.__doc__ or "")


def test_legalize_returns_one_result_object():
    import onnx
    from onnx import helper

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 2, 2])
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    result = poolport.legalize(model, "ncnn")
    assert isinstance(result.model, onnx.ModelProto)
    assert [type(c).__name__ for c in result.changes] == ["PoolRewrite"] == [type(c).__name__ for c in result.rewritten]
    assert result.verified and result.kept == []


def test_lazy_names_stay_what_they_name_after_every_submodule_is_imported():
    # a submodule named like a lazily exported function replaces it on its package once imported
    # (poolport.legalizer.legalize did: poolport.legalize was a module whenever a test imported it first)
    import subprocess
    import sys

    code = ("import importlib, pkgutil, types, poolport, poolport.legalizer as L\n"
            "for m in pkgutil.walk_packages(poolport.__path__, 'poolport.'):\n"
            "    if '.workers.' not in m.name and not m.name.endswith('__main__'):\n"
            "        importlib.import_module(m.name)\n"
            "for name in poolport.__all__:\n"
            "    assert name == 'nn' or name == 'functional' or name == 'plan' or "
            "not isinstance(getattr(poolport, name), types.ModuleType), name\n"
            "assert callable(L.legalize) and callable(poolport.legalize)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
