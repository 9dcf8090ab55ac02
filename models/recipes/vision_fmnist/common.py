"""Data loading, the package's image preprocessing, and the routing reference implementation."""
import gzip
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

DATA_DIR = "/usr/share/datasets/fashion-mnist"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SIZE = 28
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fmnist(split):
    pre = "train" if split == "train" else "t10k"
    x = load_idx(os.path.join(DATA_DIR, f"{pre}-images-idx3-ubyte.gz"))
    y = load_idx(os.path.join(DATA_DIR, f"{pre}-labels-idx1-ubyte.gz"))
    return x, y.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Preprocessing. This is the exact definition the C# vision plugin reimplements:
#   1. pixels -> float in [0,1]: 8-bit v/255, 16-bit v/65535
#   2. alpha composited over black: c*a
#   3. gray = 0.299 R + 0.587 G + 0.114 B (gray images: the gray value)
#   4. pad to square with 0, centered (w>h: top=(w-h)//2, bottom=rest; h>w: left=(h-w)//2, right=rest)
#   5. resize to 28x28 by adaptive average pooling (out i covers [floor(i*S/28), ceil((i+1)*S/28)))
#   6. (g - mean) / std
# ---------------------------------------------------------------------------------------------
def to_unit(img):
    """Step 1: uint8 -> v/255, uint16 -> v/65535, as float64."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        v = img.astype(np.float64) / 255.0
    elif img.dtype == np.uint16:
        v = img.astype(np.float64) / 65535.0
    else:
        raise ValueError(f"unsupported dtype {img.dtype}")
    return v


def preprocess(img, mean, std, channels=None):
    """img: numpy uint8/uint16 array [H, W], [H, W, C], or a batch [N, H, W] / [N, H, W, C]
    (all of one size). channels: None for gray without a channel axis, else C (1 gray, 2 gray+alpha,
    3 RGB, 4 RGBA) for a trailing channel axis. Returns float32 torch tensor [N, 1, 28, 28]."""
    v = to_unit(img)
    if channels is None:
        g = v
    else:
        if v.shape[-1] != channels:
            raise ValueError("channel axis mismatch")
        if channels in (2, 4):
            a = v[..., -1:]
            c = v[..., :-1] * a  # composite over black
        else:
            c = v
        if c.shape[-1] == 3:
            g = c[..., 0] * GRAY_WEIGHTS[0] + c[..., 1] * GRAY_WEIGHTS[1] + c[..., 2] * GRAY_WEIGHTS[2]
        else:
            g = c[..., 0]
    if g.ndim == 2:
        g = g[None]
    n, h, w = g.shape
    if w > h:
        top = (w - h) // 2
        g = np.pad(g, ((0, 0), (top, w - h - top), (0, 0)))
    elif h > w:
        left = (h - w) // 2
        g = np.pad(g, ((0, 0), (0, 0), (left, h - w - left)))
    t = torch.from_numpy(np.ascontiguousarray(g)).unsqueeze(1)  # float64 [N,1,S,S]
    if t.shape[-1] != SIZE:
        t = F.adaptive_avg_pool2d(t, (SIZE, SIZE))
    t = (t - mean) / std
    return t.float()


# ---------------------------------------------------------------------------------------------
# Routing reference (numpy), exactly as docs/model-package.md defines it.
# ---------------------------------------------------------------------------------------------
def softmax_np(logits):
    """float32 softmax over the last axis, as torch computes it (max-subtracted)."""
    t = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    return torch.softmax(t, dim=-1).numpy()


def route(logits, k, capacity_factor=0.0, batch_prioritized=True):
    """logits: [G, T, E] float32 (G routing groups of T tokens; group = item).
    topk_softmax_first, not renormalized. Returns experts [G,T,k] int64 (rank order, ties ->
    lower expert index), weights [G,T,k] float32, kept [G,T,k] bool."""
    G, T, E = logits.shape
    p = softmax_np(logits)
    order = np.argsort(-p, axis=-1, kind="stable")  # ties -> lower expert index
    experts = order[..., :k]
    weights = np.take_along_axis(p, experts, axis=-1)
    kept = np.ones((G, T, k), dtype=bool)
    if capacity_factor is not None and capacity_factor > 0:
        if not batch_prioritized:
            raise NotImplementedError("only batch-prioritized capacity is needed for references")
        C = int(math.ceil(k * T * capacity_factor / E))
        top1 = weights[..., 0]  # [G, T]
        for g in range(G):
            # priority: rank asc, top-1 weight desc, token index asc
            tok_order = sorted(range(T), key=lambda t: (-float(top1[g, t]), t))
            fill = np.zeros(E, dtype=np.int64)
            for r in range(k):
                for t in tok_order:
                    e = experts[g, t, r]
                    if fill[e] < C:
                        fill[e] += 1
                    else:
                        kept[g, t, r] = False
    return experts.astype(np.int64), weights.astype(np.float32), kept
