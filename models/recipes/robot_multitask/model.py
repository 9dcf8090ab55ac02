"""Multi-task robot policy: an MLP trunk (one token per robot) whose feed-forward layers are
sparse MoE layers (GeRM-style generalist: task identity is an input).

token x = W·obs_n + task_emb[task], obs_n = (obs − mean[task]) / std[task] (per-task normalization
inside the model, so the runtime feeds raw zero-padded observations). Every block: x += FF(LN1 x)
(dense), h = LN2 x, x += MoE(h) with 8 experts, top-2, "topk_topk_first" routing (softmax over
the two kept logits, Mixtral/GeRM). Head: LN → Linear → GELU → Linear → clamp(−1, 1) → physical
units per task (center + half-range · raw).

Package pieces: trunk0 (embed + FF of block 0 + LN2) → moe0 → trunk1 (FF of block 1 + LN2) →
moe1 → head. Tokens are [B, 1, D] (one per robot, so routing is per robot).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_EXPERTS = 8
TOP_K = 2
T_OBS = 10


class Gate(nn.Module):
    def __init__(self, dim, num_experts):
        super().__init__()
        self.proj = nn.Linear(dim, num_experts, bias=False)

    def forward(self, x):
        return self.proj(x)


class Expert(nn.Module):
    """One expert as a standalone module (for export): [n, D] -> [n, D]."""

    def __init__(self, w1, b1, w2, b2):
        super().__init__()
        self.w1 = nn.Parameter(w1.detach().clone())
        self.b1 = nn.Parameter(b1.detach().clone())
        self.w2 = nn.Parameter(w2.detach().clone())
        self.b2 = nn.Parameter(b2.detach().clone())

    def forward(self, x):
        return torch.matmul(F.gelu(torch.matmul(x, self.w1) + self.b1), self.w2) + self.b2


def topk_topk_first(logits, k):
    """Keep the k largest logits; weights = softmax over those k (Shazeer, Mixtral, GeRM)."""
    v, idx = torch.topk(logits, k, dim=-1)
    return torch.softmax(v, dim=-1), idx


class MoE(nn.Module):
    def __init__(self, dim, hidden, num_experts=NUM_EXPERTS, k=TOP_K):
        super().__init__()
        self.E, self.k, self.dim, self.hidden = num_experts, k, dim, hidden
        self.gate = Gate(dim, num_experts)
        self.w1 = nn.Parameter(torch.empty(num_experts, dim, hidden))
        self.b1 = nn.Parameter(torch.empty(num_experts, hidden))
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden, dim))
        self.b2 = nn.Parameter(torch.empty(num_experts, dim))
        nn.init.uniform_(self.w1, -1 / math.sqrt(dim), 1 / math.sqrt(dim))
        nn.init.uniform_(self.b1, -1 / math.sqrt(dim), 1 / math.sqrt(dim))
        nn.init.uniform_(self.w2, -1 / math.sqrt(hidden), 1 / math.sqrt(hidden))
        nn.init.uniform_(self.b2, -1 / math.sqrt(hidden), 1 / math.sqrt(hidden))
        nn.init.normal_(self.gate.proj.weight, std=0.02)
        self.aux_loss = None
        self.last_counts = None

    def expert(self, e):
        return Expert(self.w1[e], self.b1[e], self.w2[e], self.b2[e])

    def run_expert(self, e, x):
        return torch.matmul(F.gelu(torch.matmul(x, self.w1[e]) + self.b1[e]), self.w2[e]) + self.b2[e]

    def forward(self, h):
        shape = h.shape
        x = h.reshape(-1, shape[-1])
        logits = self.gate(x)
        w, idx = topk_topk_first(logits, self.k)
        # load balancing (Switch / Mixtral / GeRM): E * sum_e f_e * P_e, f over all k assignments
        counts = torch.zeros(self.E).index_add_(0, idx.reshape(-1), torch.ones(idx.numel()))
        P = torch.softmax(logits, -1).mean(0)
        self.aux_loss = self.E * torch.sum((counts / idx.numel()).detach() * P)
        self.last_counts = counts.detach()
        out = torch.zeros_like(x)
        flat_idx, flat_w = idx.reshape(-1), w.reshape(-1)
        tok = torch.arange(x.shape[0]).repeat_interleave(self.k)
        order = torch.argsort(flat_idx)
        bounds = torch.bincount(flat_idx, minlength=self.E).tolist()
        start = 0
        for e in range(self.E):
            n = bounds[e]
            if n == 0:
                continue
            sel = order[start:start + n]
            start += n
            t = tok[sel]
            out.index_add_(0, t, self.run_expert(e, x.index_select(0, t)) * flat_w[sel].unsqueeze(1))
        return out.reshape(shape)

    def forward_dense(self, h):
        """All experts on all tokens, combined with the top-k mask (the single-graph export)."""
        shape = h.shape
        x = h.reshape(-1, shape[-1])
        w, idx = topk_topk_first(self.gate(x), self.k)
        comb = torch.zeros(x.shape[0], self.E).scatter(1, idx, w)
        hid = F.gelu(torch.matmul(x.unsqueeze(0), self.w1) + self.b1.unsqueeze(1))
        y = torch.matmul(hid, self.w2) + self.b2.unsqueeze(1)
        return torch.sum(y * comb.t().unsqueeze(2), dim=0).reshape(shape)


class FF(nn.Module):
    """Dense pre-LN feed-forward residual branch: x + W2 gelu(W1 LN(x))."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.ln(x))))


