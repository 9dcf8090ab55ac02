#!/usr/bin/python3
"""Train the V-MoE Fashion-MNIST model and write the MoeModal package.

    /usr/bin/python3 models/recipes/vision_fmnist/train.py --out models/vision-fmnist

Runs on CPU (2 threads): ~41 minutes measured on a contended 2-core machine (8 epochs). See README.md.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import LABELS, load_fmnist, preprocess, route  # noqa: E402
from model import VMoE  # noqa: E402

# Training-set pixel statistics of v/255 (computed once by `--stats`, rounded to 7 significant
# digits; these exact values go into the manifest and are used for training).
MEAN = 0.2860406
STD = 0.3530242


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/vision-fmnist")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--bs", type=int, default=96)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup", type=float, default=0.3, help="warmup, in epochs")
    ap.add_argument("--aux", type=float, default=0.01, help="load-balancing loss weight")
    ap.add_argument("--smooth", type=float, default=0.0, help="label smoothing")
    ap.add_argument("--flip", type=int, default=1)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--stem", default="bn3", choices=["plain", "bn", "bn3", "bn4"])
    ap.add_argument("--peg", type=int, default=0, help="1: depthwise-conv position encoding after block 0 (experimental)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every-epoch", action="store_true")
    ap.add_argument("--train-only", action="store_true", help="skip export (experiments)")
    ap.add_argument("--ckpt", default=None, help="save/load weights here (skip training if exists)")
    ap.add_argument("--stats", action="store_true", help="print training-set mean/std and exit")
    return ap.parse_args()


@torch.no_grad()
def evaluate(model, x, y, bs=500):
    model.eval()
    correct = 0
    loads = {i: torch.zeros(model.blocks[i].mlp.E) for i in model.moe_blocks}
    for i in range(0, len(x), bs):
        out = model(x[i:i + bs])
        correct += (out.argmax(1) == y[i:i + bs]).sum().item()
        for b in model.moe_blocks:
            loads[b] += model.blocks[b].mlp.last_counts
    return correct / len(x), {b: v.tolist() for b, v in loads.items()}


def train(model, xtr, ytr, xte, yte, args):
    g = torch.Generator().manual_seed(args.seed + 1)
    n = len(xtr)
    steps_per_epoch = math.ceil(n / args.bs)
    total = steps_per_epoch * args.epochs
    warm = max(1, int(args.warmup * steps_per_epoch))
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith("pos") else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)

    def lr_at(s):
        if s < warm:
            return args.lr * (s + 1) / warm
        return 0.5 * args.lr * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))

    step = 0
    t0 = time.time()
    history = []
    for ep in range(args.epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        tl, ta, tc = 0.0, 0.0, 0
        for i in range(0, n, args.bs):
            idx = perm[i:i + args.bs]
            xb, yb = xtr[idx], ytr[idx]
            if args.flip:
                m = torch.rand(len(idx), generator=g) < 0.5
                xb = torch.where(m[:, None, None, None], xb.flip(3), xb)
            for gr in opt.param_groups:
                gr["lr"] = lr_at(step)
            out = model(xb)
            ce = F.cross_entropy(out, yb, label_smoothing=args.smooth)
            aux = model.aux_loss()
            loss = ce + args.aux * aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            tl += ce.item()
            ta += aux.item()
            tc += 1
            if step % 100 == 0:
                print(f"ep {ep} step {step}/{total} ce {tl / tc:.4f} aux {ta / tc:.4f} "
                      f"lr {lr_at(step):.2e} {time.time() - t0:.0f}s", flush=True)
        rec = {"epoch": ep + 1, "train_ce": tl / tc, "aux": ta / tc, "seconds": time.time() - t0}
        if args.eval_every_epoch or ep == args.epochs - 1:
            acc, _ = evaluate(model, xte, yte)
            rec["test_acc"] = acc
        print(json.dumps(rec), flush=True)
        history.append(rec)
    return time.time() - t0, history


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    tr_img, tr_lab = load_fmnist("train")
    te_img, te_lab = load_fmnist("test")
    if args.stats:
        v = tr_img.astype(np.float64) / 255.0
        print(f"mean {v.mean():.10f} std {v.std():.10f}")
        return
    t_start = time.time()
    xtr = preprocess(tr_img, MEAN, STD)
    xte = preprocess(te_img, MEAN, STD)
    ytr, yte = torch.from_numpy(tr_lab), torch.from_numpy(te_lab)

    model = VMoE(dim=args.dim, heads=args.heads, stem=args.stem, peg=bool(args.peg))
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params {nparams}", flush=True)
    if args.ckpt and os.path.exists(args.ckpt):
        state = torch.load(args.ckpt)
        model.load_state_dict(state["model"])
        train_seconds, history = state["seconds"], state["history"]
    else:
        train_seconds, history = train(model, xtr, ytr, xte, yte, args)
        if args.ckpt:
            torch.save({"model": model.state_dict(), "seconds": train_seconds,
                        "history": history}, args.ckpt)
    acc, loads = evaluate(model, xte, yte)
    print(f"test accuracy (dropless top-2): {acc:.4f}  train {train_seconds:.0f}s", flush=True)
    if args.train_only:
        return
    import export  # noqa: E402
    export.write_package(model, args, te_img, te_lab, xte, yte, MEAN, STD,
                         train_seconds, history, t_start)


if __name__ == "__main__":
    main()
