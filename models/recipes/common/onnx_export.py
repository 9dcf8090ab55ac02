"""torch -> ONNX export of one subgraph, shared by the recipes."""
import os

import onnx
import torch

OPSET = 17


def export(module, args, path, input_names, output_names, dynamic_axes, name_output_axes=False):
    """Exports `module` traced on `args` to `path` (opset 17, constant folding), checks the file
    with onnx's full checker and returns the model. With `name_output_axes`, the dynamic output
    axes get the names given in `dynamic_axes` (the tracer invents its own) and the file is
    rewritten."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, path, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes,
                          do_constant_folding=True)
    m = onnx.load(path)
    if name_output_axes:
        for o in m.graph.output:
            if o.name in dynamic_axes:
                dims = o.type.tensor_type.shape.dim
                for ax, nm in dynamic_axes[o.name].items():
                    dims[ax].ClearField("dim_value")
                    dims[ax].dim_param = nm
    onnx.checker.check_model(m, full_check=True)
    if name_output_axes:
        onnx.save(m, path)
    return m
