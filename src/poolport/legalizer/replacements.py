"""What a legalizer rule writes instead of a pooling node (its *replacement*), and the *check* that says
whether it can be written for a given node, with the reason where it cannot:

* ``EXPLICIT`` -- Pad + a pooling op without padding + Mul by the divisor correction
  (``plan.explicit.ExplicitPool``, written by ``backend.onnx_nodes``). That pooling op has no dilations:
  a dilated pool takes ``LATTICE`` (or its alternative ``TAPS``).
* ``TAPS``     -- the tap form (``plan.taps.TapPool``): Pad + one Slice per kernel tap + Max/Add + a
  1-wide strided pool (+ Mul). Needs opset 11 (Pad and Slice take their parameters as inputs).
* ``LATTICE``  -- dilated pooling on sub-lattices (``plan.dilated.dilated_onnx_plan``, written by
  ``backend.onnx_nodes.dilated_nodes`` through the walk torch's dilated form takes): crop/Pad (-inf as a
  zero Pad + a mask Add for max, zeros for average), Reshape + contiguous Slice + plain pools, Reshape (+ Mul).
  Needs opset 11.
* ``PADS``     -- ``auto_pad`` written out as explicit pads on the same MaxPool, no Pad node. An
  AveragePool takes ``EXPLICIT``: runtimes divide an asymmetrically padded average wrongly or refuse it.
* ``AS_2D``    -- 3-D pooling as two 2-D pooling ops between Reshapes (``legalizer.decompose``); the
  legalizer checks the two new nodes against the rules again.
* ``LP_FORM``  -- an ONNX LpPool node as |x| ** p, window sums (the explicit or tap form), ** (1 / p)
  (``plan.lppool.onnx_lp_plan``); its pooling op is checked again.

Each replacement also says where it is known to be wrong (``wrong_on``, measured: docs/runtimes.md): a
target served by such a runtime (``--target all`` serves every runtime) keeps the node instead, and
``legalize`` fails closed on it.

Each replacement has a ``rank``: where several rules match one node, the rewrite of the highest is written
for all of them, since each removes at least what those below it remove (2-D halves that are checked
again; dilations, pads and ceil_mode; pads and ceil_mode; auto_pad alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import helper

from ..backend.onnx_nodes import argmax_nodes, dilated_nodes, explicit_nodes, lp_nodes, tap_nodes, unpool_nodes
from ..errors import PoolportError
from ..plan.dilated import dilated_onnx_plan
from ..plan.explicit import explicit_torch_pool
from ..plan.indices import onnx_argmax_plan, unpool_plan
from ..plan.lppool import onnx_lp_plan
from ..plan.taps import TapPool, tap_pool
from .attrs import PoolAttrs, read_attrs
from .decompose import layout_ambiguous, pool_3d_as_2d


@dataclass(frozen=True)
class Written:
    """A node's replacement: its ``nodes`` and new ``inits`` (initializers), ``summary`` for the report,
    and ``again``: the new pooling nodes (each with its static input shape) to check against the rules again."""

    nodes: list
    inits: list
    summary: str
    again: tuple = ()


class Replacement:
    """A way to write a pooling node without what some runtime computes wrongly.

    ``resolve(p)`` is the replacement actually written for attributes ``p`` (itself, or another where this
    one cannot express ``p``); ``check`` says why it cannot be written for a node (None where it can);
    ``write`` writes it.
    """

    name = "replacement"
    rank = 0
    alternative: Replacement | None = None  # a form removing as much, written where this one is known wrong

    def resolve(self, p: PoolAttrs) -> Replacement:
        """The replacement written for a node with attributes ``p``."""
        return self

    def check(self, node: onnx.NodeProto, p: PoolAttrs, shape: tuple | None, opset: int,
              graph=None) -> str | None:
        """Why ``node`` (attributes ``p``, input ``shape`` N, C, *spatial or None where not static, the
        model's ``opset``; ``graph``, an ``apply.Graph``: the graph around the node, for the replacements that
        read it, MaxUnpool's) cannot be rewritten, or None. Every replacement needs a static input size and
        leaves a node whose Indices output is used as it is."""
        if shape is None:
            return "its input size is not static"
        if len(node.output) > 1 and node.output[1]:
            return "its Indices output is used"
        return None

    def write(self, node: onnx.NodeProto, p: PoolAttrs, shape: tuple, opset: int, prefix: str,
              elem_type: int, graph=None) -> Written:
        """``node`` written as this replacement; new names start with ``prefix``, constants take ``elem_type``;
        ``graph`` as in ``check`` (the index form registers its per-plane index there)."""
        raise NotImplementedError

    def wrong_on(self, p: PoolAttrs, shape: tuple, written: Written) -> dict[str, str]:
        """The runtimes known to compute ``written`` (this replacement of a node with attributes ``p`` on
        input ``shape``) wrongly, and why (measured, docs/runtimes.md): onnx2tf computes a MaxPool form with a
        Pad node wrongly where the channel count equals every spatial size (the Pad form and the tap form,
        measured; the average forms are right there)."""
        if (p.op == "MaxPool" and any(n.op_type == "Pad" for n in written.nodes) and len(set(shape[1:])) == 1):
            return {"litert": "onnx2tf computes a MaxPool with a Pad node wrongly where the channel count equals "
                              "every spatial size"}
        return {}

    def __repr__(self) -> str:
        return self.name


def _op(p: PoolAttrs) -> str:
    return "avg" if p.op == "AveragePool" else "max"


class Planned(Replacement):
    """A replacement computed as a plan from ``plan/`` (``plan``) and written as nodes by a
    ``backend.onnx_nodes`` writer (``nodes``)."""

    def plan(self, p: PoolAttrs, spatial: tuple[int, ...]):
        """The plan of a node with attributes ``p`` on input ``spatial``."""
        raise NotImplementedError

    def nodes(self, plan, x: str, y: str, opset: int, prefix: str, elem_type: int) -> tuple[list, list]:
        """``plan`` as nodes and initializers computing ``y`` from ``x``."""
        raise NotImplementedError

    def write(self, node, p, shape, opset, prefix, elem_type, graph=None):
        """The plan of ``p`` on ``shape``'s spatial size, as nodes; the plan's steps as the summary."""
        plan = self.plan(p, tuple(shape[2:]))
        nodes, inits = self.nodes(plan, node.input[0], node.output[0], opset, prefix, elem_type)
        return Written(nodes, inits, " + ".join(plan.steps()))


class Taps(Planned):
    """The tap form (``plan.taps.TapPool``); needs opset 11."""

    name = "taps"
    rank = 2
    nodes = staticmethod(tap_nodes)

    def check(self, node, p, shape, opset, graph=None):
        """As ``Replacement.check``, and the model's opset is 11 or newer."""
        reason = super().check(node, p, shape, opset)
        if reason is None and opset < 11:
            return f"a dilated pool is rewritten with opset 11 or newer (the model has {opset})"
        return reason

    def wrong_on(self, p, shape, written):
        """As ``Replacement.wrong_on``, and ncnn: pnnx converts the tap form, and ncnn computes it with the
        wrong output shape (measured), where it refuses the dilated original loudly."""
        return {**super().wrong_on(p, shape, written),
                "ncnn": "pnnx converts it and ncnn returns the wrong output shape; ncnn refuses the original loudly"}

    def plan(self, p, spatial):
        """``plan.taps.tap_pool``: Pad + a Slice per kernel tap + Max/Add + a 1-wide strided pool (+ Mul)."""
        return tap_pool(_op(p), spatial, p.kernel, p.strides, p.dilations, p.pads_before, p.pads_after, p.ceil_mode,
                        p.count_include_pad)


class Explicit(Planned):
    """The explicit form (``plan.explicit.ExplicitPool``); a dilated pool takes the sub-lattice form (where a
    runtime served computes that wrongly, LiteRT, its alternative: the tap form)."""

    name = "explicit"
    rank = 1
    nodes = staticmethod(explicit_nodes)

    def resolve(self, p):
        """``LATTICE`` where ``p`` is dilated, else this."""
        return LATTICE if any(d != 1 for d in p.dilations) else self

    def plan(self, p, spatial):
        """``plan.explicit.explicit_torch_pool``: Pad + a pooling op without padding (+ Mul)."""
        return explicit_torch_pool(_op(p), spatial, p.kernel, p.strides, p.pads_before, p.pads_after, p.ceil_mode,
                                   p.count_include_pad)


class Pads(Replacement):
    """``auto_pad`` written out as explicit pads on the same MaxPool; an AveragePool takes ``EXPLICIT``."""

    name = "pads"
    rank = 0

    def resolve(self, p):
        """This for a MaxPool, else what ``EXPLICIT`` writes."""
        return self if p.op == "MaxPool" else EXPLICIT.resolve(p)

    def write(self, node, p, shape, opset, prefix, elem_type, graph=None):
        """The node with ``pads`` in place of ``auto_pad``."""
        keep = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
        pads = list(p.pads_before) + list(p.pads_after)
        new = helper.make_node(node.op_type, list(node.input), list(node.output), name=node.name or prefix)
        new.attribute.extend(keep + [helper.make_attribute("pads", pads)])
        return Written([new], [], f"MaxPool(pads={pads})")


class As2d(Replacement):
    """3-D pooling as two 2-D pooling ops (``legalizer.decompose``), checked again."""

    name = "2d"
    rank = 3

    def write(self, node, p, shape, opset, prefix, elem_type, graph=None):
        """Reshape + 2-D pool + Reshape + 2-D pool + Reshape; the two pools to check again."""
        nodes, inits, pools = pool_3d_as_2d(node, p, shape, prefix)
        return Written(nodes, inits, "Reshape + 2-D pool (H, W) + Reshape + 2-D pool (D) + Reshape", tuple(pools))

    def wrong_on(self, p, shape, written):
        """LiteRT where a tensor of the 2-D form has all its sizes equal (``decompose.layout_ambiguous``):
        onnx2tf lays out the Reshapes wrongly there (measured). The 2-D halves are checked on their own."""
        if layout_ambiguous(p, shape[1], tuple(shape[2:])):
            return {"litert": "a tensor of the 2-D form has all its sizes equal, and onnx2tf guesses the layout "
                              "of its Reshapes wrongly there"}
        return {}


EXPLICIT, TAPS, PADS, AS_2D = Explicit(), Taps(), Pads(), As2d()


class LpForm(Replacement):
    """An ONNX ``LpPool`` node as ``plan.lppool.onnx_lp_plan`` (written by ``backend.onnx_nodes.lp_nodes``):
    ``Abs`` (odd or non-integer p), the power (Muls for an integer p up to 8, else Pow), the window sums
    (zero Pad + AveragePool without padding + Mul by K; dilated: the tap form), the root (Sqrt for p = 2,
    else Pow by 1 / p). The sums' pooling op is checked against the rules again (a 3-D one is split for
    MNN and LiteRT)."""

    name = "lp"
    rank = 1

    def check(self, node, p, shape, opset, graph=None):
        """As ``Replacement.check``; ``p`` is an integer of 1 or more (opset 1's LpPool takes a float p)."""
        reason = super().check(node, p, shape, opset)
        given = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "p"), 2)
        if reason is None and (given != int(given) or p.norm < 1):
            return f"its p is {given}, and only an integer p >= 1 is written as a power sum"
        return reason

    def plan(self, p: PoolAttrs, spatial: tuple[int, ...]):
        """``plan.lppool.onnx_lp_plan`` of a node with attributes ``p`` on input ``spatial``."""
        return onnx_lp_plan(p.norm, spatial, p.kernel, p.strides, p.dilations, p.pads_before, p.pads_after,
                            p.ceil_mode)

    def write(self, node, p, shape, opset, prefix, elem_type, graph=None):
        """The plan as nodes; its pooling op (with its input shape) to check again."""
        plan = self.plan(p, tuple(shape[2:]))
        nodes, inits = lp_nodes(plan, node.input[0], node.output[0], opset, prefix, elem_type)
        pool = plan.pool
        if isinstance(pool, TapPool):  # the 1-wide strided MaxPool sees the combined taps
            sizes = tuple((o - 1) * s + 1 for o, s in zip(pool.out_size, pool.stride))
        else:  # the AveragePool sees the padded input
            sizes = tuple(n + b + a for n, b, a in zip(shape[2:], pool.pads_before, pool.pads_after))
        again = tuple((nd, (*shape[:2], *sizes)) for nd in nodes if nd.op_type in ("AveragePool", "MaxPool"))
        return Written(nodes, inits, " + ".join(plan.steps()), again)

    def wrong_on(self, p, shape, written):
        """ncnn where ``p`` is not 1 or 2: the root (and a power beyond 8) is a Pow, and ncnn's Pow is wrong for
        every base <= 0 (2.4e38 for a window whose sum is 0; measured). A dilated node's tap form: as
        ``TAPS.wrong_on``, and LiteRT for 3-D (onnx2tf computes the 3-D average tap form wrongly)."""
        wrong = {}
        if not self.plan(p, tuple(shape[2:])).ncnn_exact:
            wrong["ncnn"] = (f"p = {p.norm} needs Pow, and ncnn's Pow is wrong for every base <= 0 (a window whose "
                             "sum is 0 gives 2.4e38, measured); ncnn computes p = 1 and 2 exactly")
        if any(d != 1 for d in p.dilations):
            wrong = {**TAPS.wrong_on(p, shape, written), **wrong}
            if len(p.kernel) == 3:
                wrong["litert"] = "onnx2tf computes the 3-D average tap form wrongly"
        return wrong


