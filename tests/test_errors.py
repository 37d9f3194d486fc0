"""Bad input gets a PoolportError naming the function and the sizes, never a deep torch traceback."""

import pytest
import torch

import poolport
import poolport.functional as PF
from poolport import PoolportError


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: PF.adaptive_avg_pool2d(torch.randn(1, 3, 9, 9), 0), r"adaptive_avg_pool2d: output size 0x0 for input 9x9"),
        (lambda: PF.adaptive_avg_pool2d(torch.randn(1, 3, 9, 9), (7, -1)), r"9x9.*>= 1"),
        (lambda: PF.adaptive_max_pool1d(torch.randn(1, 3, 9), (3, 3)), r"adaptive_max_pool1d: output_size \(3, 3\) must have 1 entry"),
        (lambda: PF.adaptive_avg_pool2d(torch.randn(1, 3, 0, 9), 7), r"shape \(1, 3, 0, 9\) has an empty"),
        (lambda: PF.adaptive_avg_pool2d(torch.randn(9, 9), 7), r"expected a 3D .* or 4D .* got 2D with shape \(9, 9\)"),
        (lambda: PF.adaptive_avg_pool3d(torch.randn(1, 1, 1, 4, 4, 4), 2), r"got 6D"),
        (lambda: PF.adaptive_avg_pool2d(torch.ones(1, 3, 9, 9, dtype=torch.int64), 7), r"dtype torch.int64 .* x.float\(\)"),
        (lambda: PF.adaptive_max_pool2d(torch.ones(1, 3, 9, 9, dtype=torch.uint8), 7), r"dtype torch.uint8"),
        (lambda: PF.adaptive_avg_pool2d(torch.randn(1, 3, 9, 9), None), r"output_size is None"),
        (lambda: PF.adaptive_avg_pool2d(torch.randn(1, 3, 9, 9), (7.5, 7)), r"ints or None"),
        (lambda: PF.adaptive_avg_pool2d([[1.0]], 7), r"expected a torch.Tensor"),
    ],
)
def test_bad_input_raises_poolport_error(call, match):
    for forced in (False, True):
        with pytest.raises(PoolportError, match=match):
            if forced:
                with poolport.always_portable():
                    call()
            else:
                call()


@pytest.mark.parametrize("d", [1, 2, 3])
def test_return_indices_is_refused_with_a_reason(d):
    f = getattr(PF, f"adaptive_max_pool{d}d")
    x = torch.randn(1, 2, *([8] * d))
    with pytest.raises(PoolportError, match=r"not portable.*Gather.*MaxUnpool"):
        f(x, 3, return_indices=True)
    cls = getattr(poolport.nn, f"AdaptiveMaxPool{d}d")
    with pytest.raises(PoolportError, match=f"adaptive_max_pool{d}d"):
        cls(3, return_indices=True)


def test_poolport_error_is_a_value_error():
    assert issubclass(PoolportError, ValueError)


def test_modules_validate_output_size_at_construction():
    # so that plain eager calls can go straight to the native op (torch itself accepts 0)
    with pytest.raises(PoolportError, match=r"AdaptiveAvgPool2d: output_size must be a positive int"):
        poolport.nn.AdaptiveAvgPool2d(0)
    with pytest.raises(PoolportError, match=r"AdaptiveMaxPool1d"):
        poolport.nn.AdaptiveMaxPool1d((3, 3))
    poolport.nn.AdaptiveAvgPool3d((None, 2, 1))  # None entries are fine
