"""Export the code-switching model as a MoeModal package (moemodal-package/1) and verify it."""
import json
import os
import sys
import shutil

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))  # onnx_eval, onnx_export
import onnx_eval  # noqa: E402
import onnx_export  # noqa: E402
from model import Dense, Head, MoeDense, Trunk0, TrunkN, N_EXPERTS

OPSET = onnx_export.OPSET


def _export(module, args, path, input_names, output_names, dynamic_axes):
    """onnx_export.export, naming the dynamic output axes (the C# validator reads them)."""
    return onnx_export.export(module, args, path, input_names, output_names, dynamic_axes, name_output_axes=True)


ROUTING = {"policy": "dense", "group": "item"}
LANGS = ["zh", "en"]


def export_graphs(model, out):
    D, L = model.dim, len(model.layers)
    feats = torch.randn(2, 203, 80)
    x = torch.randn(2, 51, D)
    flat = torch.randn(7, D)
    bt = {0: "batch", 1: "frames"}
    _export(Trunk0(model), (feats,), os.path.join(out, "trunk0.onnx"), ["feats"], ["x", "h"],
            {"feats": {0: "batch", 1: "time"}, "x": bt, "h": bt})
    for n in range(1, L):
        # ONNX cannot name an input and an output alike, so later trunks read `x_in`.
        _export(TrunkN(model, n), (x,), os.path.join(out, f"trunk{n}.onnx"), ["x_in"], ["x", "h"],
                {"x_in": bt, "x": bt, "h": bt})
    for n in range(L):
        moe = model.layers[n].moe
        _export(moe.gate, (flat,), os.path.join(out, f"moe{n}", "gate.onnx"), ["x"], ["logits"],
                {"x": {0: "tokens"}, "logits": {0: "tokens"}})
        for e in range(N_EXPERTS):
            _export(moe.experts[e], (flat,), os.path.join(out, f"moe{n}", f"expert{e}.onnx"),
                    ["x"], ["y"], {"x": {0: "tokens"}, "y": {0: "tokens"}})
        _export(MoeDense(moe), (flat, flat.clone()),
                os.path.join(out, "baseline", f"moe{n}_dense.onnx"), ["h", "residual"], ["out"],
                {"h": {0: "tokens"}, "residual": {0: "tokens"}, "out": {0: "tokens"}})
    _export(Head(model), (x,), os.path.join(out, "head.onnx"), ["x"], ["logits"],
            {"x": bt, "logits": bt})
    _export(Dense(model), (feats,), os.path.join(out, "baseline", "dense.onnx"), ["feats"],
            ["logits"], {"feats": {0: "batch", 1: "time"}, "logits": bt})


# ---------------------------------------------------------------------------------------------
# Piecewise execution in torch (what the C# runtime does with the dense policy)
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def moe_step(moe, h, residual):
    """Dense routing: every expert on every token, weights softmax(gate logits)."""
    shp = h.shape
    hf = h.reshape(-1, shp[-1])
    logits = moe.gate(hf)
    w = torch.softmax(logits, dim=-1)
    acc = torch.zeros_like(hf)
    for e in range(N_EXPERTS):
        acc += w[:, e:e + 1] * moe.experts[e](hf)
    return residual + acc.reshape(shp), w.reshape(shp[:-1] + (N_EXPERTS,))


@torch.no_grad()
def piecewise(model, feats):
    """feats [B,T,80] -> (logits [B,T',V], [gate weights [B,T',2] per moe step])."""
    weights = []
    x = None
    for n in range(len(model.layers)):
        xr, h = Trunk0(model)(feats) if n == 0 else TrunkN(model, n)(x)
        x, w = moe_step(model.layers[n].moe, h, xr)
        weights.append(w)
    return Head(model)(x), weights


