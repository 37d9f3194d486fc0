"""PyTorch 2 Export (PT2E) quantization of poolport's plans: ExecuTorch's ``XNNPACKQuantizer`` and
litert-torch's ``PT2EQuantizer``.

What those quantizers do with a plan (measured with executorch 1.5.1, litert-torch 0.10.0, torchao 0.18,
docs/quantization.md): neither annotates ``aten.avg_pool2d``, so every average pooling of a plan stays in
float between a dequantize and a quantize; litert-torch's quantizer does not annotate ``aten.slice`` either.
XNNPACK takes average pooling in fp32 only (ExecuTorch runs it inside the delegate with two converts), and
LiteRT's XNNPACK delegate does not take an int8 AVERAGE_POOL_2D at all (each one runs outside it, on the
CPU, splitting the graph into partitions). Both take int8 depthwise convolution, int8 ``mean`` over H and
W, int8 max pooling, slicing and concatenation.

``PoolingQuantizer`` wraps such a quantizer. Before annotation it rewrites each ``avg_pool2d`` without
padding, ``ceil_mode`` or ``divisor_override`` into an equivalent the delegates take in int8:

* a window covering the whole plane (a global bin): ``mean`` over H and W, keepdim;
* any other window: a depthwise convolution with every weight ``1 / (kh * kw)``, the same stride and no
  bias. Its int8 weight is exact (one value per channel quantizes to the top of the int8 range), so the
  int8 kernel sums the int8 inputs exactly and rounds once, at the output's scale.

In float both compute the same average (float rounding aside). Then the wrapped quantizer annotates,
and ``PoolingQuantizer`` completes what it leaves out: a ``slice`` it left unannotated shares its input's
quantization parameters, and a ``cat`` of pooled runs shares one set of parameters with every run it joins
(TFLite requires one scale across a CONCATENATION; without it the runs are requantized).
"""

from __future__ import annotations

from ..errors import PoolportError

AVG_MODES = ("conv", "shared")


def _pool_args(node):
    """``(input, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)`` of an
    ``aten.avg_pool2d`` node, with torch's defaults filled in."""
    args = list(node.args) + [None] * (7 - len(node.args))
    x, kernel, stride, padding, ceil_mode, count_include_pad, divisor = args[:7]
    kernel = [*kernel] if isinstance(kernel, (list, tuple)) else [kernel]
    kernel = kernel * 2 if len(kernel) == 1 else kernel
    stride = [*stride] if isinstance(stride, (list, tuple)) and stride else ([stride] if stride else kernel)
    stride = stride * 2 if len(stride) == 1 else stride
    padding = [*padding] if isinstance(padding, (list, tuple)) else [padding or 0]
    padding = padding * 2 if len(padding) == 1 else padding
    ceil_mode = bool(node.kwargs.get("ceil_mode", ceil_mode))
    divisor = node.kwargs.get("divisor_override", divisor)
    return x, kernel, stride, padding, ceil_mode, divisor


def rewrite_average_pooling(model):
    """Rewrite every ``aten.avg_pool2d`` node of the FX graph module ``model`` (as ``torch.export``
    writes it) that has no padding, no ``ceil_mode`` and no ``divisor_override`` and a static 4-D input:
    a whole-plane window into ``aten.mean.dim([-2, -1], keepdim=True)``, any other into a depthwise
    ``aten.conv2d`` with weights ``1 / (kh * kw)`` (a buffer on ``model``), in place.

    Returns:
        ``(convolutions, means)``: how many nodes became each.
    """
    import torch

    aten = torch.ops.aten
    convs = means = 0
    graph = model.graph
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != aten.avg_pool2d.default:
            continue
        x, kernel, stride, padding, ceil_mode, divisor = _pool_args(node)
        value = x.meta.get("val") if hasattr(x, "meta") else None
        if any(padding) or ceil_mode or divisor is not None or value is None or value.dim() != 4:
            continue
        channels, height, width = value.shape[-3:]
        if not all(isinstance(d, int) for d in (channels, height, width)):
            continue  # a symbolic size: leave the pooling as it is
        with graph.inserting_before(node):
            if kernel == [height, width]:
                new = graph.call_function(aten.mean.dim, (x, [-2, -1], True))
                means += 1
            else:
                name = f"_poolport_avg_weight_{node.name}"
                weight = torch.full((channels, 1, *kernel), 1.0 / (kernel[0] * kernel[1]), dtype=value.dtype)
                model.register_buffer(name, weight)
                w = graph.get_attr(name)
                w.meta["val"] = value.new_empty(weight.shape) if hasattr(value, "new_empty") else weight
                new = graph.call_function(aten.conv2d.default, (x, w, None, stride, [0, 0], [1, 1], channels))
                convs += 1
        new.meta.update({k: v for k, v in node.meta.items() if k != "quantization_annotation"})
        node.replace_all_uses_with(new)
        graph.erase_node(node)
    if convs or means:
        graph.lint()
        model.recompile()
    return convs, means