LP_FORM = LpForm()


class Lattice(Replacement):
    """Dilated pooling on sub-lattices (``plan.dilated``), the form torch's dilated max pooling takes
    (``backend.torch_pools.apply_dilated``): plain pools between Reshapes and contiguous Slices; needs opset 11.
    Ranked above ``TAPS`` (it removes the dilations, pads and ceil_mode as the tap form does), which is its
    ``alternative`` where a runtime served computes it wrongly (LiteRT)."""

    name = "lattice"
    rank = 2.5

    def check(self, node, p, shape, opset, graph=None):
        """As ``Replacement.check``, and the model's opset is 11 or newer."""
        reason = super().check(node, p, shape, opset)
        if reason is None and opset < 11:
            return f"a dilated pool is rewritten with opset 11 or newer (the model has {opset})"
        return reason

    def write(self, node, p, shape, opset, prefix, elem_type, graph=None):
        """``plan.dilated.dilated_onnx_plan`` of ``p`` on ``shape``'s spatial size, as nodes."""
        plan = dilated_onnx_plan(_op(p), tuple(shape[2:]), p.kernel, p.strides, p.dilations, p.pads_before,
                                 p.pads_after, p.ceil_mode, p.count_include_pad)
        nodes, inits = dilated_nodes(plan, node.input[0], node.output[0], opset, prefix, shape[1], elem_type)
        return Written(nodes, inits, " + ".join(plan.steps()))

    def wrong_on(self, p, shape, written):
        """As ``Replacement.wrong_on``, and LiteRT: onnx2tf lays out the Reshapes of this form wrongly at some
        sizes (measured 2026-12-05: finite values wrong on 4 of 18 small random cases, 1-D and 2-D, where the
        tap form was right), so LiteRT keeps the tap form."""
        return {**super().wrong_on(p, shape, written),
                "litert": "onnx2tf lays out the Reshapes of the sub-lattice form wrongly at some sizes"}


