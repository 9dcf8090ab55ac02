"""Demonstrations, DAgger rounds and training of the multi-task MoE policy."""
import math
import time

import numpy as np
import torch

import experts
import sim
from model import Policy

K = len(sim.TASKS)
# sampling weight of each sub-task in a batch (reacher and pendulum are the hardest to imitate)
TASK_WEIGHTS = np.array([0.75] * 4 + [1.25] * 3 + [2.5] * 3 + [0.5] * 3)
TARGET_CLIP = 1.25  # raw head targets: the expert's unclipped action / half-range, clipped here


def limits_table():
    lo = np.zeros((K, 2))
    hi = np.zeros((K, 2))
    for tid in range(K):
        l, h = sim.act_limits(tid)
        lo[tid, :len(l)] = l
        hi[tid, :len(h)] = h
    return lo, hi


LO, HI = limits_table()
HALF = (HI - LO) / 2


def label(tid, obs):
    """Expert labels for observations [n, obs_dim]: raw-head targets [n, 2] and mask [n, 2]."""
    a = experts.act(tid, obs)
    d = a.shape[1]
    y = np.zeros((len(obs), 2))
    y[:, :d] = np.clip(a / HALF[tid, :d], -TARGET_CLIP, TARGET_CLIP)
    m = np.zeros((len(obs), 2))
    m[:, :d] = 1.0
    return y, m


class Dataset:
    def __init__(self):
        self.parts = {tid: [] for tid in range(K)}

    def add(self, tid, obs):
        if len(obs):
            self.parts[tid].append(obs)

    def arrays(self):
        tasks, obs, ys, ms = [], [], [], []
        for tid in range(K):
            o = np.concatenate(self.parts[tid])
            y, m = label(tid, o)
            tasks.append(np.full(len(o), tid))
            obs.append(sim.pad_obs(o))
            ys.append(y)
            ms.append(m)
        return (np.concatenate(tasks), np.concatenate(obs), np.concatenate(ys), np.concatenate(ms))

    def sizes(self):
        return {tid: int(sum(len(p) for p in self.parts[tid])) for tid in range(K)}


def expert_demos(ds, rng, episodes, noisy_episodes, noise_levels, stride, near_goal=0):
    """Clean expert episodes and noisy-execution episodes (DART: the executed action is the
    expert's plus Gaussian noise, the label is the clean expert action); for reacher also
    near_goal states around the goal configuration (reacher_near_goal)."""
    for tid in range(K):
        _, o = experts.run(tid, episodes, rng, record=True)
        ds.add(tid, o[::stride])
        for nl in noise_levels:
            _, o = experts.run(tid, noisy_episodes, rng, noise=nl, record=True)
            ds.add(tid, o[::stride])
        if sim.TASKS[tid]["task"] == "reacher":
            ds.add(tid, reacher_near_goal(tid, rng, near_goal))


def reacher_near_goal(tid, rng, n):
    """Observations of states scattered around the goal configuration: a random target, one of its
    two inverse-kinematics solutions, joint offsets and velocities of log-uniform size (0.01..0.5
    rad, 0.01..1 rad/s). Expert demonstrations converge exactly, so the states a slightly-off
    policy ends in (a small static offset near the target) are otherwise rare in the data."""
    p = sim.TASKS[tid]["params"]
    l1, l2 = p["l1"], p["l2"]
    _, goal = sim.reset(tid, rng, n)
    tx, ty = goal[:, 0], goal[:, 1]
    c2 = np.clip((tx * tx + ty * ty - l1 * l1 - l2 * l2) / (2.0 * l1 * l2), -1.0, 1.0)
    q2 = rng.choice([-1.0, 1.0], n) * np.arccos(c2)
    q1 = np.arctan2(ty, tx) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))
    sq = np.exp(rng.uniform(np.log(0.01), np.log(0.5), (n, 1)))
    sv = np.exp(rng.uniform(np.log(0.01), np.log(1.0), (n, 1)))
    s = np.concatenate([np.stack([q1, q2], 1) + rng.normal(size=(n, 2)) * sq,
                        rng.normal(size=(n, 2)) * sv], 1)
    return sim.observe(tid, s, goal)


