"""ONNX files: everything poolport knows about a model on disk, whoever wrote it.

``graph`` reads a graph (its opset, its operator counts, which operators pooling may export to);
``files`` finds a model's external data and gives any model as a path; ``staging`` stages a model
beside its destination, checks it there and publishes it atomically; ``ir`` picks the IR version a
model is published at; ``paths`` decides whether a path may be written. Nothing here knows torch's
exporters or the legalizer: those sit above and use this.
"""
