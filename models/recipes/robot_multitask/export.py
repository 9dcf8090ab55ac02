"""Export the trained policy as a MoeModal package (moemodal-package/1), verify the files, and
write the reference outputs."""
import json
import os
import sys
import shutil

import numpy as np
import onnx
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))  # onnx_eval, onnx_export
import onnx_eval  # noqa: E402
import onnx_export  # noqa: E402
import sim
from model import DenseFull, Head, MoeDense, Trunk

OPSET = onnx_export.OPSET
ROUTING = {"policy": "topk_topk_first", "k": 2, "renormalize": False, "capacity_factor": 0,
           "batch_prioritized": True, "group": "item"}
T_TOK = 1  # one token per robot


# ---------------------------------------------------------------------------------------------
# Routing reference (numpy), as docs/model-package.md defines topk_topk_first (dropless).
# ---------------------------------------------------------------------------------------------
def route(logits, k=2):
    """logits [N, E] float32 -> experts [N, k] (rank order, ties -> lower index), weights
    [N, k] float32 = softmax over the k kept logits."""
    order = np.argsort(-logits, axis=-1, kind="stable")
    ex = order[:, :k]
    kept = np.take_along_axis(logits, ex, axis=-1)
    w = torch.softmax(torch.from_numpy(np.ascontiguousarray(kept, dtype=np.float32)), -1).numpy()
    return ex.astype(np.int64), w


def moe_combine(h, residual, gate_fn, expert_fn, E):
    """h, residual [N, D] numpy float32. The runtime's moe step: route, gather the tokens of each
    expert into one batch, run it, residual + Σ w·y."""
    lg = gate_fn(h)
    ex, w = route(lg)
    acc = np.zeros_like(h)
    for e in range(E):
        tok, rank = np.nonzero(ex == e)
        if len(tok) == 0:
            continue
        y = expert_fn(e, h[tok])
        np.add.at(acc, tok, y * w[tok, rank][:, None])
    return residual + acc, ex, w, lg


@torch.no_grad()
def piecewise_torch(model, task, obs):
    """The runtime's dataflow with the torch pieces. task [B] int64, obs [B,10] float32 (numpy).
    Returns action [B,2] numpy and per-layer (experts, weights, logits) [B*T, ...]."""
    t = torch.from_numpy(task)
    x, h = Trunk(model, 0)(t, torch.from_numpy(obs))
    info = {}
    for j, blk in enumerate(model.blocks):
        if j > 0:
            x, h = Trunk(model, j)(x)
        B, T, D = x.shape
        moe = blk.mlp
        out, ex, w, lg = moe_combine(
            h.reshape(-1, D).numpy(), x.reshape(-1, D).numpy(),
            lambda z: moe.gate(torch.from_numpy(z)).numpy(),
            lambda e, z: moe.run_expert(e, torch.from_numpy(z)).numpy(), moe.E)
        info[f"moe{j}"] = (ex, w, lg)
        x = torch.from_numpy(out).reshape(B, T, D)
    return Head(model)(x, t).numpy(), info


class OnnxPolicy:
    """The exported files, run by the mini interpreter and composed like the runtime does."""

    def __init__(self, out, depth, E):
        self.depth, self.E = depth, E
        ld = lambda p: onnx.load(os.path.join(out, p))
        self.trunks = [ld(f"trunk{j}.onnx") for j in range(depth)]
        self.gates = [ld(f"moe{j}/gate.onnx") for j in range(depth)]
        self.experts = [[ld(f"moe{j}/expert{e}.onnx") for e in range(E)] for j in range(depth)]
        self.head = ld("head.onnx")

    def __call__(self, task, obs, info=None):
        task = np.asarray(task, np.int64)
        o = onnx_eval.run(self.trunks[0], {"task": task, "obs": np.asarray(obs, np.float32)})
        for j in range(self.depth):
            if j > 0:
                o = onnx_eval.run(self.trunks[j], {"x_in": x})
            B, T, D = o["x"].shape
            out, ex, w, lg = moe_combine(
                o["h"].reshape(-1, D), o["x"].reshape(-1, D),
                lambda z: onnx_eval.run(self.gates[j], {"x": z})["logits"],
                lambda e, z: onnx_eval.run(self.experts[j][e], {"x": z})["y"], self.E)
            if info is not None:
                info[f"moe{j}"] = (ex, w, lg)
            x = out.reshape(B, T, D)
        return onnx_eval.run(self.head, {"x": x, "task": task})["action"]