def multi_rollout(policy_fn, n_per_task, rng, noise=None, record_stride=0, tids=None,
                  starts=None):
    """Run n_per_task episodes of every sub-task at once; policy_fn(task [M], obs [M,10]) ->
    action [M,2] (numpy). noise: per-task fraction of the half-range for Gaussian action noise
    (array over the episodes of a task, so that one rollout mixes noise levels).
    Returns dict tid -> Episodes, and the visited observations per task."""
    tids = list(range(K)) if tids is None else tids
    envs = {tid: sim.Episodes(tid, rng, n_per_task) for tid in tids}
    visited = {tid: [] for tid in tids}
    step = 0
    while True:
        alive = [tid for tid in tids if not envs[tid].done.all()]
        if not alive:
            break
        task_l, obs_l, idx_l = [], [], []
        for tid in alive:
            e = envs[tid]
            act = np.nonzero(~e.done)[0]
            o = e.obs()[act]
            if record_stride and step % record_stride == 0:
                visited[tid].append(o)
            task_l.append(np.full(len(act), tid))
            obs_l.append(sim.pad_obs(o))
            idx_l.append(act)
        a = policy_fn(np.concatenate(task_l), np.concatenate(obs_l))
        off = 0
        for tid, act in zip(alive, idx_l):
            e = envs[tid]
            full = np.zeros((e.n, 2))
            aa = a[off:off + len(act)]
            off += len(act)
            if noise is not None:
                aa = aa + rng.normal(size=aa.shape) * noise[tid][act, None] * HALF[tid]
            full[act] = aa
            e.step(full)
        step += 1
    return envs, {tid: (np.concatenate(v) if v else np.zeros((0, sim.kind(tid)["obs_dim"])))
                  for tid, v in visited.items()}


def torch_policy(model):
    model.eval()

    @torch.no_grad()
    def fn(task, obs):
        return model(torch.from_numpy(task.astype(np.int64)),
                     torch.from_numpy(obs.astype(np.float32))).double().numpy()
    return fn


def build_model(ds_arrays, dim, depth, hidden, ff_hidden):
    task, obs, _, _ = ds_arrays
    mean = np.zeros((K, 10))
    std = np.ones((K, 10))
    for tid in range(K):
        d = sim.kind(tid)["obs_dim"]
        o = obs[task == tid][:, :d]
        mean[tid, :d] = o.mean(0)
        std[tid, :d] = np.maximum(o.std(0), 1e-2)
    # keep the normalization constants exactly representable in float32
    mean = mean.astype(np.float32).astype(np.float64)
    std = std.astype(np.float32).astype(np.float64)
    return Policy(K, mean, std, LO, HI, dim=dim, depth=depth, hidden=hidden, ff_hidden=ff_hidden)


def train(model, arrays, steps, lr, bs, aux_w, rng, log_every=200, warmup=100, wd=1e-4, ckpt=None,
          task_weights=None):
    task, obs, y, m = arrays
    # balanced sampling over sub-tasks
    counts = np.bincount(task, minlength=K).astype(np.float64)
    w = np.ones(K) if task_weights is None else np.asarray(task_weights, np.float64)
    p = w[task] / counts[task]
    p /= p.sum()
    task_t = torch.from_numpy(task.astype(np.int64))
    obs_t = torch.from_numpy(obs.astype(np.float32))
    y_t = torch.from_numpy(y.astype(np.float32))
    m_t = torch.from_numpy(m.astype(np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    model.train()
    hist = []
    t0 = time.time()
    run_l = run_a = 0.0
    for it in range(steps):
        f = min(1.0, (it + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * it / steps))
        for g in opt.param_groups:
            g["lr"] = lr * f
        idx = torch.from_numpy(rng.choice(len(task), size=bs, p=p))
        raw = model.forward_raw(task_t[idx], obs_t[idx])
        err = (raw - y_t[idx]) * m_t[idx]
        loss = (err * err).sum() / m_t[idx].sum()
        aux = model.aux_loss()
        opt.zero_grad(set_to_none=True)
        (loss + aux_w * aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run_l += loss.item()
        run_a += aux.item()
        if (it + 1) % log_every == 0:
            loads = [b.mlp.last_counts / b.mlp.last_counts.sum() for b in model.blocks]
            print(f"  step {it + 1}/{steps} mse {run_l / log_every:.5f} aux {run_a / log_every:.3f} "
                  f"max load {max(float(l.max()) for l in loads):.3f} {time.time() - t0:.0f}s",
                  flush=True)
            hist.append({"step": it + 1, "mse": round(run_l / log_every, 6),
                         "aux": round(run_a / log_every, 4)})
            run_l = run_a = 0.0
            if ckpt:
                torch.save(model.state_dict(), ckpt)
    model.eval()
    return hist
