"""BA-MoE style code-switching CTC encoder.

feats [B,T,80] -> two stride-2 conv1d (40 ms frames) -> L pre-LN layers, each:
    x += ConvModule(LN(x))        depthwise conv k=15 (relative position), GELU, Linear
    x += SelfAttention(LN(x))     4 heads, written by hand (exportable)
    x += FFN(LN(x))
    h  = LN_a(x)                  adapter input
    x += w_zh * Adapter_zh(h) + w_en * Adapter_en(h),  w = softmax(Gate(h))   (the moe step)
-> LN -> Linear(V) -> log_softmax (CTC, blank 0).

The module is written so that it cuts into the package's subgraphs: trunk0 (feats -> x, h),
trunkN (x_in -> x, h), moeN (gate, expert0, expert1), head (x -> logits).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

N_EXPERTS = 2  # 0 = zh, 1 = en


def stride2_frames(x):
    """[B, T, C] -> [B, ceil(T/2), 3C]: frames 2i-1, 2i, 2i+1 (zero outside), i.e. the input of a
    kernel-3, stride-2, padding-1 convolution. Written with slices instead of conv1d: on this
    torch 1.13 build the CPU conv1d weight gradient was intermittently garbage (inf / 1e3x)."""
    xp = F.pad(x, (0, 0, 1, 1))
    return torch.cat([xp[:, 0:-2:2], xp[:, 1:-1:2], xp[:, 2::2]], dim=-1)


class Subsample(nn.Module):
    """Two k=3, s=2, p=1 convolutions (as Linear over stacked frames), GELU after each."""

    def __init__(self, n_in, dim):
        super().__init__()
        self.conv1 = nn.Linear(3 * n_in, dim)
        self.conv2 = nn.Linear(3 * dim, dim)

    def forward(self, feats):  # [B, T, 80] -> [B, T', D]
        y = F.gelu(self.conv1(stride2_frames(feats)))
        return F.gelu(self.conv2(stride2_frames(y)))


class ConvModule(nn.Module):
    def __init__(self, dim, kernel=15):
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.dw = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        y = self.ln(x)
        if mask is not None:
            y = y * mask.unsqueeze(-1)
        y = self.dw(y.transpose(1, 2)).transpose(1, 2)
        return self.proj(F.gelu(y))


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.hd = heads, dim // heads
        self.ln = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        B, T, D = x.shape
        qkv = self.qkv(self.ln(x)).reshape(B, T, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        if mask is not None:
            att = att.masked_fill(~mask[:, None, None, :], -1e4)
        att = torch.softmax(att, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(B, T, D)
        return self.proj(y)


class FFN(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.ln(x))))


class Adapter(nn.Module):
    """One language expert: [n, D] -> [n, D] bottleneck."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Gate(nn.Module):
    """[N, D] -> [N, 2] logits (zh, en)."""

    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Linear(dim, N_EXPERTS)

    def forward(self, x):
        return self.proj(x)


class MoeAdapters(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.gate = Gate(dim)
        self.experts = nn.ModuleList([Adapter(dim, hidden) for _ in range(N_EXPERTS)])
        self.routing = "dense"  # evaluation only: "top1" (weight 1) or "top1_p" (weight p_max)

    def combine(self, h):
        """h [..., D] -> (sum_e w_e * expert_e(h), gate logits)."""
        logits = self.gate(h)
        w = torch.softmax(logits, dim=-1)
        if self.routing != "dense":
            hard = F.one_hot(w.argmax(-1), N_EXPERTS).to(w.dtype)
            w = hard if self.routing == "top1" else hard * w
        y = sum(w[..., e:e + 1] * self.experts[e](h) for e in range(N_EXPERTS))
        return y, logits


class Layer(nn.Module):
    def __init__(self, dim, heads, ffn, adapter):
        super().__init__()
        self.conv = ConvModule(dim)
        self.att = Attention(dim, heads)
        self.ffn = FFN(dim, ffn)
        self.moe = MoeAdapters(dim, adapter)

    def trunk(self, x, mask=None):
        """Everything before the adapters: returns the residual x and the adapter input h."""
        x = x + self.conv(x, mask)
        x = x + self.att(x, mask)
        x = x + self.ffn(x)
        return x, self.moe.ln(x)

    def forward(self, x, mask=None):
        x, h = self.trunk(x, mask)
        y, logits = self.moe.combine(h)
        return x + y, logits


class CodeSwitchModel(nn.Module):
    def __init__(self, vocab, n_mels=80, dim=144, layers=4, heads=4, ffn=576, adapter=128):
        super().__init__()
        self.dim, self.vocab = dim, vocab
        self.config = dict(vocab=vocab, n_mels=n_mels, dim=dim, layers=layers, heads=heads,
                           ffn=ffn, adapter=adapter)
        self.sub = Subsample(n_mels, dim)
        self.layers = nn.ModuleList([Layer(dim, heads, ffn, adapter) for _ in range(layers)])
        self.ln_out = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab)

    def head(self, x):
        return torch.log_softmax(self.out(self.ln_out(x)), dim=-1)

    def forward(self, feats, mask=None):
        """feats [B,T,80]; mask [B,T'] bool (True = real frame) or None.
        Returns log-probs [B,T',V] and the list of gate logits [B,T',2] per layer."""
        x = self.sub(feats)
        gates = []
        for layer in self.layers:
            x, g = layer(x, mask)
            gates.append(g)
        return self.head(x), gates


# ---------------------------------------------------------------------------------------------
# Pieces for export
# ---------------------------------------------------------------------------------------------
class Trunk0(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, feats):
        return self.m.layers[0].trunk(self.m.sub(feats))


class TrunkN(nn.Module):
    """Adds the previous layer's nothing: x_in is the output of moe(N-1); runs layer N's trunk."""

    def __init__(self, m, n):
        super().__init__()
        self.m, self.n = m, n

    def forward(self, x_in):
        return self.m.layers[self.n].trunk(x_in)


class Head(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m.head(x)


class Dense(nn.Module):
    """feats -> logits in one graph (both experts computed everywhere)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, feats):
        return self.m(feats)[0]


class MoeDense(nn.Module):
    """One moe layer as a dense graph: (h, residual) -> residual + sum_e w_e expert_e(h)."""

    def __init__(self, moe):
        super().__init__()
        self.moe = moe

    def forward(self, h, residual):
        return residual + self.moe.combine(h)[0]


def count_params(m):
    return sum(p.numel() for p in m.parameters())
