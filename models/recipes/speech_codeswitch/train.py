"""Training: CTC over units + BA-MoE boundary-aware frame LID loss on every gate."""
import math
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

from common import edit_distance, greedy_ctc, n_out_frames

LID_WEIGHT = 0.3          # weight of the gate LID loss (averaged over layers)
BOUNDARY_WEIGHT = 2.0     # LID frames near a language switch count this much more
BOUNDARY_FRAMES = 3       # ... "near" = within this many 40 ms frames
SILENCE_WEIGHT = 0.3      # frames of pure silence are pulled towards 50/50 (neither language)


def lid_targets(lab10):
    """10 ms labels (-1 silence, 0 zh, 1 en) -> 40 ms targets (0 zh, 1 en, 2 silence, -1 none)
    and weights. Output frame j is centred on input frame 4j (two k=3, s=2, p=1 convolutions).
    A frame gets a language target only if input frames 4j-2..4j+2 all carry that language, the
    silence target if they are all silence; frames that straddle a segment edge get none
    (weight 0). Frames within BOUNDARY_FRAMES of a switch to the other language get
    BOUNDARY_WEIGHT: that is where the gate must be sharp (boundary-aware)."""
    T = len(lab10)
    Tp = n_out_frames(T)
    tgt = np.full(Tp, -1, np.int64)
    for j in range(Tp):
        w = lab10[max(0, 4 * j - 2): min(T, 4 * j + 3)]
        if len(w) and np.all(w == w[0]):
            tgt[j] = w[0] if w[0] >= 0 else 2
    wt = np.where(tgt == 2, SILENCE_WEIGHT, (tgt >= 0).astype(np.float32)).astype(np.float32)
    sp = np.nonzero((tgt == 0) | (tgt == 1))[0]
    if len(sp):
        langs = tgt[sp]
        sw = np.nonzero(langs[1:] != langs[:-1])[0]  # switch between sp[i] and sp[i+1]
        for i in sw:
            for j in (sp[i], sp[i + 1]):
                lo, hi = max(0, j - BOUNDARY_FRAMES), min(Tp, j + BOUNDARY_FRAMES + 1)
                wt[lo:hi] = np.where((tgt[lo:hi] == 0) | (tgt[lo:hi] == 1), BOUNDARY_WEIGHT,
                                     wt[lo:hi])
    return tgt, wt


class Data:
    """Packed split: features already divided by std."""

    def __init__(self, packed, std):
        self.lens = packed["lens"]
        offs = np.concatenate([[0], np.cumsum(self.lens)])
        feats = packed["feats"] / std[None, :].astype(np.float32)
        self.feats = [feats[offs[i]:offs[i + 1]] for i in range(len(self.lens))]
        lab = packed["lab10"]
        self.lid = [lid_targets(lab[offs[i]:offs[i + 1]]) for i in range(len(self.lens))]
        self.ids = packed["ids"]
        self.cond = packed["cond"]
        self.variant = packed["variant"]

    def __len__(self):
        return len(self.lens)

    def batches(self, max_frames, shuffle, rng=None):
        order = np.argsort(self.lens, kind="stable")
        out, cur, cur_max = [], [], 0
        for i in order:
            m = max(cur_max, self.lens[i])
            if cur and m * (len(cur) + 1) > max_frames:
                out.append(cur)
                cur, m = [], self.lens[i]
            cur.append(i)
            cur_max = m
        if cur:
            out.append(cur)
        if shuffle:
            rng.shuffle(out)
        return out

    def collate(self, idx, specaug=None):
        B = len(idx)
        T = max(self.lens[i] for i in idx)
        Tp = n_out_frames(T)
        x = torch.zeros(B, T, self.feats[idx[0]].shape[1])
        mask = torch.zeros(B, Tp, dtype=torch.bool)
        tgt = torch.full((B, Tp), -1, dtype=torch.long)
        wt = torch.zeros(B, Tp)
        for b, i in enumerate(idx):
            t = self.lens[i]
            x[b, :t] = torch.from_numpy(self.feats[i])
            tp = n_out_frames(t)
            mask[b, :tp] = True
            tgt[b, :tp] = torch.from_numpy(self.lid[i][0])
            wt[b, :tp] = torch.from_numpy(self.lid[i][1])
        if specaug is not None:
            rng = specaug
            for b, i in enumerate(idx):
                t = self.lens[i]
                for _ in range(2):
                    f = rng.randint(0, 8)
                    f0 = rng.randint(0, 80 - f)
                    x[b, :t, f0:f0 + f] = 0
                for _ in range(2):
                    w = rng.randint(0, 4)
                    t0 = rng.randint(0, max(0, t - w))
                    x[b, t0:t0 + w] = 0
        ys = [torch.from_numpy(self.ids[i]) for i in idx]
        return x, mask, tgt, wt, ys