LATTICE = Lattice()
LATTICE.alternative = TAPS


# -- MaxPool's Indices output and MaxUnpool (plan.indices; the walk torch's form takes too) ----------------------

class Argmax(Replacement):
    """A MaxPool whose Indices output is used: its values and ONNX's int64 indices by ``plan.indices``'s
    ScatterND-free form (``backend.onnx_nodes.argmax_nodes``: each window's first maximum within its plane,
    plus the plane's offset ``(n * C + c) * prod(spatial)``), any pads, dilations and ceil_mode, 1-3 axes. It
    also writes the per-plane float32 index, which ``UNPOOL`` takes for a MaxUnpool of these indices. It
    needs the graph (``graph``: ``apply.Graph``): the input's element type, and where it registers that index."""

    name = "argmax"
    rank = 4  # it writes every attribute out itself: the other rules' forms are not needed

    def check(self, node, p, shape, opset, graph=None):
        """Why the index form cannot be written: C or a spatial size that is not static, an opset below 11, an
        input that is not float32, storage_order 1, or a plan refusal (a window of padding only, 2^24 cells or
        more per plane). A dynamic batch is fine: the plane offsets then follow it (``argmax_nodes``)."""
        if shape is None:
            return "its input size is not static"
        if opset < 11:
            return f"its indices are rewritten with opset 11 or newer (the model has {opset})"
        if graph is not None and graph.elem_type(node.input[0]) != onnx.TensorProto.FLOAT:
            return "its input is not float32 (the index form computes in float32)"
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("storage_order", 0):
            return "its storage_order is 1 (column-major indices have no form here)"
        try:
            onnx_argmax_plan(tuple(shape[2:]), p.kernel, p.strides, p.pads_before, p.pads_after, p.dilations,
                             p.ceil_mode)
        except PoolportError as e:
            return str(e)
        return None

    def write(self, node, p, shape, opset, prefix, elem_type, graph=None):
        """``argmax_nodes`` writing the node's two outputs (and the per-plane index, registered in ``graph``)."""
        plan = onnx_argmax_plan(tuple(shape[2:]), p.kernel, p.strides, p.pads_before, p.pads_after, p.dilations,
                                p.ceil_mode)
        plane = f"{prefix}_plane_index"
        values = node.output[0] or f"{prefix}_values"
        nodes, inits = argmax_nodes(plan, node.input[0], values, plane, tuple(shape), prefix, opset, node.output[1])
        if graph is not None:
            graph.planes[node.output[1]] = plane
        return Written(nodes, inits, f"{len(plan.taps())} tap planes + first-maximum scan + Cast + plane offsets")

    def wrong_on(self, p, shape, written):
        """LiteRT: onnx2tf computes this form wrongly or refuses it (measured 2026-12-05 on the written graphs:
        indices 11 of 36 off in 1-D, -inf values as -3.4e38, "Dimensions must be equal" with pads; on torch's
        form of the same walk it mis-converts the Clip(0, 1) step)."""
        return {"litert": "onnx2tf computes it wrongly or refuses it (indices wrong, -inf values as -3.4e38)"}


