"""Export the trained V-MoE as a MoeModal package (moemodal-package/1) plus reference outputs."""
import json
import math
import os
import sys
import shutil
import time

import numpy as np
import onnx
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))  # onnx_eval, onnx_export
import onnx_export  # noqa: E402
from common import GRAY_WEIGHTS, LABELS, preprocess, route  # noqa: E402
from model import DenseFull, Head, MoeDense, Trunk  # noqa: E402
from pngwriter import write_png  # noqa: E402

OPSET = onnx_export.OPSET
ROUTING = {"policy": "topk_softmax_first", "k": 2, "renormalize": False, "capacity_factor": 0,
           "batch_prioritized": True, "group": "item"}
ROUTING_CF1 = dict(ROUTING, capacity_factor=1.0)
N_REF = 64


def fmt9(a):
    """floats with 9 significant digits (enough to round-trip float32)."""
    a = np.asarray(a, dtype=np.float64)
    return json.loads(json.dumps(np.vectorize(lambda v: float(f"{v:.9g}"))(a).tolist())) \
        if a.size else a.tolist()


def export_graphs(model, out):
    D = model.dim
    B = 2
    img = torch.randn(B, 1, 28, 28)
    tok = torch.randn(B, 49, D)
    flat = torch.randn(7, D)
    files = {}
    moe_ids = list(model.moe_blocks)  # [1, 3]
    prev = 0
    for j, b in enumerate(moe_ids):
        name = f"trunk{j}"
        if j == 0:
            onnx_export.export(Trunk(model, 0, b, True), (img,), os.path.join(out, f"{name}.onnx"),
                    ["image"], ["x", "h"], {"image": {0: "batch"}, "x": {0: "batch"},
                                            "h": {0: "batch"}})
        else:
            # ONNX cannot give an input and a different output the same value name, so trunk1's
            # input is `x_in` (outputs are `x`, `h` like trunk0); the manifest maps the names.
            onnx_export.export(Trunk(model, prev + 1, b, False), (tok,), os.path.join(out, f"{name}.onnx"),
                    ["x_in"], ["x", "h"],
                    {"x_in": {0: "batch", 1: "tokens"}, "x": {0: "batch", 1: "tokens"},
                     "h": {0: "batch", 1: "tokens"}})
        files[name] = f"{name}.onnx"
        moe = model.blocks[b].mlp
        onnx_export.export(moe.gate, (flat,), os.path.join(out, f"moe{b}", "gate.onnx"), ["x"], ["logits"],
                {"x": {0: "tokens"}, "logits": {0: "tokens"}})
        for e in range(moe.E):
            onnx_export.export(moe.expert(e), (flat,), os.path.join(out, f"moe{b}", f"expert{e}.onnx"),
                    ["x"], ["y"], {"x": {0: "tokens"}, "y": {0: "tokens"}})
        onnx_export.export(MoeDense(moe), (flat, flat.clone()),
                os.path.join(out, "baseline", f"moe{b}_dense.onnx"), ["h", "residual"], ["out"],
                {"h": {0: "tokens"}, "residual": {0: "tokens"}, "out": {0: "tokens"}})
        prev = b
    onnx_export.export(Head(model, prev + 1), (tok,), os.path.join(out, "head.onnx"), ["x"], ["logits"],
            {"x": {0: "batch", 1: "tokens"}, "logits": {0: "batch"}})
    onnx_export.export(DenseFull(model), (img,), os.path.join(out, "baseline", "dense.onnx"), ["image"],
            ["logits"], {"image": {0: "batch"}, "logits": {0: "batch"}})


def _fix_trunk0_shapes(path, D):
    """Give trunk0's outputs their real shape [batch, 49, D] (the tracer names them oddly)."""
    m = onnx.load(path)
    for o in m.graph.output:
        dims = o.type.tensor_type.shape.dim
        dims[0].dim_param = "batch"
        dims[1].ClearField("dim_param")
        dims[1].dim_value = 49
        dims[2].ClearField("dim_param")
        dims[2].dim_value = D
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)