class Block(nn.Module):
    """x += FF(LN x) (dense); h = LN2 x; x += MoE(h)."""

    def __init__(self, dim, ff_hidden, hidden):
        super().__init__()
        self.ff = FF(dim, ff_hidden)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = MoE(dim, hidden)

    def attn_part(self, x):  # the dense part before the MoE (name kept for the export code)
        return self.ff(x)

    def forward(self, x, dense_moe=False):
        x = self.attn_part(x)
        h = self.ln2(x)
        return x + (self.mlp.forward_dense(h) if dense_moe else self.mlp(h))


class Policy(nn.Module):
    def __init__(self, num_tasks, obs_mean, obs_std, act_low, act_high, dim=128, depth=2,
                 hidden=128, ff_hidden=256):
        super().__init__()
        self.dim, self.num_tasks = dim, num_tasks
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32))  # [K,10]
        self.register_buffer("obs_inv_std", 1.0 / torch.as_tensor(obs_std, dtype=torch.float32))
        lo = torch.as_tensor(act_low, dtype=torch.float32)
        hi = torch.as_tensor(act_high, dtype=torch.float32)
        self.register_buffer("act_center", (hi + lo) / 2)  # [K,2]; zeros for unused elements
        self.register_buffer("act_half", (hi - lo) / 2)
        self.task_emb = nn.Embedding(num_tasks, dim)
        self.obs_proj = nn.Linear(T_OBS, dim)
        nn.init.normal_(self.task_emb.weight, std=1.0)
        self.blocks = nn.ModuleList([Block(dim, ff_hidden, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, 2)

    def embed(self, task, obs):
        """One token per robot: [B, 1, D] = W·normalized obs + task embedding."""
        on = (obs - self.obs_mean[task]) * self.obs_inv_std[task]            # [B,10]
        return (self.obs_proj(on) + self.task_emb(task)).unsqueeze(1)

    def raw(self, x):
        return self.out(F.gelu(self.fc(self.norm(x[:, 0]))))

    def scale(self, task, raw):
        return torch.clamp(raw, -1.0, 1.0) * self.act_half[task] + self.act_center[task]

    def forward_raw(self, task, obs, dense_moe=False):
        x = self.embed(task, obs)
        for b in self.blocks:
            x = b(x, dense_moe)
        return self.raw(x)

    def forward(self, task, obs, dense_moe=False):
        return self.scale(task, self.forward_raw(task, obs, dense_moe))

    def aux_loss(self):
        return sum(b.mlp.aux_loss for b in self.blocks)


# ---------------------------------------------------------------------------------------------
# Exported pieces
# ---------------------------------------------------------------------------------------------
class Trunk(nn.Module):
    """trunk0: (task, obs) -> x, h of block 0. trunk j>0: x_in -> x, h of block j."""

    def __init__(self, model, j):
        super().__init__()
        self.model, self.j = model, j

    def forward(self, *inp):
        x = self.model.embed(inp[0], inp[1]) if self.j == 0 else inp[0]
        blk = self.model.blocks[self.j]
        x = blk.attn_part(x)
        return x, blk.ln2(x)


class Head(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, task):
        return self.model.scale(task, self.model.raw(x))


class MoeDense(nn.Module):
    def __init__(self, moe):
        super().__init__()
        self.moe = moe

    def forward(self, h, residual):
        return residual + self.moe.forward_dense(h)


class DenseFull(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, task, obs):
        return self.model(task, obs, dense_moe=True)