def annotate_pooling(model, activation_qspec, input_scale: bool = False) -> int:
    """Complete a quantizer's annotation of poolport's plans in the FX graph module ``model``, in place:

    * a ``slice``, ``max_pool2d`` or ``avg_pool2d`` (without padding) left unannotated shares its input's quantization parameters (its input
      edge gets ``activation_qspec`` where the input itself is not quantized);
    * a ``cat`` whose every input is the output of a slice, a pooling, ``mean`` or a depthwise convolution
      written by ``rewrite_average_pooling`` takes one set of parameters for all its inputs and its
      output: those of its first convolution's output, calibrated, which every other convolution's output
      shares (with ``input_scale``: each convolution's output shares its input's parameters instead, as
      the quantizers annotate the native adaptive op; measured worse, docs/quantization.md); a ``cat`` of
      runs that share their input's parameters (slices, max pooling) joins that group.

    Returns:
        The number of nodes annotated or re-annotated.
    """
    import torch
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    aten = torch.ops.aten
    key = "quantization_annotation"
    slices, pools = {aten.slice.Tensor, aten.slice_copy.Tensor}, {aten.max_pool2d.default, aten.avg_pool2d.default}
    changed = 0

    def annotated_output(node) -> bool:
        ann = node.meta.get(key)
        return ann is not None and ann.output_qspec is not None

    def pooled(node) -> bool:
        if node.op != "call_function":
            return False
        if node.target in slices | pools | {aten.mean.dim}:
            return True
        weight = node.args[1] if node.target == aten.conv2d.default and len(node.args) > 1 else None
        return weight is not None and weight.op == "get_attr" and str(weight.target).startswith("_poolport_avg_weight_")

    for node in model.graph.nodes:  # in topological order: a node's inputs are settled before it
        if node.op != "call_function":
            continue
        if node.target in slices | pools:
            if node.meta.get(key) is not None and node.meta[key]._annotated:
                continue
            if node.target == aten.avg_pool2d.default and any(_pool_args(node)[3]):
                continue  # zero padding can leave the input's range
            source = node.args[0]
            if annotated_output(source):
                spec = SharedQuantizationSpec(source)
                node.meta[key] = QuantizationAnnotation(input_qspec_map={source: spec}, output_qspec=spec,
                                                        _annotated=True)
            else:
                node.meta[key] = QuantizationAnnotation(input_qspec_map={source: activation_qspec},
                                                        output_qspec=SharedQuantizationSpec((source, node)),
                                                        _annotated=True)
            changed += 1
        elif node.target == aten.cat.default:
            inputs = list(node.args[0])
            if not inputs or not all(pooled(i) for i in inputs):
                continue
            convs = [i for i in inputs if i.target == aten.conv2d.default]
            if convs and input_scale:
                # every run at the scale of the tensor it pools (as the native op's annotation has it)
                for conv in convs:
                    ann = conv.meta.get(key)
                    source = conv.args[0]
                    spec = SharedQuantizationSpec(source) if annotated_output(source) else SharedQuantizationSpec(
                        (source, conv))
                    conv.meta[key] = QuantizationAnnotation(
                        input_qspec_map=dict(ann.input_qspec_map) if ann is not None else {source: activation_qspec},
                        output_qspec=spec, _annotated=True)
                changed += len(convs)
                shared = SharedQuantizationSpec(inputs[0])
            elif convs:
                # the first run's output observer holds the group: every run is quantized once, at the scale
                # it is concatenated at
                shared = SharedQuantizationSpec(convs[0])
                for conv in convs:
                    ann = conv.meta.get(key)
                    conv.meta[key] = QuantizationAnnotation(
                        input_qspec_map=dict(ann.input_qspec_map) if ann is not None else {},
                        output_qspec=activation_qspec if conv is convs[0] else shared, _annotated=True)
                changed += len(convs)
            elif all(annotated_output(i) for i in inputs):
                shared = SharedQuantizationSpec(inputs[0])  # runs at their input's parameters: join that group
            else:
                continue
            node.meta[key] = QuantizationAnnotation(input_qspec_map={i: shared for i in inputs}, output_qspec=shared,
                                                    _annotated=True)
            changed += 1
    return changed


