"""Architecture specs: rebuild standard ``torch.nn`` models with no class to import.

A model made only of ``nn.Sequential`` and a fixed set of standard layers is
described as JSON, e.g.::

    {"type": "Sequential", "children": [
        ["0", {"type": "Linear", "args": {"in_features": 4, "out_features": 8, "bias": true}}],
        ["1", {"type": "ReLU", "args": {"inplace": false}}]]}

The spec is data, never code: :func:`build_spec` maps each ``type`` through
:data:`LAYER_ARGS`, a fixed table, and passes only the argument names listed
there, so an artifact cannot make mlnb import or call anything else.  Layers
must be exactly these classes (a subclass may change ``forward``), and
:func:`read_spec` only returns a spec whose rebuilt model has the same
structure and ``repr`` as the original, checked on the ``meta`` device so
nothing is allocated.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from mlnb.errors import InvalidArgument

__all__ = ["LAYER_ARGS", "build_spec", "read_spec"]

# layer -> constructor arguments read back from attributes of the same name
# ("bias" is special-cased: it is a flag in the constructor, a tensor or None on the layer).
_CONV_ARGS = (
    "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
    "bias", "padding_mode",
)
LAYER_ARGS: dict[str, tuple[str, ...]] = {
    "AdaptiveAvgPool2d": ("output_size",),
    "AvgPool2d": (
        "kernel_size",
        "stride",
        "padding",
        "ceil_mode",
        "count_include_pad",
        "divisor_override",
    ),
    "BatchNorm1d": ("num_features", "eps", "momentum", "affine", "track_running_stats", "bias"),
    "BatchNorm2d": ("num_features", "eps", "momentum", "affine", "track_running_stats", "bias"),
    "Conv1d": _CONV_ARGS,
    "Conv2d": _CONV_ARGS,
    "Dropout": ("p", "inplace"),
    "Embedding": (
        "num_embeddings",
        "embedding_dim",
        "padding_idx",
        "max_norm",
        "norm_type",
        "scale_grad_by_freq",
        "sparse",
    ),
    "Flatten": ("start_dim", "end_dim"),
    "GELU": ("approximate",),
    "Identity": (),
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine", "bias"),
    "LeakyReLU": ("negative_slope", "inplace"),
    "Linear": ("in_features", "out_features", "bias"),
    "LogSoftmax": ("dim",),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"),
    "ReLU": ("inplace",),
    "SiLU": ("inplace",),
    "Sigmoid": (),
    "Softmax": ("dim",),
    "Tanh": (),
}
# Layers whose "bias" flag is keyword-only and recent: recorded only when False,
# so the common spec still builds on older torch versions.
_OPTIONAL_BIAS = {"BatchNorm1d", "BatchNorm2d", "LayerNorm"}
_MAX_DEPTH = 32


def _classes(nn: Any) -> dict[str, type]:
    # getattr only on the fixed names of LAYER_ARGS, never on a name from a spec.
    table = {name: getattr(nn, name) for name in LAYER_ARGS}
    table["Sequential"] = nn.Sequential
    return table


def _jsonify(value: Any) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_jsonify(v) for v in value]
    if value is None or type(value) in (bool, int, float, str):
        return value
    raise TypeError(f"unexpected layer attribute {value!r}")


def _leaf_args(name: str, module: Any) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for arg in LAYER_ARGS[name]:
        if arg != "bias":
            args[arg] = _jsonify(getattr(module, arg))
        elif name not in _OPTIONAL_BIAS:
            args[arg] = module.bias is not None
        else:
            affine = module.affine if name != "LayerNorm" else module.elementwise_affine
            if affine and module.bias is None:
                args[arg] = False
    return args


def _describe(module: Any, classes: dict[str, type], depth: int) -> dict[str, Any] | None:
    if depth > _MAX_DEPTH:
        return None
    name = next((n for n, cls in classes.items() if type(module) is cls), None)
    if name is None:
        return None
    if name == "Sequential":
        children = []
        for child_name, child in module.named_children():
            spec = _describe(child, classes, depth + 1)
            if spec is None:
                return None
            children.append([child_name, spec])
        return {"type": "Sequential", "children": children}
    if len(module._modules):
        return None
    try:
        return {"type": name, "args": _leaf_args(name, module)}
    except (AttributeError, TypeError):
        return None


def _shapes(module: Any) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def read_spec(model: Any) -> dict[str, Any] | None:
    """Describe *model* as a spec, or return None when it is not built only from standard layers."""
    import torch

    spec = _describe(model, _classes(torch.nn), 0)
    if spec is None:
        return None
    try:
        with torch.device("meta"):
            rebuilt = _build(spec, _classes(torch.nn), 0, meta=True)
    except InvalidArgument:
        return None
    # A layer edited after construction (a replaced weight, a changed attribute)
    # would rebuild differently: then record no spec rather than a wrong one.
    if repr(rebuilt) != repr(model) or _shapes(rebuilt) != _shapes(model):
        return None
    return spec


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def _build(spec: Any, classes: dict[str, type], depth: int, *, meta: bool = False) -> Any:
    if depth > _MAX_DEPTH:
        raise InvalidArgument(f"architecture spec is nested deeper than {_MAX_DEPTH} levels")
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise InvalidArgument(f"malformed architecture spec entry: {spec!r:.200}")
    kind = spec["type"]
    if kind == "Sequential":
        children = spec.get("children")
        if not isinstance(children, list):
            raise InvalidArgument("architecture spec: Sequential needs a list of children")
        built: OrderedDict[str, Any] = OrderedDict()
        for item in children:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                raise InvalidArgument(f"architecture spec: bad Sequential child {item!r:.200}")
            if not item[0] or "." in item[0] or item[0] in built:
                raise InvalidArgument(f"architecture spec: bad child name {item[0]!r}")
            built[item[0]] = _build(item[1], classes, depth + 1, meta=meta)
        return classes["Sequential"](built)
    if kind not in LAYER_ARGS:
        raise InvalidArgument(
            f"architecture spec names layer type {kind!r:.100}, which is not one mlnb rebuilds; "
            "pass model_class= or into="
        )
    args = spec.get("args", {})
    if not isinstance(args, dict) or not set(args) <= set(LAYER_ARGS[kind]):
        raise InvalidArgument(f"architecture spec: bad arguments for {kind}: {args!r:.200}")
    kwargs = {k: _tupled(v) for k, v in args.items()}
    try:
        if meta and kind == "Embedding":
            # Embedding's random init on the meta device imports torch._dynamo (about 1 s);
            # only shapes matter there, so give it an empty weight and skip the init.
            import torch

            shape = (kwargs["num_embeddings"], kwargs["embedding_dim"])
            kwargs["_weight"] = torch.empty(shape, device="meta")
        return classes[kind](**kwargs)
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        raise InvalidArgument(
            f"architecture spec: cannot build {kind}({args!r:.200}): {err}"
        ) from err


def build_spec(spec: dict[str, Any]) -> Any:
    """Build the ``nn.Module`` a spec describes, from the fixed layer table only.

    Raises
    ------
    InvalidArgument
        The spec is malformed or names a layer outside :data:`LAYER_ARGS`.
    """
    import torch

    return _build(spec, _classes(torch.nn), 0)