# ---------------------------------------------------------------------------------------------
# Piecewise execution in torch, with any routing: this is what the C# runtime does.
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def moe_step(moe, h, residual, routing):
    """h, residual [B, T, D]; routing per item. Returns out [B,T,D], (experts, weights, kept),
    gate logits [B,T,E]."""
    B, T, D = h.shape
    logits = moe.gate(h.reshape(-1, D)).reshape(B, T, -1)
    ex, w, kept = route(logits.numpy(), routing["k"], routing["capacity_factor"],
                        routing["batch_prioritized"])
    hf = h.reshape(-1, D)
    acc = torch.zeros(B * T, D)
    exf = torch.from_numpy(ex.reshape(B * T, -1))
    wf = torch.from_numpy(w.reshape(B * T, -1))
    kf = torch.from_numpy(kept.reshape(B * T, -1))
    for e in range(moe.E):
        sel = (exf == e) & kf
        tok, rank = sel.nonzero(as_tuple=True)
        if len(tok) == 0:
            continue
        y = moe.run_expert(e, hf.index_select(0, tok))
        acc.index_add_(0, tok, y * wf[tok, rank].unsqueeze(1))
    out = residual + acc.reshape(B, T, D)
    return out, (ex, w, kept), logits.numpy()


@torch.no_grad()
def piecewise(model, img, routing):
    """trunk0 -> moe1 -> trunk1 -> moe3 -> head. Returns logits and per-step routing."""
    info = {}
    prev = -1
    x = None
    for j, b in enumerate(model.moe_blocks):
        tr = Trunk(model, prev + 1, b, j == 0)
        xr, h = tr(img if j == 0 else x)
        x, r, lg = moe_step(model.blocks[b].mlp, h, xr, routing)
        info[f"moe{b}"] = (r, lg)
        prev = b
    return Head(model, prev + 1)(x), info


def evaluate_routing(model, x, y, routing, bs=500):
    correct = 0
    E = NUM = None
    loads, kept_loads, total = {}, {}, 0
    for i in range(0, len(x), bs):
        logits, info = piecewise(model, x[i:i + bs], routing)
        correct += (logits.argmax(1) == y[i:i + bs]).sum().item()
        for name, ((ex, w, kept), lg) in info.items():
            E = lg.shape[-1]
            loads.setdefault(name, np.zeros(E, np.int64))
            kept_loads.setdefault(name, np.zeros(E, np.int64))
            loads[name] += np.bincount(ex.reshape(-1), minlength=E)
            kept_loads[name] += np.bincount(ex[kept].reshape(-1), minlength=E)
    res = {"accuracy": correct / len(x), "layers": {}}
    for name in loads:
        n = int(loads[name].sum())
        res["layers"][name] = {
            "assignments": loads[name].tolist(),
            "fraction": [round(float(v) / n, 5) for v in loads[name]],
            "kept": kept_loads[name].tolist(),
            "dropped_fraction": round(1 - float(kept_loads[name].sum()) / n, 5)}
    return res