def _torchao_quantizer():
    try:
        from torchao.quantization.pt2e.quantizer import Quantizer
    except ImportError as e:
        raise PoolportError(f"quantization: PT2E quantization needs torchao ({e.name} is missing): "
                            "pip install 'poolport[edge]' (executorch or litert-torch bring it).") from None
    return Quantizer


def PoolingQuantizer(quantizer, avg: str = "conv", input_scale: bool = False):  # noqa: N802  (a class factory: torchao is optional)
    """Wrap a PT2E ``quantizer`` (ExecuTorch's ``XNNPACKQuantizer``, litert-torch's ``PT2EQuantizer``, any
    torchao ``Quantizer`` with a ``global_config``) so that poolport's plans quantize to int8:
    ``prepare_pt2e(torch.export.export(model, args).module(), PoolingQuantizer(quantizer))``.

    Args:
        quantizer: the quantizer, configured (``set_global(...)``); its global configuration's output
            activation spec is the one given to inputs it leaves unquantized.
        avg: ``"conv"`` (default) rewrites average pooling as ``mean`` / depthwise convolution before
            annotation (``rewrite_average_pooling``), which both XNNPACK delegates take in int8;
            ``"shared"`` keeps ``avg_pool2d`` and annotates it to share its input's parameters.
        input_scale: quantize each rewritten run at its input's scale rather than at the calibrated scale of
            the Concat that joins the runs (the default; see ``annotate_pooling``).

    Every other attribute (``global_config``, ``set_global``, ...) is the wrapped quantizer's, so the wrapper
    goes wherever the quantizer went (litert-torch's ``QuantConfig(pt2e_quantizer=...)`` takes either).

    Raises:
        PoolportError: ``avg`` not in ("conv", "shared"), torchao missing, or a quantizer without a global
            configuration.
    """
    if avg not in AVG_MODES:
        raise PoolportError(f"quantization: avg={avg!r} is not a mode: choose from {', '.join(AVG_MODES)}.")
    base = _torchao_quantizer()
    config = getattr(quantizer, "global_config", None)
    qspec = getattr(config, "output_activation", None) or getattr(config, "input_activation", None)
    if qspec is None:
        raise PoolportError(f"quantization: {type(quantizer).__name__} has no global configuration with an "
                            "activation spec: call quantizer.set_global(config) before wrapping it.")

    class _PoolingQuantizer(base):
        def __init__(self):
            super().__init__()
            self.inner, self.avg, self.activation_qspec, self.input_scale = quantizer, avg, qspec, input_scale
            self.rewritten = (0, 0)
            self.annotated = 0

        def transform_for_annotation(self, model):
            model = self.inner.transform_for_annotation(model)
            if self.avg == "conv":
                self.rewritten = rewrite_average_pooling(model)
            return model

        def annotate(self, model):
            model = self.inner.annotate(model)
            self.annotated = annotate_pooling(model, self.activation_qspec, self.input_scale)
            return model

        def validate(self, model):
            return self.inner.validate(model)

        def __getattr__(self, name):
            if name == "inner":
                raise AttributeError(name)
            return getattr(self.inner, name)

    _PoolingQuantizer.__name__ = _PoolingQuantizer.__qualname__ = "PoolingQuantizer"
    return _PoolingQuantizer()