# ---------------------------------------------------------------------------------------------
def _fix_shapes(path, dims_by_output):
    """Give outputs their real shapes (batch symbolic, the rest static)."""
    m = onnx.load(path)
    for o in m.graph.output:
        if o.name not in dims_by_output:
            continue
        dims = o.type.tensor_type.shape.dim
        for i, v in enumerate(dims_by_output[o.name]):
            if isinstance(v, str):
                dims[i].ClearField("dim_value")
                dims[i].dim_param = v
            else:
                dims[i].ClearField("dim_param")
                dims[i].dim_value = v
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)


def export_graphs(model, out):
    D = model.dim
    task = torch.tensor([0, 7, 12], dtype=torch.int64)
    obs = torch.randn(3, 10)
    tok = torch.randn(3, T_TOK, D)
    flat = torch.randn(7, D)
    bt = {0: "batch", 1: "tokens"}
    onnx_export.export(Trunk(model, 0), (task, obs), os.path.join(out, "trunk0.onnx"), ["task", "obs"],
            ["x", "h"], {"task": {0: "batch"}, "obs": {0: "batch"}, "x": {0: "batch"},
                         "h": {0: "batch"}})
    _fix_shapes(os.path.join(out, "trunk0.onnx"), {"x": ["batch", T_TOK, D], "h": ["batch", T_TOK, D]})
    for j, blk in enumerate(model.blocks):
        if j > 0:
            onnx_export.export(Trunk(model, j), (tok,), os.path.join(out, f"trunk{j}.onnx"), ["x_in"],
                    ["x", "h"], {"x_in": bt, "x": bt, "h": bt})
        moe = blk.mlp
        onnx_export.export(moe.gate, (flat,), os.path.join(out, f"moe{j}", "gate.onnx"), ["x"], ["logits"],
                {"x": {0: "tokens"}, "logits": {0: "tokens"}})
        for e in range(moe.E):
            onnx_export.export(moe.expert(e), (flat,), os.path.join(out, f"moe{j}", f"expert{e}.onnx"),
                    ["x"], ["y"], {"x": {0: "tokens"}, "y": {0: "tokens"}})
        onnx_export.export(MoeDense(moe), (flat, flat.clone()),
                os.path.join(out, "baseline", f"moe{j}_dense.onnx"), ["h", "residual"], ["out"],
                {"h": {0: "tokens"}, "residual": {0: "tokens"}, "out": {0: "tokens"}})
    onnx_export.export(Head(model), (tok, task), os.path.join(out, "head.onnx"), ["x", "task"], ["action"],
            {"x": bt, "task": {0: "batch"}, "action": {0: "batch"}})
    onnx_export.export(DenseFull(model), (task, obs), os.path.join(out, "baseline", "dense.onnx"),
            ["task", "obs"], ["action"], {"task": {0: "batch"}, "obs": {0: "batch"},
                                          "action": {0: "batch"}})
    for p in ["head.onnx", "baseline/dense.onnx"]:
        _fix_shapes(os.path.join(out, p), {"action": ["batch", 2]})


