"""Robot multi-task policy recipe: experts -> demonstrations -> BC + DAgger -> MoeModal package.

    /usr/bin/python3 models/recipes/robot_multitask/recipe.py --out models/robot-multitask

See README.md in this folder.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import experts  # noqa: E402
import export  # noqa: E402
import sim  # noqa: E402
import train as T  # noqa: E402

K = len(sim.TASKS)


def name(tid):
    return f"{tid:2d} {sim.TASKS[tid]['task']}/{sim.TASKS[tid]['variant']}"


def expert_eval(n, seed):
    res = {}
    for tid in range(K):
        env, _ = experts.run(tid, n, np.random.default_rng(seed + tid))
        res[tid] = {"success": float(env.success.mean()), "mean_return": float(env.ret.mean())}
        print(f"  expert {name(tid)}: success {res[tid]['success']:.3f} "
              f"return {res[tid]['mean_return']:.3f}", flush=True)
    return res


def dagger_round(model, ds, rng, episodes, noise_levels, stride, weights):
    """Run the policy (part of the episodes with action noise) on every sub-task, label the visited
    states with the expert, add them to the data set. Returns the noise-free success rates."""
    nl = np.array(noise_levels)
    noise = {}
    for tid in range(K):
        n = int(round(episodes * weights[tid]))
        noise[tid] = nl[np.arange(n) % len(nl)]
    # one rollout with per-task episode counts: run tasks grouped by count
    succ = {}
    groups = {}
    for tid in range(K):
        groups.setdefault(len(noise[tid]), []).append(tid)
    for n, tids in groups.items():
        envs, visited = T.multi_rollout(T.torch_policy(model), n, rng,
                                        noise={t: noise[t] for t in tids},
                                        record_stride=stride, tids=tids)
        for tid in tids:
            ds.add(tid, visited[tid])
            clean = noise[tid] == 0
            succ[tid] = float(envs[tid].success[clean].mean())
    return succ


@torch.no_grad()
def closed_loop(model, n, seed):
    """Final evaluation with the runtime's composition of the exported pieces (torch)."""
    def fn(task, obs):
        a, _ = export.piecewise_torch(model, task.astype(np.int64), obs.astype(np.float32))
        return a.astype(np.float64)
    # record a few visited states per task for the reference file
    envs, visited = T.multi_rollout(fn, n, np.random.default_rng(seed), record_stride=37)
    return envs, visited


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/robot-multitask")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (the tiny matrices gain little from more; on a loaded "
                         "machine OpenMP spin-waiting makes 2 threads much slower than 1)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--ff-hidden", type=int, default=256)
    ap.add_argument("--bs", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--aux", type=float, default=0.01)
    ap.add_argument("--bc-steps", type=int, default=4000)
    ap.add_argument("--dagger-rounds", type=int, default=6)
    ap.add_argument("--dagger-steps", type=int, default=2000)
    ap.add_argument("--dagger-episodes", type=int, default=20)
    ap.add_argument("--demo-episodes", type=int, default=40)
    ap.add_argument("--near-goal", type=int, default=12000,
                    help="reacher states sampled around the goal configuration, per variant")
    ap.add_argument("--expert-episodes", type=int, default=200)
    ap.add_argument("--eval-episodes", type=int, default=100)
    ap.add_argument("--work", default="/tmp/robot_multitask")
    ap.add_argument("--init-model", default=None,
                    help="start from these weights (a model.pt of an earlier run) instead of random "
                         "ones; use with --bc-steps 0 to only continue with DAgger rounds")
    args = ap.parse_args()

    t_start = time.time()
    threads = args.threads
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.work, exist_ok=True)
    secs = {}

    print(f"[1/6] experts, {args.expert_episodes} episodes per sub-task", flush=True)
    t0 = time.time()
    ex_res = expert_eval(args.expert_episodes, 10_000 + args.seed)
    bad = [tid for tid in range(K) if ex_res[tid]["success"] < 0.99]
    assert not bad, f"experts below 0.99: {bad}"
    secs["experts"] = time.time() - t0

    print("[2/6] demonstrations", flush=True)
    t0 = time.time()
    ds = T.Dataset()
    T.expert_demos(ds, rng, episodes=args.demo_episodes, noisy_episodes=args.demo_episodes // 2,
                   noise_levels=[0.1, 0.3], stride=2, near_goal=args.near_goal)
    demo_sizes = ds.sizes()
    print(f"  {sum(demo_sizes.values())} labelled states", flush=True)
    secs["demos"] = time.time() - t0

    print(f"[3/6] behaviour cloning, {args.bc_steps} steps", flush=True)
    t0 = time.time()
    arrays = ds.arrays()
    model = T.build_model(arrays, args.dim, args.depth, args.hidden, args.ff_hidden)
    if args.init_model:
        model.load_state_dict(torch.load(args.init_model))
        print(f"  weights from {args.init_model}", flush=True)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"  params {nparams}", flush=True)
    # DAgger episodes per sub-task (relative): more for the harder pendulum and reacher
    weights = np.array([1.0] * 4 + [1.5] * 3 + [3.0] * 3 + [1.0] * 3)
    hist = {"bc": T.train(model, arrays, args.bc_steps, args.lr, args.bs, args.aux, rng,
                          ckpt=os.path.join(args.work, "model.pt"), task_weights=T.TASK_WEIGHTS)}
    secs["bc"] = time.time() - t0

    print(f"[4/6] DAgger, {args.dagger_rounds} rounds", flush=True)
    t0 = time.time()
    dagger_log = []
    for r in range(args.dagger_rounds):
        tr = time.time()
        succ = dagger_round(model, ds, rng, args.dagger_episodes, [0.0, 0.0, 0.05, 0.15],
                            stride=2, weights=weights)
        print("  round %d policy success (noise-free episodes): %s  (%.0fs)" % (
            r + 1, " ".join(f"{succ[t]:.2f}" for t in range(K)), time.time() - tr), flush=True)
        arrays = ds.arrays()
        hist[f"dagger{r + 1}"] = T.train(model, arrays, args.dagger_steps, args.lr * 0.5, args.bs,
                                         args.aux, rng, warmup=50,
                                         ckpt=os.path.join(args.work, "model.pt"),
                                         task_weights=T.TASK_WEIGHTS)
        dagger_log.append({"round": r + 1, "success_before": succ, "states": int(len(arrays[0]))})
    secs["dagger"] = time.time() - t0
    torch.save(model.state_dict(), os.path.join(args.work, "model.pt"))
    train_seconds = secs["bc"] + secs["dagger"]

    print(f"[5/6] closed-loop evaluation, {args.eval_episodes} fresh episodes per sub-task, "
          "runtime composition of the exported pieces", flush=True)
    t0 = time.time()
    envs, visited = closed_loop(model, args.eval_episodes, 20_000 + args.seed)
    pol_res = {}
    for tid in range(K):
        pol_res[tid] = {"success": float(envs[tid].success.mean()),
                        "mean_return": float(envs[tid].ret.mean())}
        print(f"  policy {name(tid)}: success {pol_res[tid]['success']:.3f} "
              f"return {pol_res[tid]['mean_return']:.3f}  (expert {ex_res[tid]['success']:.3f} "
              f"{ex_res[tid]['mean_return']:.3f})", flush=True)
    secs["eval"] = time.time() - t0

    print("[6/6] export", flush=True)
    t0 = time.time()
    out = args.out
    export.clean(out, args.depth)
    export.export_graphs(model, out)
    cand_task = np.concatenate([np.full(len(visited[t]), t) for t in range(K)]).astype(np.int64)
    cand_obs = np.concatenate([sim.pad_obs(visited[t]) for t in range(K)]).astype(np.float32)
    sel = np.concatenate([np.nonzero(cand_task == t)[0][:3] for t in range(K)])
    checks = export.verify(model, out, cand_task[sel], cand_obs[sel])
    print(f"  verify: max abs err {max(checks.values()):.2e} over {len(checks)} checks", flush=True)
    ref_dir = os.path.join(out, "reference")
    ref = export.write_reference(model, ref_dir, cand_task, cand_obs)
    export.write_trajectories(ref_dir)
    secs["export"] = time.time() - t0

    sizes_final = ds.sizes()
    E = model.blocks[0].mlp.E
    training = {
        "method": "behaviour cloning on expert demonstrations (clean + noisy execution, clean "
                  "labels) followed by DAgger rounds (policy rollouts, part with action noise, "
                  "labelled by the expert)",
        "action_head": "continuous regression of action/half-range (MSE, targets clipped to "
                       "±%.2f), clamp(-1, 1) and scaling to the limits in the head" % T.TARGET_CLIP,
        "architecture": {"dim": args.dim, "depth": args.depth, "ff_hidden": args.ff_hidden,
                         "expert_hidden": args.hidden, "experts": E, "k": 2, "tokens": 1,
                         "moe_layers": [f"moe{j}" for j in range(args.depth)]},
        "params": nparams,
        "aux_loss": "E * sum_e f_e * P_e per MoE layer (f over the top-2 assignments)",
        "aux_loss_weight": args.aux, "optimizer": "AdamW", "lr": args.lr, "batch_size": args.bs,
        "bc_steps": args.bc_steps, "dagger_rounds": args.dagger_rounds,
        "dagger_steps": args.dagger_steps, "seed": args.seed,
        "closed_loop_episodes": args.eval_episodes,
        "success": [round(pol_res[t]["success"], 4) for t in range(K)],
        "expert_success": [round(ex_res[t]["success"], 4) for t in range(K)],
        "seconds": round(time.time() - t_start, 1), "threads": threads,
        "torch": torch.__version__, "onnx_opset": export.OPSET,
    }
    tj = {
        "per_task": [{"id": t, "task": sim.TASKS[t]["task"], "variant": sim.TASKS[t]["variant"],
                      "policy_success": pol_res[t]["success"],
                      "policy_mean_return": pol_res[t]["mean_return"],
                      "expert_success": ex_res[t]["success"],
                      "expert_mean_return": ex_res[t]["mean_return"],
                      "demo_states": demo_sizes[t], "total_states": sizes_final[t]}
                     for t in range(K)],
        "episodes": {"expert": args.expert_episodes, "policy": args.eval_episodes},
        "data_states": {"demos": int(sum(demo_sizes.values())),
                        "total": int(sum(sizes_final.values()))},
        "dagger": dagger_log, "history": hist, "seconds": {k: round(v, 1) for k, v in secs.items()},
        "verify_max_abs_err": checks, "min_gap": ref["min_gap"],
        "min_gap_top1_top2": ref["min_gap_top1_top2"], "training": training,
    }
    with open(os.path.join(ref_dir, "training.json"), "w") as f:
        json.dump(tj, f, indent=1)
    man = export.manifest(model, training)
    with open(os.path.join(out, "moemodal.json"), "w") as f:
        json.dump(man, f, indent=2)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(d, fn)) for d, _, fns in os.walk(out) for fn in fns)
    print(f"package written to {out}: {size / 1e6:.2f} MB, min_gap {ref['min_gap']:.2e}; total "
          f"{time.time() - t_start:.0f}s ({json.dumps({k: round(v) for k, v in secs.items()})})",
          flush=True)
    low = [t for t in range(K) if pol_res[t]["success"] < 0.97]
    if low:
        print(f"WARNING: sub-tasks below 0.97 closed-loop success: {low}", flush=True)


if __name__ == "__main__":
    main()
