"""Routing torch's own adaptive pooling calls to poolport: ``make_portable`` (a portable copy of a
model) and ``patch()`` (a block inside which every call is routed), sharing one module swap; and the
same routing for graphs no Python-level interception reaches: ``fx_graph`` rewrites the aten adaptive
pooling nodes of ``torch.export`` programs (``.pt2`` archives), rule by rule."""
