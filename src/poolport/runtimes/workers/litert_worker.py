"""Convert an ONNX model to LiteRT with onnx2tf and run the .tflite file with LiteRT's interpreter.
Runs in onnx2tf's own Python environment (onnx2tf pins old onnx, onnxruntime, numpy and protobuf), as
``python litert_worker.py JOB.json`` (see ``protocol.py``).

Two traps handled here: onnx2tf overwrites its input with an onnxsim-simplified copy, so it converts a
copy in the job's folder; for inputs shaped like images with 3 channels it downloads a calibration file,
so a local one (random, only used for onnx2tf's own dummy inference) is put where it looks first."""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol  # noqa: E402

CALIBRATION = "calibration_image_sample_data_20x128x128x3_float32.npy"


def version():
    from importlib.metadata import version as v

    return f"onnx2tf {v('onnx2tf')} + ai-edge-litert {v('ai-edge-litert')}"


def convert(job):
    import numpy as np

    work = job["workdir"]
    os.chdir(work)  # onnx2tf looks for the calibration file in the working folder
    calibration = os.path.join(work, CALIBRATION)
    if not os.path.exists(calibration):
        np.save(calibration, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    copy = os.path.join(work, "model.onnx")
    shutil.copyfile(job["onnx"], copy)  # onnx2tf overwrites the file it is given
    out = os.path.join(work, "tflite")
    import onnx2tf

    fixed = fixed_shapes(job)
    try:
        onnx2tf.convert(input_onnx_file_path=copy, output_folder_path=out, non_verbose=True,
                        copy_onnx_input_output_names_to_tflite=True, overwrite_input_shape=fixed or None)
    except Exception as e:
        if not fixed:
            raise
        # the size-generic graph (dynamic H/W) is beyond onnx2tf even at a fixed size (it lays the run-time
        # window matrices out wrongly): LiteRT runs static sizes, so export one model per size for it
        raise RuntimeError(f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''} "
                           f"(converting with the dynamic inputs fixed at {', '.join(fixed)}; LiteRT models have "
                           f"static sizes: export with static H/W for LiteRT)") from None
    path = os.path.join(out, "model_float32.tflite")
    if not os.path.exists(path):
        raise RuntimeError("onnx2tf wrote no model_float32.tflite")
    return path


def fixed_shapes(job):
    """onnx2tf's ``overwrite_input_shape`` for an ONNX model whose inputs have symbolic sizes (dynamic H/W):
    each such input at the shape of the array it is run with (``name:d0,d1,...``). A LiteRT model has
    static sizes, so a dynamic ONNX model is converted once per input size. Empty for static models."""
    import numpy as np
    import onnx

    model = onnx.load(job["onnx"], load_external_data=False)
    arrays = np.load(job["inputs"])
    order = [name for name in arrays.files]
    fixed = []
    for i, value in enumerate(model.graph.input):
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            continue
        key = value.name if value.name in arrays.files else (order[i] if i < len(order) else None)
        if key is None:
            continue
        fixed.append(f"{value.name}:{','.join(str(n) for n in arrays[key].shape)}")
    return fixed


def channels_last(shape):
    shape = list(shape)
    return shape if len(shape) < 3 else [shape[0]] + shape[2:] + [shape[1]]


def to_channels_first(a):
    import numpy as np

    return a if a.ndim < 3 else np.moveaxis(a, -1, 1)


def run(job, path, inputs):
    """The model at ``path`` run on ``inputs`` (``(onnx name, array)`` pairs), its outputs in the order of
    ``job["output_names"]``, each channels-first again. The interpreter's tensor lists order a model with
    several inputs or outputs unlike the ONNX graph (measured: inputs ``xs_1, xs_0, xs_2``; outputs
    ``PartitionedCall:1, :0, :2``, the values and indices of a MaxPool swapped), so both are matched by
    their ONNX names through the model's signature; where onnx2tf renamed outputs there (a MaxPool's
    ``y, z`` became ``z, z_1``), by k of ``PartitionedCall:k`` (the signature's outputs in sorted order);
    by position where neither is there."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=1)
    interp.allocate_tensors()
    details, outs = interp.get_input_details(), interp.get_output_details()
    by_name, by_out = {d["name"]: d for d in details}, {d["name"]: d for d in outs}
    # tensor indices only: a signature runner holds references that make a later invoke fail
    signatures = getattr(interp, "_get_full_signature_list", dict)()
    sig = next(iter(signatures.values())) if len(signatures) == 1 else {}
    sig_in, sig_out = sig.get("inputs", {}), sig.get("outputs", {})
    index = {d["index"]: d for d in details + outs}
    if all(sig_in.get(name) in index for name, _ in inputs):
        by_name = {name: index[sig_in[name]] for name, _ in inputs}
    position = [re.fullmatch(r".*:(\d+)", d["name"]) for d in outs]
    if all(sig_out.get(name) in index for name in job["output_names"]):
        by_out = {name: index[sig_out[name]] for name in job["output_names"]}
    elif all(position) and sorted(int(m.group(1)) for m in position) == list(range(len(outs))):
        by_position = {int(m.group(1)): d for m, d in zip(position, outs)}
        by_out = {name: by_position[k] for k, name in enumerate(job["output_names"]) if k in by_position}
    for i, (name, a) in enumerate(inputs):
        d = by_name.get(name, details[i] if i < len(details) else None)
        if d is None:
            raise RuntimeError(f"the LiteRT model has no input for {name}")
        interp.set_tensor(d["index"], feed_for(name, a, d))
    interp.invoke()
    results = []
    for i, (name, expected) in enumerate(zip(job["output_names"], job["expected_shapes"])):
        d = by_out.get(name, outs[i] if i < len(outs) else None)
        if d is None:
            raise RuntimeError(f"the LiteRT model has no output for {name}")
        results.append(from_litert(interp.get_tensor(d["index"]), expected))
    return results


def feed_for(name, a, d):
    """``a`` laid out as LiteRT's input ``d`` wants it: onnx2tf makes rank 3-5 inputs channels-last; where
    both layouts have the same shape, it did too."""
    import numpy as np

    want = list(d["shape"])
    if a.ndim >= 3 and want == channels_last(a.shape):
        feed = np.ascontiguousarray(np.moveaxis(a, 1, -1))
    elif want == list(a.shape):
        feed = a
    else:
        raise RuntimeError(f"input {name}: LiteRT expects shape {want}, given {list(a.shape)}")
    return feed.astype(d["dtype"])


def from_litert(got, expected):
    """A LiteRT output channels-first again where its shape is ``expected`` channels-last."""
    if got.ndim >= 3 and list(got.shape) == channels_last(expected):
        got = to_channels_first(got)
    return got


if __name__ == "__main__":
    protocol.main(convert, run, version)
