"""V-MoE (ViT with sparse MoE MLPs) for Fashion-MNIST.

The model is written so that it can be cut into the subgraphs the MoeModal package needs:
trunk0 -> moe1 -> trunk1 -> moe3 -> head. Attention is written by hand (nn.MultiheadAttention
does not export under no_grad on torch 1.13).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_EXPERTS = 8
TOP_K = 2


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.hd = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # x [B, T, D]
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, T, hd]
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        att = torch.softmax(att, dim=-1)
        y = torch.matmul(att, v)  # [B, H, T, hd]
        y = y.transpose(1, 2).reshape(B, T, D)
        return self.proj(y)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Gate(nn.Module):
    """[N, D] -> [N, E] logits."""

    def __init__(self, dim, num_experts):
        super().__init__()
        self.proj = nn.Linear(dim, num_experts, bias=False)

    def forward(self, x):
        return self.proj(x)


class Expert(nn.Module):
    """One expert as a standalone module (for export): [n, D] -> [n, D]."""

    def __init__(self, w1, b1, w2, b2):
        super().__init__()
        self.w1 = nn.Parameter(w1.detach().clone())  # [D, H]
        self.b1 = nn.Parameter(b1.detach().clone())  # [H]
        self.w2 = nn.Parameter(w2.detach().clone())  # [H, D]
        self.b2 = nn.Parameter(b2.detach().clone())  # [D]

    def forward(self, x):
        return torch.matmul(F.gelu(torch.matmul(x, self.w1) + self.b1), self.w2) + self.b2


def topk_softmax_first(logits, k):
    """p = softmax(logits); keep the k largest; weights = kept p (not renormalized)."""
    p = torch.softmax(logits, dim=-1)
    w, idx = torch.topk(p, k, dim=-1)
    return p, w, idx


class MoE(nn.Module):
    """Sparse MoE MLP. Experts are stored stacked so that they can be run sparsely (train) or
    densely (the usual single-graph export)."""

    def __init__(self, dim, hidden, num_experts=NUM_EXPERTS, k=TOP_K):
        super().__init__()
        self.E, self.k, self.dim, self.hidden = num_experts, k, dim, hidden
        self.gate = Gate(dim, num_experts)
        self.w1 = nn.Parameter(torch.empty(num_experts, dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(num_experts, hidden))
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden, dim))
        self.b2 = nn.Parameter(torch.zeros(num_experts, dim))
        # same init as nn.Linear's weight (kaiming_uniform a=sqrt(5) -> U(-1/sqrt(fan_in), ..))
        nn.init.uniform_(self.w1, -1 / math.sqrt(dim), 1 / math.sqrt(dim))
        nn.init.uniform_(self.w2, -1 / math.sqrt(hidden), 1 / math.sqrt(hidden))
        nn.init.uniform_(self.b1, -1 / math.sqrt(dim), 1 / math.sqrt(dim))
        nn.init.uniform_(self.b2, -1 / math.sqrt(hidden), 1 / math.sqrt(hidden))
        nn.init.normal_(self.gate.proj.weight, std=0.02)
        self.aux_loss = None
        self.last_counts = None

    def expert(self, e):
        return Expert(self.w1[e], self.b1[e], self.w2[e], self.b2[e])

    def run_expert(self, e, x):
        return torch.matmul(F.gelu(torch.matmul(x, self.w1[e]) + self.b1[e]), self.w2[e]) + self.b2[e]

    def forward(self, h):
        """h [..., D] -> combined expert outputs [..., D] (no residual). Dropless top-k, sparse."""
        shape = h.shape
        x = h.reshape(-1, shape[-1])
        logits = self.gate(x)
        p, w, idx = topk_softmax_first(logits, self.k)
        # Switch-style load-balancing loss: E * sum_e f_e * P_e, f_e over all k assignments.
        counts = torch.zeros(self.E, device=x.device).index_add_(
            0, idx.reshape(-1), torch.ones(idx.numel(), device=x.device))
        f = counts / idx.numel()
        P = p.mean(0)
        self.aux_loss = self.E * torch.sum(f.detach() * P)
        self.last_counts = counts.detach()
        out = torch.zeros_like(x)
        flat_idx = idx.reshape(-1)
        flat_w = w.reshape(-1)
        tok = torch.arange(x.shape[0], device=x.device).repeat_interleave(self.k)
        order = torch.argsort(flat_idx)
        sorted_e = flat_idx[order]
        bounds = torch.bincount(sorted_e, minlength=self.E).tolist()
        start = 0
        for e in range(self.E):
            n = bounds[e]
            if n == 0:
                continue
            sel = order[start:start + n]
            start += n
            t = tok[sel]
            ye = self.run_expert(e, x.index_select(0, t))
            out.index_add_(0, t, ye * flat_w[sel].unsqueeze(1))
        return out.reshape(shape)

    def forward_dense(self, h):
        """The usual single-graph MoE export: compute every expert on every token, combine with
        the top-k mask. Same result as forward() (dropless)."""
        shape = h.shape
        x = h.reshape(-1, shape[-1])
        logits = self.gate(x)
        p, w, idx = topk_softmax_first(logits, self.k)
        comb = torch.zeros_like(p).scatter(1, idx, w)  # [N, E]
        hid = F.gelu(torch.matmul(x.unsqueeze(0), self.w1) + self.b1.unsqueeze(1))  # [E, N, H]
        y = torch.matmul(hid, self.w2) + self.b2.unsqueeze(1)  # [E, N, D]
        out = torch.sum(y * comb.t().unsqueeze(2), dim=0)
        return out.reshape(shape)


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, moe):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.is_moe = moe
        self.mlp = MoE(dim, hidden) if moe else Mlp(dim, hidden)

    def attn_part(self, x):
        return x + self.attn(self.ln1(x))

    def forward(self, x, dense_moe=False):
        x = self.attn_part(x)
        h = self.ln2(x)
        if self.is_moe and dense_moe:
            return x + self.mlp.forward_dense(h)
        return x + self.mlp(h)


class VMoE(nn.Module):
    def __init__(self, dim=64, heads=4, depth=4, moe_blocks=(1, 3), stem_ch=32, mlp_ratio=4,
                 num_classes=10, stem="bn3", peg=False):
        super().__init__()
        self.dim = dim
        self.moe_blocks = tuple(moe_blocks)
        if stem == "plain":
            self.stem = nn.Sequential(
                nn.Conv2d(1, stem_ch, 3, 1, 1), nn.GELU(),
                nn.Conv2d(stem_ch, dim, 3, 2, 1), nn.GELU(),  # 14x14
                nn.Conv2d(dim, dim, 2, 2),  # 7x7 patches
            )
        elif stem == "bn":  # BatchNorm folds into the convolutions at export (eval mode)
            self.stem = nn.Sequential(
                nn.Conv2d(1, stem_ch, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_ch), nn.GELU(),
                nn.Conv2d(stem_ch, 2 * stem_ch, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * stem_ch),
                nn.GELU(),  # 14x14
                nn.Conv2d(2 * stem_ch, dim, 2, 2),  # 7x7 patches
            )
        elif stem == "bn3":
            self.stem = nn.Sequential(
                nn.Conv2d(1, stem_ch, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_ch), nn.GELU(),
                nn.Conv2d(stem_ch, 2 * stem_ch, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * stem_ch),
                nn.GELU(),  # 14x14
                nn.Conv2d(2 * stem_ch, dim, 3, 2, 1),  # 7x7
            )
        elif stem == "bn4":
            self.stem = nn.Sequential(
                nn.Conv2d(1, stem_ch, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_ch), nn.GELU(),
                nn.Conv2d(stem_ch, 2 * stem_ch, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * stem_ch),
                nn.GELU(),  # 14x14
                nn.Conv2d(2 * stem_ch, 2 * stem_ch, 3, 1, 1, bias=False),
                nn.BatchNorm2d(2 * stem_ch), nn.GELU(),
                nn.Conv2d(2 * stem_ch, dim, 3, 2, 1),  # 7x7
            )
        else:
            raise ValueError(stem)
        # PEG (conditional position encoding, CPVT): a depthwise 3x3 conv over the 7x7 token grid,
        # added to the residual stream after block 0 (inside trunk0, so later pieces stay generic).
        self.peg = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim) if peg else None
        self.pos = nn.Parameter(torch.zeros(1, 49, dim))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(
            [Block(dim, heads, mlp_ratio * dim, i in self.moe_blocks) for i in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def embed(self, img):
        x = self.stem(img)  # [B, D, 7, 7]
        return x.flatten(2).transpose(1, 2) + self.pos

    def classify(self, x):
        return self.head(self.norm(x.mean(1)))

    def run_block(self, i, x, dense_moe=False):
        x = self.blocks[i](x, dense_moe)
        if i == 0 and self.peg is not None:
            B, T, D = x.shape
            g = x.transpose(1, 2).reshape(B, D, 7, 7)
            x = x + self.peg(g).flatten(2).transpose(1, 2)
        return x

    def forward(self, img, dense_moe=False):
        x = self.embed(img)
        for i in range(len(self.blocks)):
            x = self.run_block(i, x, dense_moe)
        return self.classify(x)

    def aux_loss(self):
        return sum(self.blocks[i].mlp.aux_loss for i in self.moe_blocks)


# ---------------------------------------------------------------------------------------------
# The exported pieces. trunk{j} runs from the start (or from after moe{j_prev}) up to and
# including the attention part of the next MoE block, and returns x (residual stream) and
# h = LayerNorm2(x) (the MoE input).
# ---------------------------------------------------------------------------------------------
class Trunk(nn.Module):
    def __init__(self, model, first_block, moe_block, with_embed):
        super().__init__()
        self.model = model
        self.first_block, self.moe_block, self.with_embed = first_block, moe_block, with_embed

    def forward(self, inp):
        x = self.model.embed(inp) if self.with_embed else inp
        for i in range(self.first_block, self.moe_block):
            x = self.model.run_block(i, x)
        blk = self.model.blocks[self.moe_block]
        x = blk.attn_part(x)
        return x, blk.ln2(x)


class Head(nn.Module):
    def __init__(self, model, first_block):
        super().__init__()
        self.model = model
        self.first_block = first_block

    def forward(self, x):
        for i in range(self.first_block, len(self.model.blocks)):
            x = self.model.run_block(i, x)
        return self.model.classify(x)


class MoeDense(nn.Module):
    """Baseline per-layer graph: (h [N,D], residual [N,D]) -> residual + dense top-k MoE."""

    def __init__(self, moe):
        super().__init__()
        self.moe = moe

    def forward(self, h, residual):
        return residual + self.moe.forward_dense(h)


class DenseFull(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, img):
        return self.model(img, dense_moe=True)
