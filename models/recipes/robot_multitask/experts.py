"""Scripted experts, each a function of the observation only (so that a policy can imitate it).

cartpole  LQR on the discrete step map linearized at the upright equilibrium (DARE by iteration)
pendulum  energy pumping (Åström & Furuta) + LQR near the top, blended smoothly
reacher   inverse kinematics (elbow solution closest to the current configuration) + computed-
          torque PD in joint space (soft gains kp = 20, kd = 9 on joint acceleration: the action
          is a smooth function of the observation, which a policy can imitate precisely)
diffdrive polar go-to-goal law: v = k_ρ ρ cos α, ω = k_α sin α (drives backwards when the goal is
          behind, so ρ decreases everywhere; α → 0 since k_α > k_ρ)
All return the *unclipped* action [N, act_dim]; the environment clips.
"""
import math

import numpy as np

import sim

_CACHE = {}
W_ELBOW = 0.0
PUMP_GAIN = 0.5
REACH_KP, REACH_KD, REACH_MARGIN = 20.0, 9.0, 0.7  # soft gains: a smoother function to imitate


def dare(A, B, Q, R, iters=20000, tol=1e-12):
    P = Q.copy()
    for _ in range(iters):
        BtP = B.T @ P
        K = np.linalg.solve(R + BtP @ B, BtP @ A)
        Pn = Q + A.T @ P @ A - A.T @ P @ B @ K
        if np.max(np.abs(Pn - P)) < tol * max(1.0, np.max(np.abs(P))):
            P = Pn
            break
        P = Pn
    K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    return K, P


def linearize(tid, d, eps=1e-6):
    """Jacobians of the discrete step map at state 0, action 0."""
    s0 = np.zeros((1, d))
    a0 = np.zeros((1, 1))
    A = np.zeros((d, d))
    for i in range(d):
        sp, sm = s0.copy(), s0.copy()
        sp[0, i] += eps
        sm[0, i] -= eps
        A[:, i] = (sim.step(tid, sp, a0)[0] - sim.step(tid, sm, a0)[0]) / (2 * eps)
    B = ((sim.step(tid, s0, a0 + eps)[0] - sim.step(tid, s0, a0 - eps)[0]) / (2 * eps))[:, None]
    return A, B


def lqr_gain(tid):
    if tid in _CACHE:
        return _CACHE[tid]
    task = sim.TASKS[tid]["task"]
    if task == "cartpole":
        A, B = linearize(tid, 4)
        K, P = dare(A, B, np.diag([1.0, 1.0, 10.0, 1.0]), np.array([[0.05]]))
    else:
        A, B = linearize(tid, 2)
        K, P = dare(A, B, np.diag([10.0, 1.0]), np.array([[0.1]]))
    _CACHE[tid] = (K, P)
    return K, P


def cartpole(tid, obs):
    K, _ = lqr_gain(tid)
    return -(obs @ K.T)


def pendulum(tid, obs):
    p = sim.TASKS[tid]["params"]
    a = 3.0 * sim.PENDULUM_G / (2.0 * p["l"])
    b = 3.0 / (p["m"] * p["l"] ** 2)
    tmax = p["tau_max"]
    c, s, thd = obs[:, 0], obs[:, 1], obs[:, 2]
    th = np.arctan2(s, c)
    E = 0.5 * thd * thd + a * (c - 1.0)  # 0 at rest upright, -2a at rest hanging
    E_star = 0.02 * a
    pump = np.clip(PUMP_GAIN * (E_star - E) * thd / (b * tmax), -1.0, 1.0) * tmax
    K, _ = lqr_gain(tid)
    lqr = -(np.stack([th, thd], 1) @ K.T)[:, 0]
    # blend: LQR inside a neighbourhood of the top (in the LQR cost metric), pumping outside
    z = np.stack([th, thd], 1)
    _, P = lqr_gain(tid)
    cost = np.einsum("ni,ij,nj->n", z, P, z) / P[0, 0]  # ~ θ² near the top
    w = np.clip((0.35 ** 2 - cost) / (0.35 ** 2 - 0.25 ** 2), 0.0, 1.0)
    return (w * lqr + (1.0 - w) * pump)[:, None]