def verify(model, out, task, obs):
    """Compare the exported files (mini interpreter) with the torch model on real inputs."""
    report = {}

    def close(a, b, name, tol=2e-4):
        err = float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
        report[name] = err
        assert err < tol, (name, err)

    D = model.dim
    t = torch.from_numpy(task)
    o = torch.from_numpy(obs)
    with torch.no_grad():
        full = model(t, o).numpy()
        close(model(t, o, dense_moe=True).numpy(), full, "torch dense-all-experts vs sparse")
        pw, _ = piecewise_torch(model, task, obs)
        close(pw, full, "torch pieces composed vs full model")
        pol = OnnxPolicy(out, len(model.blocks), model.blocks[0].mlp.E)
        close(pol(task, obs), full, "onnx pieces composed vs full model")
        ld = onnx_eval.run(os.path.join(out, "baseline", "dense.onnx"), {"task": task, "obs": obs})
        close(ld["action"], full, "baseline/dense.onnx vs full model")
        o0 = onnx_eval.run(os.path.join(out, "trunk0.onnx"), {"task": task[:1], "obs": obs[:1]})
        tx, th = Trunk(model, 0)(t[:1], o[:1])
        close(o0["x"], tx, "trunk0.onnx batch 1 x")
        close(o0["h"], th, "trunk0.onnx batch 1 h")
        for j, blk in enumerate(model.blocks):
            xr = torch.randn(5, D)
            lg = onnx_eval.run(os.path.join(out, f"moe{j}", "gate.onnx"), {"x": xr.numpy()})["logits"]
            close(lg, blk.mlp.gate(xr), f"moe{j}/gate.onnx (random tokens)")
            for e in range(blk.mlp.E):
                y = onnx_eval.run(os.path.join(out, f"moe{j}", f"expert{e}.onnx"), {"x": xr.numpy()})["y"]
                close(y, blk.mlp.run_expert(e, xr), f"moe{j}/expert{e}.onnx (random tokens)")
            od = onnx_eval.run(os.path.join(out, "baseline", f"moe{j}_dense.onnx"),
                               {"h": xr.numpy(), "residual": xr.numpy()})
            close(od["out"], xr + blk.mlp.forward_dense(xr), f"baseline/moe{j}_dense.onnx")
            if j > 0:
                xin = torch.randn(1, T_TOK, D)
                oj = onnx_eval.run(os.path.join(out, f"trunk{j}.onnx"), {"x_in": xin.numpy()})
                tx, th = Trunk(model, j)(xin)
                close(oj["x"], tx, f"trunk{j}.onnx batch 1 x")
                close(oj["h"], th, f"trunk{j}.onnx batch 1 h")
    return report


# ---------------------------------------------------------------------------------------------
def fmt9(a):
    a = np.asarray(a, dtype=np.float64)
    return json.loads(json.dumps(np.vectorize(lambda v: float(f"{v:.9g}"))(a).tolist())) \
        if a.size else a.tolist()


class _F17(float):
    def __repr__(self):
        return "%.17g" % float(self)