class Unpool(Replacement):
    """A MaxUnpool of the indices of a MaxPool with the same kernel, strides and pads (no dilation, SegNet's
    pair), unpooled to that MaxPool's input shape: ``plan.indices``'s ScatterND-free unpooling
    (``backend.onnx_nodes.unpool_nodes``) at the per-plane index ``ARGMAX`` wrote for that MaxPool, or, where
    the MaxPool was not rewritten, at the index form written again from the MaxPool's input. Indices from
    anywhere else: the node is kept."""

    name = "unpool"
    rank = 0

    def _source(self, node, p, shape, opset, graph):
        """``(reason, None)`` or ``(None, (producer, its attributes, its input shape, the unpooling plan))``."""
        if shape is None:
            return "its input size is not static", None
        producer = graph.producers.get(node.input[1]) if graph is not None and len(node.input) > 1 else None
        if producer is None or producer.op_type != "MaxPool" or list(producer.output[1:2]) != [node.input[1]]:
            return "its indices do not come straight from a MaxPool's Indices output", None
        source = graph.static_shape(producer.input[0])
        if source is None:
            return "the input size of the MaxPool its indices come from is not static", None
        q = read_attrs(producer, tuple(source[2:]), source[1])
        if (q.kernel, q.strides, q.pads_before, q.pads_after) != (p.kernel, p.strides, p.pads_before, p.pads_after):
            return "its kernel, strides or pads differ from those of the MaxPool its indices come from", None
        if any(d != 1 for d in q.dilations):
            return "the MaxPool its indices come from is dilated", None
        reason = ARGMAX.check(producer, q, source, opset, graph)
        if reason is not None:
            return f"the MaxPool its indices come from has no index form: {reason}", None
        pooled = onnx_argmax_plan(tuple(source[2:]), q.kernel, q.strides, q.pads_before, q.pads_after, q.dilations,
                                  q.ceil_mode).out_size
        if pooled != tuple(shape[2:]):  # onnx's shape inference keeps a ceil_mode window that starts in the padding
            return (f"its input size {list(shape[2:])} (onnx's shape inference) is not the {list(pooled)} its MaxPool "
                    f"computes (a ceil_mode window that starts in the padding)"), None
        want = tuple(source[1:])
        default = tuple((n - 1) * s + k - b - e for n, s, k, b, e in
                        zip(shape[2:], p.strides, p.kernel, p.pads_before, p.pads_after))
        if len(node.input) > 2 and node.input[2]:
            given = graph.constant(node.input[2])
            if given is None or tuple(int(v) for v in given[1:]) != want:
                return "its output_shape is not the MaxPool's input shape (as a constant)", None
            if any(g < d for g, d in zip(want[1:], default)):
                return (f"its output_shape {list(want[1:])} is below MaxUnpool's default {list(default)} (ONNX Runtime "
                        f"refuses such a node)"), None
        elif (shape[1], *default) != want:
            return "its output shape is not the MaxPool's input shape (its flat indices would land elsewhere)", None
        try:
            plan = unpool_plan(tuple(shape[2:]), p.kernel, p.strides, p.pads_before, tuple(source[2:]))
        except PoolportError as e:
            return str(e), None
        return None, (producer, q, source, plan)

    def check(self, node, p, shape, opset, graph=None):
        """Why the unpooling form cannot be written (see the class)."""
        return self._source(node, p, shape, opset, graph)[0]

    def write(self, node, p, shape, opset, prefix, elem_type, graph=None):
        """``unpool_nodes`` at the per-plane index of the producing MaxPool (written again where needed)."""
        _, (producer, q, source, plan) = self._source(node, p, shape, opset, graph)
        plane = graph.planes.get(node.input[1])
        nodes, inits = [], []
        if plane is None:  # its MaxPool stays: the index form again, from the MaxPool's input (values unused)
            argmax = onnx_argmax_plan(tuple(source[2:]), q.kernel, q.strides, q.pads_before, q.pads_after,
                                      q.dilations, q.ceil_mode)
            plane = f"{prefix}_plane_index"
            nodes, inits = argmax_nodes(argmax, producer.input[0], f"{prefix}_values", plane, tuple(source),
                                        f"{prefix}_argmax", opset)
        more, more_inits = unpool_nodes(plan, node.input[0], plane, node.output[0], shape[1], prefix, opset)
        return Written(nodes + more, inits + more_inits,
                       f"{len(plan.candidates())} candidate windows per cell at the MaxPool's per-plane indices")

    def wrong_on(self, p, shape, written):
        """LiteRT: onnx2tf refuses this form ("Dimensions must be equal", measured 2026-12-05 on the written
        graphs, 1-D to 3-D) and computes torch's form of the same walk wrongly (119 of 600 cells)."""
        return {"litert": "onnx2tf refuses it or computes it wrongly (measured)"}


ARGMAX, UNPOOL = Argmax(), Unpool()