def run_package_onnx(out, feats, n_layers):
    """Run the exported files (mini interpreter), composed like the runtime. Returns logits,
    gate weights per layer."""
    o = onnx_eval.run(os.path.join(out, "trunk0.onnx"), {"feats": feats})
    weights = []
    z = None
    for n in range(n_layers):
        if n > 0:
            o = onnx_eval.run(os.path.join(out, f"trunk{n}.onnx"), {"x_in": z})
        xr, h = o["x"], o["h"]
        hf = h.reshape(-1, h.shape[-1])
        lg = onnx_eval.run(os.path.join(out, f"moe{n}", "gate.onnx"), {"x": hf})["logits"]
        lg = lg.astype(np.float64)
        w = np.exp(lg - lg.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        acc = np.zeros_like(hf, dtype=np.float64)
        for e in range(N_EXPERTS):
            y = onnx_eval.run(os.path.join(out, f"moe{n}", f"expert{e}.onnx"), {"x": hf})["y"]
            acc += w[:, e:e + 1] * y
        z = (xr + acc.reshape(xr.shape)).astype(np.float32)
        weights.append(w.reshape(h.shape[:-1] + (N_EXPERTS,)))
    logits = onnx_eval.run(os.path.join(out, "head.onnx"), {"x": z})["logits"]
    return logits, weights


def verify(model, out, feats_list):
    """Piecewise torch == full torch; exported pieces (mini interpreter) == full torch; dense
    baselines == full torch. feats_list: a few [T,80] arrays of different lengths."""
    report = {}

    def close(a, b, name, tol=2e-4):
        err = float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
        report[name] = max(err, report.get(name, 0.0))
        assert err < tol, (name, err)

    model.eval()
    L = len(model.layers)
    with torch.no_grad():
        # batch of 1 for each length, plus a batch of 3 equal-length items
        T = min(f.shape[0] for f in feats_list)
        batches = [f[None] for f in feats_list] + [np.stack([f[:T] for f in feats_list[:3]])]
        for fb in batches:
            ft = torch.from_numpy(fb)
            full, gates = model(ft)
            pw, w = piecewise(model, ft)
            close(pw, full, "torch pieces composed vs full model")
            for n in range(L):
                close(w[n], torch.softmax(gates[n], -1), "torch gate weights vs full model")
            lo, wo = run_package_onnx(out, fb, L)
            close(lo, full, "onnx pieces composed (mini interpreter) vs full model")
            for n in range(L):
                close(wo[n], w[n], "onnx gate weights vs torch")
            ld = onnx_eval.run(os.path.join(out, "baseline", "dense.onnx"), {"feats": fb})
            close(ld["logits"], full, "baseline/dense.onnx vs full model")
        for n in range(L):
            h = torch.randn(9, model.dim)
            r = torch.randn(9, model.dim)
            od = onnx_eval.run(os.path.join(out, "baseline", f"moe{n}_dense.onnx"),
                               {"h": h.numpy(), "residual": r.numpy()})
            close(od["out"], moe_step(model.layers[n].moe, h, r)[0], "baseline/moeN_dense.onnx")
    return report


def manifest(model, meta):
    L = len(model.layers)
    steps = []
    z = None
    for n in range(L):
        if n == 0:
            steps.append({"kind": "onnx", "name": "trunk0", "path": "trunk0.onnx",
                          "inputs": {"feats": "feats"}, "outputs": {"x": "x0", "h": "h0"}})
        else:
            steps.append({"kind": "onnx", "name": f"trunk{n}", "path": f"trunk{n}.onnx",
                          "inputs": {"x_in": z}, "outputs": {"x": f"x{n}", "h": f"h{n}"}})
        steps.append({"kind": "moe", "name": f"moe{n}", "input": f"h{n}", "residual": f"x{n}",
                      "output": f"z{n}", "gate": {"path": f"moe{n}/gate.onnx"},
                      "experts": [{"name": LANGS[e], "path": f"moe{n}/expert{e}.onnx"}
                                  for e in range(N_EXPERTS)],
                      "routing": dict(ROUTING)})
        z = f"z{n}"
    steps.append({"kind": "onnx", "name": "head", "path": "head.onnx", "inputs": {"x": z},
                  "outputs": {"logits": "logits"}})
    c = model.config
    return {
        "format": "moemodal-package/1",
        "name": "speech-codeswitch",
        "modality": "speech",
        "description": "Mandarin-English code-switching CTC recognizer, BA-MoE style: 2 stride-2 "
                       "convolutions (40 ms frames), %d pre-LN conv+attention layers (D=%d, %d "
                       "heads), each followed by a pair of language-expert adapters (zh, en; "
                       "bottleneck %d) mixed per frame by a boundary-aware LID gate (dense)."
                       % (L, c["dim"], c["heads"], c["adapter"]),
        "recipe": "models/recipes/speech_codeswitch",
        "execution_provider": "cpu",
        "inputs": [{"name": "feats", "type": "float32", "shape": [-1, -1, 80]}],
        "outputs": [{"name": "logits", "type": "float32", "shape": [-1, -1, model.vocab]}],
        "steps": steps,
        "metadata": meta,
        "baselines": {"dense": "baseline/dense.onnx",
                      "moe_layers": {f"moe{n}": f"baseline/moe{n}_dense.onnx" for n in range(L)}},
    }


def clean_package(out, n_layers):
    os.makedirs(out, exist_ok=True)
    for entry in (["moemodal.json", "head.onnx", "baseline", "reference"]
                  + [f"trunk{n}.onnx" for n in range(n_layers)]
                  + [f"moe{n}" for n in range(n_layers)]):
        p = os.path.join(out, entry)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)


def package_size(out):
    return sum(os.path.getsize(os.path.join(d, fn)) for d, _, fns in os.walk(out) for fn in fns)