def reacher(tid, obs):
    p = sim.TASKS[tid]["params"]
    l1, l2, m1, m2 = p["l1"], p["l2"], p["m1"], p["m2"]
    q1 = np.arctan2(obs[:, 1], obs[:, 0])
    q2 = np.arctan2(obs[:, 3], obs[:, 2])
    qd1, qd2 = obs[:, 4], obs[:, 5]
    tx, ty = obs[:, 6], obs[:, 7]
    r2 = tx * tx + ty * ty
    c2 = np.clip((r2 - l1 * l1 - l2 * l2) / (2.0 * l1 * l2), -1.0, 1.0)
    # the elbow solution closest to the current configuration, measured by the shoulder motion
    # it needs (stable along the motion: moving towards the chosen q1* keeps it the closer one)
    best = None
    for sign in (1.0, -1.0):
        q2s = sign * np.arccos(c2)
        q1s = np.arctan2(ty, tx) - np.arctan2(l2 * np.sin(q2s), l1 + l2 * np.cos(q2s))
        e1, e2 = sim.wrap(q1s - q1), sim.wrap(q2s - q2)
        d = np.abs(e1) + W_ELBOW * np.abs(e2)
        if best is None:
            best = (d, e1, e2)
        else:
            take = d < best[0]
            best = (np.where(take, d, best[0]), np.where(take, e1, best[1]),
                    np.where(take, e2, best[2]))
    _, e1, e2 = best
    lc1, lc2 = l1 / 2.0, l2 / 2.0
    I1, I2 = m1 * l1 * l1 / 12.0, m2 * l2 * l2 / 12.0
    cq2, sq2 = obs[:, 2], obs[:, 3]
    M11 = m1 * lc1 * lc1 + I1 + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * cq2) + I2
    M12 = m2 * (lc2 * lc2 + l1 * lc2 * cq2) + I2
    M22 = m2 * lc2 * lc2 + I2
    h = m2 * l1 * lc2 * sq2
    # commanded joint velocities: linear near the goal, and on a braking curve sqrt(2 a |e|) far
    # from it, with a the acceleration the torque limit allows in this configuration (margin)
    kp, kd = REACH_KP, REACH_KD
    tm = p["tau_max"]
    # any joint acceleration with |q̈i| <= A needs |τi| <= A (|Mi1| + |Mi2|) (Coriolis aside)
    A = REACH_MARGIN * tm / np.maximum(M11 + np.abs(M12), np.abs(M12) + M22)
    a1 = a2 = A
    vd1 = np.sign(e1) * np.minimum(kp / kd * np.abs(e1), np.sqrt(2.0 * a1 * np.abs(e1)))
    vd2 = np.sign(e2) * np.minimum(kp / kd * np.abs(e2), np.sqrt(2.0 * a2 * np.abs(e2)))
    acc1 = kd * (vd1 - qd1)
    acc2 = kd * (vd2 - qd2)
    t1 = M11 * acc1 + M12 * acc2 + (-h * qd2 * (2.0 * qd1 + qd2)) + sim.REACHER_B * qd1
    t2 = M12 * acc1 + M22 * acc2 + h * qd1 * qd1 + sim.REACHER_B * qd2
    # saturate by scaling the torque vector (keeps the joint accelerations' direction)
    scale = np.minimum(1.0, p["tau_max"] / np.maximum(np.abs(t1), np.abs(t2)).clip(1e-9))
    return np.stack([t1 * scale, t2 * scale], 1)


def diffdrive(tid, obs):
    rho, ca, sa = obs[:, 0], obs[:, 1], obs[:, 2]
    k_rho, k_alpha = 2.0, 5.0
    return np.stack([k_rho * rho * ca, k_alpha * sa], 1)


def act(tid, obs):
    task = sim.TASKS[tid]["task"]
    return {"cartpole": cartpole, "pendulum": pendulum, "reacher": reacher,
            "diffdrive": diffdrive}[task](tid, obs)


def run(tid, n, rng, noise=0.0, policy=None, record=False, eps=None):
    """Roll out n episodes with the expert (or policy(obs)->action) plus Gaussian action noise
    (fraction of the action range). Returns Episodes and optionally the visited observations."""
    env = sim.Episodes(tid, rng, n)
    lo, hi = env.lo, env.hi
    obs_list = []
    while True:
        o = env.obs()
        if record:
            obs_list.append(o[env.active()])
        a = act(tid, o) if policy is None else policy(o)
        if noise:
            a = a + rng.normal(size=a.shape) * noise * (hi - lo) / 2.0
        if env.step(a):
            break
    return env, (np.concatenate(obs_list) if record else None)


if __name__ == "__main__":
    import sys
    import time
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rng = np.random.default_rng(0)
    for tid in range(len(sim.TASKS)):
        t0 = time.time()
        env, _ = run(tid, n, rng)
        print(tid, sim.TASKS[tid]["task"], sim.TASKS[tid]["variant"], "success %.3f" % env.success.mean(),
              "return %.3f" % env.ret.mean(), "%.1fs" % (time.time() - t0), flush=True)
