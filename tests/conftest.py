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