def losses(model, batch):
    x, mask, tgt, wt, ys = batch
    logp, gates = model(x, mask)
    in_len = mask.sum(1)
    tgt_cat = torch.cat(ys)
    tgt_len = torch.tensor([len(y) for y in ys])
    ctc = F.ctc_loss(logp.transpose(0, 1), tgt_cat, in_len, tgt_len, blank=0,
                     reduction="mean", zero_infinity=True)
    lid = 0.0
    denom = wt.sum().clamp(min=1.0)
    t = tgt.reshape(-1)
    for g in gates:
        lp = torch.log_softmax(g.reshape(-1, 2), dim=-1)
        ce = torch.where(t == 2, -0.5 * lp.sum(-1),
                         -lp.gather(1, t.clamp(0, 1)[:, None])[:, 0])
        lid = lid + (ce * wt.reshape(-1)).sum() / denom
    lid = lid / len(gates)
    return ctc, lid


@torch.no_grad()
def evaluate(model, data, max_frames=12000):
    """MER overall and per condition / voice; also gate LID accuracy on labelled frames."""
    model.eval()
    errs, refs = {}, {}
    lid_ok = lid_n = 0
    sil_max, sil_n = 0.0, 0
    per_layer = None
    for idx in data.batches(max_frames, shuffle=False):
        x, mask, tgt, wt, ys = data.collate(idx)
        logp, gates = model(x, mask)
        probs = torch.stack([torch.softmax(gg, -1) for gg in gates])  # [L,B,T',2]
        g = probs.mean(0).argmax(-1)
        sel = (tgt == 0) | (tgt == 1)
        sil = tgt == 2
        sil_max += float(probs.mean(0).max(-1).values[sil].sum())
        sil_n += int(sil.sum())
        lid_ok += int((g[sel] == tgt[sel]).sum())
        lid_n += int(sel.sum())
        ok = [int((p.argmax(-1)[sel] == tgt[sel]).sum()) for p in probs]
        per_layer = ok if per_layer is None else [a + b for a, b in zip(per_layer, ok)]
        for b, i in enumerate(idx):
            hyp = greedy_ctc(logp[b, :int(mask[b].sum())].numpy())
            ref = data.ids[i].tolist()
            e = edit_distance(ref, hyp)
            for key in ("all", "cond:" + data.cond[i], "voice:" + data.variant[i]):
                errs[key] = errs.get(key, 0) + e
                refs[key] = refs.get(key, 0) + len(ref)
    model.train()
    res = {k: errs[k] / refs[k] for k in sorted(errs)}
    res["units"] = refs["all"]
    res["gate_lid_acc"] = lid_ok / max(1, lid_n)
    res["gate_silence_mean_max_weight"] = round(sil_max / max(1, sil_n), 4)
    res["gate_lid_acc_per_layer"] = [round(v / max(1, lid_n), 4) for v in per_layer]
    return res


def train(model, train_data, dev_data, epochs, lr=2e-3, max_frames=8000, seed=0, log=print,
          budget_seconds=None):
    """budget_seconds: after each epoch, lower the number of epochs (and shorten the cosine decay
    accordingly) so that training is expected to end within this many seconds."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    n_batches = len(train_data.batches(max_frames, shuffle=False))
    total = epochs * n_batches
    warm = max(min(300, total // 10), min(100, total // 3))
    sched = {"total": total, "from_step": warm, "from_p": 0.0}

    def lr_at(step):
        if step < warm:
            return lr * (step + 1) / warm
        # cosine progress; when the plan is shortened the remaining decay is squeezed
        p = sched["from_p"] + (1.0 - sched["from_p"]) * (step - sched["from_step"]) / max(
            1, sched["total"] - sched["from_step"])
        return lr * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))

    step = 0
    t0 = time.time()
    hist = []
    model.train()
    ep = 0
    while ep < epochs:
        s_ctc = s_lid = 0.0
        nb = 0
        te = time.time()
        for idx in train_data.batches(max_frames, shuffle=True, rng=rng):
            for gparam in opt.param_groups:
                gparam["lr"] = lr_at(step)
            batch = train_data.collate(idx, specaug=rng)
            ctc, lid = losses(model, batch)
            loss = ctc + LID_WEIGHT * lid
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            s_ctc += float(ctc)
            s_lid += float(lid)
            nb += 1
            step += 1
        dev = evaluate(model, dev_data)
        hist.append({"epoch": ep + 1, "ctc": s_ctc / nb, "lid": s_lid / nb, "dev_mer": dev["all"],
                     "dev_gate_lid_acc": dev["gate_lid_acc"], "seconds": time.time() - te})
        log(f"[train] epoch {ep + 1}/{epochs} ctc {s_ctc / nb:.4f} lid {s_lid / nb:.4f} "
            f"dev MER {dev['all']:.4f} gate-LID {dev['gate_lid_acc']:.3f} "
            f"({time.time() - te:.0f} s, total {time.time() - t0:.0f} s)")
        ep += 1
        if budget_seconds and ep < epochs:
            per = (time.time() - t0) / ep
            fit = ep + int((budget_seconds - (time.time() - t0)) // per)
            if fit < epochs:
                new_epochs = max(ep + 1, fit)
                if new_epochs < epochs:
                    sched["from_p"] = 0.0 if step <= warm else min(0.99, sched["from_p"] + (
                        1.0 - sched["from_p"]) * (step - sched["from_step"]) / max(
                        1, sched["total"] - sched["from_step"]))
                    sched["from_step"] = max(step, warm)
                    sched["total"] = new_epochs * n_batches
                    log(f"[train] time budget: {epochs} -> {new_epochs} epochs "
                        f"({per:.0f} s/epoch)")
                    epochs = new_epochs
    return hist