# ---------------------------------------------------------------------------------------------
# Verification of the exported files
# ---------------------------------------------------------------------------------------------
def verify(model, out, xte):
    import onnx_eval
    D = model.dim
    report = {}
    torch.manual_seed(123)
    img = xte[100:103]  # batch 3 (export traced with 2)

    def close(a, b, name, tol=1e-4):
        err = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        report[name] = err
        assert err < tol, (name, err)

    with torch.no_grad():
        full = model(img).numpy()
        dense = model(img, dense_moe=True).numpy()
        pw, _ = piecewise(model, img, ROUTING)
        close(pw.numpy(), full, "torch piecewise vs full model")
        close(dense, full, "torch dense-all-experts vs sparse model")
        # the exported files, run by the mini interpreter, composed like the runtime does
        o = onnx_eval.run(os.path.join(out, "trunk0.onnx"), {"image": img.numpy()})
        x1, h1 = torch.from_numpy(o["x"]), torch.from_numpy(o["h"])
        tx1, th1 = Trunk(model, 0, model.moe_blocks[0], True)(img)
        close(x1, tx1, "trunk0.onnx x")
        close(h1, th1, "trunk0.onnx h")
        x = None
        tensors = {"x": x1, "h": h1}
        for j, b in enumerate(model.moe_blocks):
            if j > 0:
                o = onnx_eval.run(os.path.join(out, f"trunk{j}.onnx"), {"x_in": x.numpy()})
                tensors = {"x": torch.from_numpy(o["x"]), "h": torch.from_numpy(o["h"])}
            hf = tensors["h"].reshape(-1, D)
            lg = onnx_eval.run(os.path.join(out, f"moe{b}", "gate.onnx"), {"x": hf.numpy()})["logits"]
            close(lg, model.blocks[b].mlp.gate(hf).numpy(), f"moe{b}/gate.onnx")
            ex, w, kept = route(lg.reshape(1, -1, lg.shape[-1]), 2)
            ex, w = ex.reshape(-1, 2), w.reshape(-1, 2)
            acc = np.zeros_like(hf.numpy())
            for e in range(model.blocks[b].mlp.E):
                tok, rank = np.nonzero(ex == e)
                if len(tok) == 0:
                    continue
                y = onnx_eval.run(os.path.join(out, f"moe{b}", f"expert{e}.onnx"),
                                  {"x": hf.numpy()[tok]})["y"]
                close(y, model.blocks[b].mlp.run_expert(e, hf[tok]).numpy(), f"moe{b}/expert{e}.onnx")
                np.add.at(acc, tok, y * w[tok, rank][:, None])
            x = tensors["x"] + torch.from_numpy(acc).reshape(tensors["x"].shape)
            od = onnx_eval.run(os.path.join(out, "baseline", f"moe{b}_dense.onnx"),
                               {"h": hf.numpy(), "residual": tensors["x"].reshape(-1, D).numpy()})
            close(od["out"], x.reshape(-1, D).numpy(), f"baseline/moe{b}_dense.onnx")
        for b in model.moe_blocks:  # every expert, on a token count other than the traced one
            xr = torch.randn(5, D)
            for e in range(model.blocks[b].mlp.E):
                y = onnx_eval.run(os.path.join(out, f"moe{b}", f"expert{e}.onnx"),
                                  {"x": xr.numpy()})["y"]
                close(y, model.blocks[b].mlp.run_expert(e, xr).numpy(),
                      f"moe{b}/expert{e}.onnx (random tokens)")
        lo = onnx_eval.run(os.path.join(out, "head.onnx"), {"x": x.numpy()})["logits"]
        close(lo, full, "onnx pieces composed vs full model")
        ld = onnx_eval.run(os.path.join(out, "baseline", "dense.onnx"), {"image": img.numpy()})
        close(ld["logits"], full, "baseline/dense.onnx vs full model")
        # a token count that is not 49 and a batch of 1 through trunk1/head (dynamic axes)
        xin = torch.randn(1, 49, D)
        o = onnx_eval.run(os.path.join(out, "trunk1.onnx"), {"x_in": xin.numpy()})
        tx, th = Trunk(model, model.moe_blocks[0] + 1, model.moe_blocks[1], False)(xin)
        close(o["x"], tx, "trunk1.onnx batch 1")
        close(o["h"], th, "trunk1.onnx h batch 1")
    return report


# ---------------------------------------------------------------------------------------------
# Reference outputs
# ---------------------------------------------------------------------------------------------
def _logit_gaps(lg):
    s = -np.sort(-lg.reshape(-1, lg.shape[-1]).astype(np.float64), axis=-1)
    return float(np.min(s[:, 0] - s[:, 1])), float(np.min(s[:, 1] - s[:, 2]))


