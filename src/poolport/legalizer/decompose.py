"""3-D pooling as two 2-D pooling ops, for runtimes that compute 2-D pooling right but not 3-D (MNN) or
refuse it (onnx2tf): fold D into the channels and pool H x W, then fold H x W into one axis and pool D.

    (N, C, D, H, W) -Reshape-> (N, C*D, H, W) -pool (kh, kw)-> (N, C*D, Ho, Wo)
    -Reshape-> (N, C, D, Ho*Wo) -pool (kd, 1)-> (N, C, Do, Ho*Wo) -Reshape-> (N, C, Do, Ho, Wo)

Exact for max (a maximum of maxima) and for average: ONNX's divisor of a box window is the product of
its per-axis counts (real cells, or cells inside the padded extent with count_include_pad), so the two
averages multiply to the 3-D one. Each 2-D op keeps the node's pads, ceil_mode, count_include_pad and
dilations for its axes; the legalizer then checks the two new nodes against the target's other rules."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..plan.pads import torch_output


def _attrs(p, axes: list[int], extra: int) -> dict:
    """The 2-D pooling attributes for ``axes`` of a 3-D node (``extra`` trailing unit axes)."""
    kernel = [p.kernel[a] for a in axes] + [1] * extra
    attrs = dict(kernel_shape=kernel, strides=[p.strides[a] for a in axes] + [1] * extra,
                 pads=[p.pads_before[a] for a in axes] + [0] * extra + [p.pads_after[a] for a in axes] + [0] * extra)
    if p.ceil_mode:
        attrs["ceil_mode"] = 1
    if p.op == "AveragePool" and p.count_include_pad:
        attrs["count_include_pad"] = 1
    if any(p.dilations[a] != 1 for a in axes):
        attrs["dilations"] = [p.dilations[a] for a in axes] + [1] * extra
    return attrs


def pool_3d_as_2d(node: onnx.NodeProto, p, shape: tuple, prefix: str):
    """``(nodes, initializers, pools)`` computing the 3-D pooling ``node`` (attributes ``p``, static input
    ``shape`` N, C, D, H, W; N may be unknown) with two 2-D pooling nodes; ``pools`` lists each new pooling
    node with its input shape, for the caller to check again."""
    _, c, d, h, w = shape
    n = shape[0] or 1
    ext = [(k - 1) * dl + 1 for k, dl in zip(p.kernel, p.dilations)]
    do, ho, wo = (torch_output(size, e, s, b, a, p.ceil_mode)
                  for size, e, s, b, a in zip((d, h, w), ext, p.strides, p.pads_before, p.pads_after))
    names = {k: f"{prefix}_{k}" for k in ("hw_in", "hw_out", "d_in", "d_out", "s1", "s2", "s3")}
    inits = [numpy_helper.from_array(np.array(v, dtype=np.int64), names[k]) for k, v in
             (("s1", [0, c * d, h, w]), ("s2", [0, c, d, ho * wo]), ("s3", [0, c, do, ho, wo]))]
    hw = helper.make_node(node.op_type, [names["hw_in"]], [names["hw_out"]], name=f"{prefix}_pool_hw",
                          **_attrs(p, [1, 2], 0))
    dd = helper.make_node(node.op_type, [names["d_in"]], [names["d_out"]], name=f"{prefix}_pool_d",
                          **_attrs(p, [0], 1))
    nodes = [
        helper.make_node("Reshape", [node.input[0], names["s1"]], [names["hw_in"]], name=f"{prefix}_fold_d"),
        hw,
        helper.make_node("Reshape", [names["hw_out"], names["s2"]], [names["d_in"]], name=f"{prefix}_fold_hw"),
        dd,
        helper.make_node("Reshape", [names["d_out"], names["s3"]], [node.output[0]], name=f"{prefix}_unfold"),
    ]
    pools = [(hw, (n, c * d, h, w)), (dd, (n, c, d, ho * wo))]
    return nodes, inits, pools


def layout_ambiguous(p, channels: int, spatial: tuple[int, ...]) -> bool:
    """Whether a tensor of the 2-D form of a 3-D pool (attributes ``p``, ``channels``, ``spatial`` D, H, W)
    -- the input, the folded input, the 2-D halves' outputs, the output -- has all its non-batch sizes
    equal: onnx2tf guesses channels-first or -last from shapes, and guesses the Reshapes' layout wrongly
    there (measured with C == D == H == W)."""
    c, (d, h, w) = channels, spatial
    ext = [(k - 1) * dl + 1 for k, dl in zip(p.kernel, p.dilations)]
    do, ho, wo = (torch_output(n, e, s, b, a, p.ceil_mode)
                  for n, e, s, b, a in zip(spatial, ext, p.strides, p.pads_before, p.pads_after))
    shapes = [(c, d, h, w), (c * d, h, w), (c * d, ho, wo), (c, d, ho * wo), (c, do, ho * wo), (c, do, ho, wo)]
    return any(len(set(t)) == 1 for t in shapes)

