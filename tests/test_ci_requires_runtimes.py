"""CI fails, not skips, when a runtime the README promises is missing (POOLPORT_REQUIRE_RUNTIMES)."""

from pathlib import Path

pytest_plugins = ["pytester"]

SKIPPING = '''
import pytest

@pytest.mark.runtime
def test_needs_ncnn():
    pytest.skip("ncnn/pnnx not installed (pip install 'poolport[runtimes]')")

@pytest.mark.runtime
def test_needs_tensorflow():
    pytest.skip("could not import 'tensorflow'")
'''


def _run(pytester, monkeypatch, required):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    runtime: needs a runtime\n")
    pytester.makepyfile(test_rt=SKIPPING)
    monkeypatch.setenv("POOLPORT_REQUIRE_RUNTIMES", required)
    return pytester.runpytest_subprocess("-q")


def test_a_required_runtime_that_is_missing_fails(pytester, monkeypatch):
    _run(pytester, monkeypatch, "openvino,ncnn").assert_outcomes(failed=1, skipped=1)  # tensorflow: optional


def test_without_the_requirement_it_skips(pytester, monkeypatch):
    _run(pytester, monkeypatch, "").assert_outcomes(skipped=2)


def test_ci_sets_the_requirement():
    assert "POOLPORT_REQUIRE_RUNTIMES=openvino,ncnn,mnn,litert,executorch,litert-torch" in (Path(__file__).parents[1] / ".ci" / "run").read_text()
