"""A tiny ONNX interpreter (torch ops) for the handful of ops the recipes' exported graphs use,
shared by all recipes (there is no onnxruntime for Python on this machine). Each recipe puts
models/recipes/common on sys.path and runs its exported files through `run` to verify them."""
import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _axes(v, nd):
    return [int(a) % nd for a in v]


def run(path_or_model, feeds):
    m = onnx.load(path_or_model) if isinstance(path_or_model, str) else path_or_model
    g = m.graph
    env = {}
    for init in g.initializer:
        env[init.name] = torch.from_numpy(numpy_helper.to_array(init).copy())
    for k, v in feeds.items():
        env[k] = torch.as_tensor(v)
    for node in g.node:
        a = _attrs(node)
        x = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Constant":
            y = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
        elif op == "Identity":
            y = x[0]
        elif op == "Add":
            y = x[0] + x[1]
        elif op == "Sub":
            y = x[0] - x[1]
        elif op == "Mul":
            y = x[0] * x[1]
        elif op == "Div":
            y = x[0] / x[1] if x[0].is_floating_point() else torch.div(x[0], x[1], rounding_mode="trunc")
        elif op == "Pow":
            y = x[0] ** x[1]
        elif op == "Sqrt":
            y = torch.sqrt(x[0])
        elif op == "Erf":
            y = torch.erf(x[0])
        elif op == "Tanh":
            y = torch.tanh(x[0])
        elif op == "MatMul":
            y = torch.matmul(x[0], x[1])
        elif op == "Gemm":
            A, B = x[0], x[1]
            if a.get("transA", 0):
                A = A.t()
            if a.get("transB", 0):
                B = B.t()
            y = a.get("alpha", 1.0) * (A @ B)
            if len(x) > 2 and x[2] is not None:
                y = y + a.get("beta", 1.0) * x[2]
        elif op == "Shape":
            y = torch.tensor(list(x[0].shape), dtype=torch.int64)
        elif op == "Gather":
            ax = a.get("axis", 0)
            idx = x[1]
            y = torch.index_select(x[0], ax, idx.reshape(-1) % x[0].shape[ax])
            y = y.reshape(list(x[0].shape[:ax]) + list(idx.shape) + list(x[0].shape[ax + 1:]))
        elif op == "Unsqueeze":
            axes = x[1].tolist()
            nd = x[0].dim() + len(axes)
            y = x[0]
            for ax in sorted(int(v) % nd for v in axes):
                y = y.unsqueeze(ax)
        elif op == "Squeeze":
            y = x[0]
            for ax in sorted(_axes(x[1].tolist(), x[0].dim()), reverse=True):
                y = y.squeeze(ax)
        elif op == "Concat":
            y = torch.cat(x, dim=a["axis"])
        elif op == "Reshape":
            shape = x[1].tolist()
            shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            y = x[0].reshape(shape)
        elif op == "Transpose":
            y = x[0].permute(*a["perm"])
        elif op == "Flatten":
            ax = a.get("axis", 1)
            y = x[0].reshape(int(np.prod(x[0].shape[:ax])), -1)
        elif op == "Softmax":
            y = torch.softmax(x[0], dim=a.get("axis", -1))
        elif op == "LayerNormalization":
            ax = a.get("axis", -1) % x[0].dim()
            shp = list(x[0].shape[ax:])
            y = F.layer_norm(x[0], shp, x[1], x[2] if len(x) > 2 else None, a.get("epsilon", 1e-5))
        elif op == "Clip":
            lo = x[1] if len(x) > 1 and x[1] is not None else None
            hi = x[2] if len(x) > 2 and x[2] is not None else None
            y = x[0]
            if lo is not None:
                y = torch.maximum(y, lo.to(y.dtype))
            if hi is not None:
                y = torch.minimum(y, hi.to(y.dtype))
        elif op == "Neg":
            y = -x[0]
        elif op == "Relu":
            y = torch.relu(x[0])
        elif op == "Conv" and x[0].dim() == 3:
            pads = a.get("pads", [0, 0])
            assert pads[0] == pads[1]
            y = F.conv1d(x[0], x[1], x[2] if len(x) > 2 else None, stride=a.get("strides", [1])[0],
                         padding=pads[0], dilation=a.get("dilations", [1])[0],
                         groups=a.get("group", 1))
        elif op == "Pad":
            assert a.get("mode", b"constant") in (b"constant", "constant")
            p = x[1].tolist()
            nd = x[0].dim()
            tp = []
            for ax in reversed(range(nd)):
                tp += [p[ax], p[ax + nd]]
            val = float(x[2]) if len(x) > 2 and x[2] is not None and x[2].numel() else 0.0
            y = F.pad(x[0], tp, value=val)
        elif op == "LogSoftmax":
            y = torch.log_softmax(x[0], dim=a.get("axis", -1))
        elif op == "Conv":
            pads = a.get("pads", [0, 0, 0, 0])
            assert pads[0] == pads[2] and pads[1] == pads[3]
            y = F.conv2d(x[0], x[1], x[2] if len(x) > 2 else None, stride=a.get("strides", 1),
                         padding=(pads[0], pads[1]), dilation=a.get("dilations", 1),
                         groups=a.get("group", 1))
        elif op == "BatchNormalization":
            y = F.batch_norm(x[0], x[3], x[4], x[1], x[2], False, 0.0, a.get("epsilon", 1e-5))
        elif op == "ReduceMean":
            y = x[0].mean(dim=a["axes"], keepdim=bool(a.get("keepdims", 1)))
        elif op == "ReduceSum":
            axes = x[1].tolist() if len(x) > 1 and x[1] is not None else list(range(x[0].dim()))
            y = x[0].sum(dim=axes, keepdim=bool(a.get("keepdims", 1)))
        elif op == "TopK":
            k = int(x[1].reshape(-1)[0])
            v, i = torch.topk(x[0], k, dim=a.get("axis", -1), largest=bool(a.get("largest", 1)),
                              sorted=bool(a.get("sorted", 1)))
            env[node.output[0]] = v
            env[node.output[1]] = i
            continue
        elif op == "ConstantOfShape":
            val = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            y = torch.full(x[0].tolist(), float(val.reshape(-1)[0]),
                           dtype=torch.from_numpy(val.copy()).dtype)
        elif op == "ScatterElements":
            assert a.get("reduction", "none") == "none"
            y = x[0].scatter(a.get("axis", 0), x[1], x[2])
        elif op == "Slice":
            starts, ends = x[1].tolist(), x[2].tolist()
            axes = x[3].tolist() if len(x) > 3 and x[3] is not None else list(range(len(starts)))
            steps = x[4].tolist() if len(x) > 4 and x[4] is not None else [1] * len(starts)
            y = x[0]
            for s, e, ax, st in zip(starts, ends, axes, steps):
                ax = int(ax) % y.dim()
                n = y.shape[ax]
                if st > 0:
                    s = max(0, min(n, s + n if s < 0 else s))
                    e = max(0, min(n, e + n if e < 0 else e))
                else:  # ONNX: start clamps to [0, n-1], end to [-1, n-1]
                    s = max(-1, min(n - 1, s + n if s < 0 else s))
                    e = max(-1, min(n - 1, e + n if e < 0 else e))
                idx = torch.arange(s, e, st, dtype=torch.int64)
                y = torch.index_select(y, ax, idx)
        elif op == "Cast":
            y = x[0].to({1: torch.float32, 7: torch.int64, 6: torch.int32, 9: torch.bool}[a["to"]])
        elif op == "Expand":
            y = x[0] * torch.ones(x[1].tolist(), dtype=x[0].dtype)
        else:
            raise NotImplementedError(op)
        env[node.output[0]] = y
    return {o.name: env[o.name].numpy() for o in g.output}


def ops_used(path):
    return sorted({n.op_type for n in onnx.load(path).graph.node})