def _f17(obj):
    if isinstance(obj, dict):
        return {k: _f17(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_f17(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _f17(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        return _F17(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def dump_f17(obj, path):
    """JSON with every float written with 17 significant digits."""
    enc = json.JSONEncoder(separators=(",", ":"))
    # json's C encoder calls float.__repr__ directly; the pure-python one honours _F17.__repr__
    import json.encoder as je
    text = "".join(je._make_iterencode({}, enc.default, je.encode_basestring_ascii, None,
                                       lambda f: repr(f) if isinstance(f, _F17) else float.__repr__(f),
                                       ":", ",", False, False, True)(_f17(obj), 0))
    with open(path, "w") as f:
        f.write(text)
        f.write("\n")


def gaps(lg):
    s = -np.sort(-lg.astype(np.float64), axis=-1)
    return s[:, 0] - s[:, 1], s[:, 1] - s[:, 2]


def write_reference(model, ref_dir, cand_task, cand_obs, n_ref=64):
    """Pick n_ref visited (task, obs) pairs spread over the sub-tasks, avoiding near-ties of the
    2nd/3rd gate logits, and write the policy's outputs and routing."""
    K = len(sim.TASKS)
    _, info = piecewise_torch(model, cand_task, cand_obs)
    T = T_TOK
    g23 = np.min(np.stack([gaps(info[k][2])[1].reshape(-1, T).min(1) for k in info]), 0)
    g12 = np.min(np.stack([gaps(info[k][2])[0].reshape(-1, T).min(1) for k in info]), 0)
    per = [n_ref // K + (1 if i < n_ref % K else 0) for i in range(K)]
    chosen = []
    for tid in range(K):
        idx = np.nonzero(cand_task == tid)[0]
        # the best-separated half, then spread over the visited states
        good = idx[np.argsort(-np.minimum(g23[idx], 4 * g12[idx]))][:max(per[tid], len(idx) // 2)]
        good = np.sort(good)
        pick = good[np.linspace(0, len(good) - 1, per[tid]).round().astype(int)]
        chosen.extend(pick.tolist())
    chosen = np.array(chosen)
    task, obs = cand_task[chosen], cand_obs[chosen]
    action, info = piecewise_torch(model, task, obs)
    ref = {
        "description": "robot-multitask reference outputs: (task, obs) pairs from states visited "
                       "in closed loop, the policy's action computed in torch float32 by composing "
                       "the exported pieces with topk_topk_first routing (dropless). Per moe step, "
                       "experts/weights are [item][token][rank] (1 token per item: one per robot). "
                       "C# should match actions within 1e-4 and the expert choices exactly.",
        "routing": ROUTING,
        "tokens_per_item": T,
        "task": task.tolist(),
        "obs": fmt9(obs),
        "action": fmt9(action),
    }
    min23, min12 = [], []
    for name, (ex, w, lg) in info.items():
        a, b = gaps(lg)
        min12.append(float(a.min()))
        min23.append(float(b.min()))
        ref[name] = {"experts": ex.reshape(len(task), T, 2).tolist(),
                     "weights": fmt9(w.reshape(len(task), T, 2))}
    ref["min_gap"] = min(min23)
    ref["min_gap_top1_top2"] = min(min12)
    os.makedirs(ref_dir, exist_ok=True)
    with open(os.path.join(ref_dir, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
    return ref


def write_trajectories(ref_dir, seed=1234, steps=50):
    """For every sub-task: a start state, a fixed pseudo-random action sequence (raw, partly
    beyond the limits to exercise clipping) and the states after each step from sim.py."""
    rng = np.random.default_rng(seed)
    out = {"description": "sim.py reference trajectories: state_{k+1} = step(state_k, actions[k]); "
                          "actions are raw (the simulator clips them to the limits); obs[k] and "
                          "reward[k] belong to step k+1: obs[k] = observe(states[k]); rewards[k] from the "
                          "state before the step (Gym convention, what sim.py sums), "
                          "rewards_post[k] from the state after it (states[k]) and the clipped "
                          "action. float64, 17 significant digits.",
           "dt": sim.DT, "steps": steps, "tasks": []}
    for tid, t in enumerate(sim.TASKS):
        s, goal = sim.reset(tid, rng, 1)
        if t["task"] == "pendulum":
            # start fast enough that the θ̇ clip at ±8 is exercised
            s = np.array([[rng.uniform(1.0, 2.0), 7.5]])
        lo, hi = sim.act_limits(tid)
        acts = rng.uniform(1.3 * lo, 1.3 * hi, size=(steps, len(lo)))
        states, obs, rewards, rewards_post = [], [], [], []
        cur = s.copy()
        for k in range(steps):
            a = np.clip(acts[k:k + 1], lo, hi)
            rewards.append(float(sim.reward(tid, cur, a, goal)[0]))
            cur = sim.step(tid, cur, acts[k:k + 1])
            rewards_post.append(float(sim.reward(tid, cur, a, goal)[0]))
            states.append(cur[0].tolist())
            obs.append(sim.observe(tid, cur, goal)[0].tolist())
        out["tasks"].append({"id": tid, "task": t["task"], "variant": t["variant"],
                             "params": t["params"], "start_state": s[0].tolist(),
                             "start_obs": sim.observe(tid, s, goal)[0].tolist(),
                             "goal": goal[0].tolist() if t["task"] in ("reacher", "diffdrive") else None,
                             "actions": acts.tolist(), "states": states, "obs": obs,
                             "rewards": rewards, "rewards_post": rewards_post})
    dump_f17(out, os.path.join(ref_dir, "trajectories.json"))
    # self-check: the file parses back to the same doubles
    with open(os.path.join(ref_dir, "trajectories.json")) as f:
        back = json.load(f)
    assert back["tasks"][0]["states"] == out["tasks"][0]["states"]
    return out


# ---------------------------------------------------------------------------------------------
def task_metadata():
    tasks = []
    for tid, t in enumerate(sim.TASKS):
        k = sim.kind(tid)
        lo, hi = sim.act_limits(tid)
        tasks.append({"id": tid, "task": t["task"], "variant": t["variant"],
                      "obs_dim": k["obs_dim"], "act_dim": k["act_dim"],
                      "obs_layout": k["obs_layout"], "act_layout": k["act_layout"],
                      "act_low": lo.tolist(), "act_high": hi.tolist(), "params": t["params"],
                      "episode_steps": k["steps"]})
    return tasks


def manifest(model, training):
    steps = [{"kind": "onnx", "name": "trunk0", "path": "trunk0.onnx",
              "inputs": {"task": "task", "obs": "obs"}, "outputs": {"x": "x0", "h": "h0"}}]
    for j, blk in enumerate(model.blocks):
        if j > 0:
            steps.append({"kind": "onnx", "name": f"trunk{j}", "path": f"trunk{j}.onnx",
                          "inputs": {"x_in": f"x{j - 1}_moe"}, "outputs": {"x": f"x{j}", "h": f"h{j}"}})
        steps.append({"kind": "moe", "name": f"moe{j}", "input": f"h{j}", "residual": f"x{j}",
                      "output": f"x{j}_moe", "gate": {"path": f"moe{j}/gate.onnx"},
                      "experts": [{"name": f"e{e}", "path": f"moe{j}/expert{e}.onnx"}
                                  for e in range(blk.mlp.E)],
                      "routing": dict(ROUTING)})
    last = f"x{len(model.blocks) - 1}_moe"
    steps.append({"kind": "onnx", "name": "head", "path": "head.onnx",
                  "inputs": {"x": last, "task": "task"}, "outputs": {"action": "action"}})
    D = model.dim
    return {
        "format": "moemodal-package/1",
        "name": "robot-multitask",
        "modality": "robot",
        "description": "GeRM-style generalist policy for 13 robot sub-tasks (cartpole, pendulum, "
                       "reacher, diffdrive; task id is an input): %d-block pre-LN MLP trunk (D=%d, "
                       "one token per robot, per-task input normalization inside trunk0), each "
                       "block a dense FF then a MoE FF (8 experts, top-2, topk_topk_first), "
                       "continuous action head scaled to the limits."
                       % (len(model.blocks), D),
        "recipe": "models/recipes/robot_multitask",
        "execution_provider": "cpu",
        "inputs": [{"name": "task", "type": "int64", "shape": [-1]},
                   {"name": "obs", "type": "float32", "shape": [-1, 10]}],
        "outputs": [{"name": "action", "type": "float32", "shape": [-1, 2]}],
        "steps": steps,
        "metadata": {"tasks": task_metadata(), "dt": sim.DT, "safe_action": "zeros",
                     "training": training},
        "baselines": {"dense": "baseline/dense.onnx",
                      "moe_layers": {f"moe{j}": f"baseline/moe{j}_dense.onnx"
                                     for j in range(len(model.blocks))}},
    }


def clean(out, depth):
    os.makedirs(out, exist_ok=True)
    for entry in ["moemodal.json", "head.onnx", "baseline", "reference"] + \
            [f"trunk{j}.onnx" for j in range(8)] + [f"moe{j}" for j in range(8)]:
        p = os.path.join(out, entry)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
