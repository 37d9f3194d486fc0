import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# CI runs the same examples every time; locally `HYPOTHESIS_PROFILE=dev` explores more.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
settings.register_profile("dev", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    """Every test sees the same random tensors on every run (hypothesis is derandomized too)."""
    torch.manual_seed(1234)


@pytest.fixture(autouse=True)
def _cache_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's cache folder (`legalize --target auto` caches its probe there)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


# CI promises OpenVINO and ncnn/pnnx (the README says `make test` runs them): .ci/run sets
# POOLPORT_REQUIRE_RUNTIMES=openvino,ncnn, and a runtime test skipped because one of those is missing
# fails instead of passing silently.
REQUIRED = {r for r in os.environ.get("POOLPORT_REQUIRE_RUNTIMES", "").split(",") if r}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (REQUIRED and report.skipped and item.get_closest_marker("runtime")):
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    missing = [r for r in REQUIRED if r in reason and "not installed" in reason]
    if missing:
        report.outcome = "failed"
        report.longrepr = f"{', '.join(missing)} required (POOLPORT_REQUIRE_RUNTIMES) but not installed: {reason}"