def write_references(model, ref_dir, te_img, te_lab, mean, std):
    os.makedirs(ref_dir, exist_ok=True)
    idx = list(range(N_REF))
    img = preprocess(te_img[idx], mean, std)
    configs = []
    gaps12, gaps23, top1gaps = [], [], []
    for name, routing in (("dropless", ROUTING), ("cf1_bpr", ROUTING_CF1)):
        logits, info = piecewise(model, img, routing)
        cfg = {"name": name, "routing": routing, "logits": fmt9(logits.numpy())}
        for step, ((ex, w, kept), lg) in info.items():
            cfg[step] = {"experts": ex.tolist(), "weights": fmt9(w), "kept": kept.tolist()}
            g12, g23 = _logit_gaps(lg)
            gaps12.append(g12)
            gaps23.append(g23)
            if routing["capacity_factor"] > 0:
                # BPR order depends on top-1 weights between tokens of one image
                t1 = np.sort(w[..., 0].astype(np.float64), axis=1)
                top1gaps.append(float(np.min(np.diff(t1, axis=1))))
        configs.append(cfg)
    ref = {
        "description": "V-MoE Fashion-MNIST reference outputs (test images 0..63), computed in "
                       "torch float32 by composing the exported pieces with the routing of "
                       "docs/model-package.md. C# should match logits within ~1e-4.",
        "indices": idx,
        "labels": te_lab[idx].tolist(),
        "images_u8": te_img[idx].reshape(N_REF, -1).astype(int).tolist(),
        "tokens_per_image": 49,
        "capacity_per_expert_cf1": math.ceil(2 * 49 * 1.0 / 8),
        "min_gap": min(gaps23),
        "min_gap_top1_top2": min(gaps12),
        "min_gap_top1_weight_between_tokens_cf1": min(top1gaps),
        "configs": configs,
    }
    with open(os.path.join(ref_dir, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
    return ref


def write_preprocess_fixtures(ref_dir, te_img, mean, std):
    from pngwriter import read_png
    files = {}
    # 1. 8-bit RGB 90x60: test image 0 upscaled 3x (84x84) nearest, tinted, padded to 90 wide
    #    (3 px each side, value 40) and cropped to 60 high (rows 12..71)
    v = np.repeat(np.repeat(te_img[0].astype(np.int64), 3, 0), 3, 1)
    v = np.pad(v, ((0, 0), (3, 3)), constant_values=40)[12:72]
    rgb = np.stack([v, (v * 0.75).astype(np.int64) + 10, (v * 0.4).astype(np.int64) + 60], -1)
    files["pre_rgb8_90x60.png"] = (np.clip(rgb, 0, 255).astype(np.uint8), 3)
    # 2. 8-bit gray+alpha 40x40: test image 1 resized nearest to 40x40, alpha a diagonal ramp
    ii = (np.arange(40) * 28) // 40
    gray = te_img[1][ii][:, ii]
    yy, xx = np.mgrid[0:40, 0:40]
    alpha = 255 - (yy + 2 * xx) * 255 // 117  # 255 .. 0
    files["pre_graya8_40x40.png"] = (np.stack([gray, alpha.astype(np.uint8)], -1).astype(np.uint8), 2)
    # 3. 16-bit gray 56x56: test image 2 upscaled 2x, v*256 + a low-byte pattern
    g16 = np.repeat(np.repeat(te_img[2].astype(np.int64), 2, 0), 2, 1) * 256 + (xx[:1, :1] * 0)
    yy2, xx2 = np.mgrid[0:56, 0:56]
    g16 = g16 + (xx2 * 7 + yy2 * 13) % 256
    files["pre_gray16_56x56.png"] = (g16.astype(np.uint16), None)
    out = {"description": "expected preprocess() output [1,1,28,28] flattened row-major",
           "mean": mean, "std": std, "files": {}}
    for name, (arr, ch) in files.items():
        path = os.path.join(ref_dir, name)
        write_png(path, arr)
        back = read_png(path)
        back = back[..., 0] if ch is None else back
        assert np.array_equal(back, arr), name
        t = preprocess(back, mean, std, channels=ch)
        out["files"][name] = {"width": int(arr.shape[1]), "height": int(arr.shape[0]),
                              "channels": 1 if ch is None else ch,
                              "bit_depth": 16 if arr.dtype == np.uint16 else 8,
                              "tensor": fmt9(t.numpy().reshape(-1))}
    # sanity: a plain 28x28 gray image gives exactly the training tensor
    t0 = preprocess(te_img[0], mean, std)
    assert torch.equal(t0, ((torch.from_numpy(te_img[0:1].astype(np.float64)) / 255.0 - mean)
                            / std).float().unsqueeze(1))
    with open(os.path.join(ref_dir, "preprocess.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
def manifest(model, mean, std, training):
    steps = []
    prev_x = None
    n = len(model.moe_blocks)
    for j, b in enumerate(model.moe_blocks):
        xr, hr, xo = f"x{b}", f"h{b}", f"x{b}_moe"
        if j == 0:
            steps.append({"kind": "onnx", "name": "trunk0", "path": "trunk0.onnx",
                          "inputs": {"image": "image"}, "outputs": {"x": xr, "h": hr}})
        else:
            steps.append({"kind": "onnx", "name": f"trunk{j}", "path": f"trunk{j}.onnx",
                          "inputs": {"x_in": prev_x}, "outputs": {"x": xr, "h": hr}})
        steps.append({"kind": "moe", "name": f"moe{b}", "input": hr, "residual": xr,
                      "output": xo, "gate": {"path": f"moe{b}/gate.onnx"},
                      "experts": [{"name": f"e{e}", "path": f"moe{b}/expert{e}.onnx"}
                                  for e in range(model.blocks[b].mlp.E)],
                      "routing": dict(ROUTING)})
        prev_x = xo
    steps.append({"kind": "onnx", "name": "head", "path": "head.onnx",
                  "inputs": {"x": prev_x}, "outputs": {"logits": "logits"}})
    return {
        "format": "moemodal-package/1",
        "name": "vision-fmnist",
        "modality": "vision",
        "description": "V-MoE on Fashion-MNIST: conv stem + 4-block pre-LN ViT (D=%d, 49 tokens), "
                       "MoE MLP (8 experts, top-2, softmax first) in blocks %s."
                       % (model.dim, ", ".join(map(str, model.moe_blocks))),
        "recipe": "models/recipes/vision_fmnist",
        "execution_provider": "cpu",
        "inputs": [{"name": "image", "type": "float32", "shape": [-1, 1, 28, 28]}],
        "outputs": [{"name": "logits", "type": "float32", "shape": [-1, 10]}],
        "steps": steps,
        "metadata": {
            "labels": LABELS,
            "preprocess": {"width": 28, "height": 28, "mean": mean, "std": std,
                           "gray_weights": list(GRAY_WEIGHTS), "background": 0.0,
                           "pad_to_square": True, "resize": "adaptive_avg_pool"},
            "training": training,
        },
        "baselines": {"dense": "baseline/dense.onnx",
                      "moe_layers": {f"moe{b}": f"baseline/moe{b}_dense.onnx"
                                     for b in model.moe_blocks}},
    }


def write_package(model, args, te_img, te_lab, xte, yte, mean, std, train_seconds, history,
                  t_start):
    out = args.out
    model.eval()
    os.makedirs(out, exist_ok=True)
    for entry in ["moemodal.json", "trunk0.onnx", "trunk1.onnx", "head.onnx", "baseline",
                  "reference"] + [f"moe{b}" for b in model.moe_blocks]:
        p = os.path.join(out, entry)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    t0 = time.time()
    export_graphs(model, out)
    _fix_trunk0_shapes(os.path.join(out, "trunk0.onnx"), model.dim)
    checks = verify(model, out, xte)
    for k, v in checks.items():
        print(f"  verify {k}: max abs err {v:.2e}", flush=True)

    ev_dropless = evaluate_routing(model, xte, yte, ROUTING)
    ev_cf1 = evaluate_routing(model, xte, yte, ROUTING_CF1)
    print(f"test accuracy dropless {ev_dropless['accuracy']:.4f}  cf1 bpr {ev_cf1['accuracy']:.4f}",
          flush=True)
    ref_dir = os.path.join(out, "reference")
    ref = write_references(model, ref_dir, te_img, te_lab, mean, std)
    write_preprocess_fixtures(ref_dir, te_img, mean, std)

    nparams = sum(p.numel() for p in model.parameters())
    moe_params = {f"moe{b}": {"gate": sum(p.numel() for p in model.blocks[b].mlp.gate.parameters()),
                              "per_expert": sum(p.numel() for p in model.blocks[b].mlp.expert(0).parameters())}
                  for b in model.moe_blocks}
    training = {
        "accuracy": round(ev_dropless["accuracy"], 4),
        "accuracy_cf1_bpr": round(ev_cf1["accuracy"], 4),
        "test_images": int(len(xte)),
        "epochs": args.epochs,
        "seconds": round(train_seconds, 1),
        "aux_loss": "switch: E * sum_e f_e * P_e (f over all top-2 assignments)",
        "aux_loss_weight": args.aux,
        "optimizer": "AdamW", "lr": args.lr, "weight_decay": args.wd, "batch_size": args.bs,
        "schedule": "linear warmup %.2g epochs + cosine" % args.warmup,
        "augmentation": "horizontal flip" if args.flip else "none",
        "seed": args.seed,
        "params": nparams,
        "torch": torch.__version__, "onnx_opset": OPSET,
    }
    tj = dict(training)
    tj.update({"dropless": ev_dropless, "cf1_bpr": ev_cf1, "history": history,
               "moe_params": moe_params, "verify_max_abs_err": checks,
               "min_gap": ref["min_gap"]})
    with open(os.path.join(ref_dir, "training.json"), "w") as f:
        json.dump(tj, f, indent=1)
    with open(os.path.join(out, "moemodal.json"), "w") as f:
        json.dump(manifest(model, mean, std, training), f, indent=2)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(d, fn)) for d, _, fns in os.walk(out) for fn in fns)
    print(f"package written to {out}: {size / 1e6:.1f} MB; export+verify+refs "
          f"{time.time() - t0:.0f}s; total {time.time() - t_start:.0f}s", flush=True)
    print(json.dumps({"min_gap": ref["min_gap"], "dropless_load": {
        k: v["fraction"] for k, v in ev_dropless["layers"].items()},
        "cf1_dropped": {k: v["dropped_fraction"] for k, v in ev_cf1["layers"].items()}}))
