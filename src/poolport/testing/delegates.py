"""What a delegated LiteRT interpreter still runs itself (tests and benchmarks of the edge paths)."""

from __future__ import annotations

import collections


def outside_delegate(interpreter) -> tuple[collections.Counter, int]:
    """``(op name -> count of the ops the interpreter runs itself, number of DELEGATE nodes)`` for a LiteRT
    ``Interpreter`` with a delegate applied. An op is inside a partition when each of its outputs is a
    partition's output or read only by ops inside one."""
    ops = interpreter._get_ops_details()
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    produced = {t for o in delegates for t in o["outputs"]}
    consumed = {t for o in delegates for t in o["inputs"]}
    graph_outputs = {d["index"] for d in interpreter.get_output_details()}
    plain = [o for o in ops if o["op_name"] != "DELEGATE"]
    readers = collections.defaultdict(list)
    for o in plain:
        for t in o["inputs"]:
            readers[t].append(o["index"])
    inside = set()
    for o in reversed(plain):
        if all(t in produced or (t not in consumed and t not in graph_outputs and readers[t]
                                 and all(r in inside for r in readers[t])) for t in o["outputs"]):
            inside.add(o["index"])
    return collections.Counter(o["op_name"] for o in plain if o["index"] not in inside), len(delegates)


def run_float(interpreter, x):
    """One run of a LiteRT ``Interpreter`` on the float array ``x`` (a torch tensor or numpy array), through
    the model's own int8 input and output parameters where it has them; returns a float array."""
    import numpy as np

    i, o = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    v = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    if i["dtype"] != np.float32:
        scale, zero = i["quantization"]
        v = np.clip(np.round(v / scale) + zero, -128, 127).astype(i["dtype"])
    interpreter.set_tensor(i["index"], v)
    interpreter.invoke()
    y = interpreter.get_tensor(o["index"]).copy()
    if o["dtype"] != np.float32:
        scale, zero = o["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y
