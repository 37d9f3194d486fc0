"""Rule: aten adaptive pooling nodes in an FX graph -> poolport's adaptive pooling.

Used for ``torch.export`` archives (``.pt2``), whose graphs hold ``aten.adaptive_*`` calls that no
Python-level interception can reach. Pattern: a ``call_function`` node whose target is one of the
aten adaptive ops. Replacement: a call to ``poolport.functional.adaptive.adaptive_pool`` (native in
eager, portable when exported); for max ops that return ``(values, indices)``, the ``getitem(node, 0)``
users are rewired to the values. A node whose indices are used is left as it is and reported.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx

from ..functional.adaptive import adaptive_pool

aten = torch.ops.aten

# target -> (op, d, returns (values, indices))
PATTERNS = {
    aten.adaptive_avg_pool1d.default: ("avg", 1, False),
    aten.adaptive_avg_pool2d.default: ("avg", 2, False),
    aten._adaptive_avg_pool2d.default: ("avg", 2, False),
    aten.adaptive_avg_pool3d.default: ("avg", 3, False),
    aten._adaptive_avg_pool3d.default: ("avg", 3, False),
    aten.adaptive_max_pool1d.default: ("max", 1, True),
    aten.adaptive_max_pool2d.default: ("max", 2, True),
    aten.adaptive_max_pool3d.default: ("max", 3, True),
}


def poolport_adaptive_avg(x, output_size, d: int, site: str | None = None):
    """What a rewritten ``aten.adaptive_avg_pool*`` node calls."""
    return adaptive_pool(x, list(output_size), "avg", d, site=site)


def poolport_adaptive_max(x, output_size, d: int, site: str | None = None):
    """What a rewritten ``aten.adaptive_max_pool*`` node calls (values only)."""
    return adaptive_pool(x, list(output_size), "max", d, site=site)


torch.fx.wrap("poolport_adaptive_avg")
torch.fx.wrap("poolport_adaptive_max")


@dataclass(frozen=True)
class FxNodeRewrite:
    """An aten adaptive pooling node of an FX graph: rewritten to poolport's, or kept and why."""

    node: str
    target: str
    action: str  # "rewritten" | "kept: indices used"

    def __str__(self) -> str:
        return f"{self.node} ({self.target}): {self.action}"


def rewrite_adaptive(gm: torch.fx.GraphModule) -> list[FxNodeRewrite]:
    """Apply the rule to every matching node of ``gm`` in place; returns what it did."""
    graph = gm.graph
    changes: list[FxNodeRewrite] = []
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in PATTERNS:
            continue
        op, d, pair = PATTERNS[node.target]
        x, output_size = node.args[0], node.args[1]
        fn = poolport_adaptive_avg if op == "avg" else poolport_adaptive_max
        if pair:
            users = list(node.users)
            if any(not (u.target is operator.getitem and u.args[1] in (0, 1)) for u in users) or any(
                u.args[1] == 1 and u.users for u in users
            ):
                changes.append(FxNodeRewrite(node.name, str(node.target), "kept: indices used (not portable)"))
                continue
            with graph.inserting_before(node):
                values = graph.call_function(fn, (x, output_size, d), {"site": f"node {node.name}"})
            for u in users:
                if u.args[1] == 0:
                    u.replace_all_uses_with(values)
                graph.erase_node(u)
            graph.erase_node(node)
        else:
            with graph.inserting_before(node):
                values = graph.call_function(fn, (x, output_size, d), {"site": f"node {node.name}"})
            node.replace_all_uses_with(values)
            graph.erase_node(node)
        changes.append(FxNodeRewrite(node.name, str(node.target), "rewritten"))
    graph.lint()
    gm.recompile()
    return changes
