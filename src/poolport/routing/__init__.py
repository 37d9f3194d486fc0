"""Routing torch's own adaptive pooling calls to poolport: ``make_portable`` (a portable copy of a
model) and ``patch()`` (a block inside which every call is routed), sharing one module swap."""
