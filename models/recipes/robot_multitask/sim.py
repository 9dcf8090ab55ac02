"""The four robot tasks of docs/robot-tasks.md (13 sub-tasks), vectorized over episodes.

Everything is float64. One control step = one RK4 step of dt = 0.01 s with the (clipped) action
held constant. Conventions that the spec leaves open, fixed here (the C# simulator follows them):

* The action is clipped to [act_low, act_high] element-wise before integration (np.clip).
* RK4: k1 = f(s), k2 = f(s + dt/2 k1), k3 = f(s + dt/2 k2), k4 = f(s + dt k3),
  s' = s + dt/6 (k1 + 2 k2 + 2 k3 + k4).
* pendulum: after the RK4 step θ̇ is clipped to [-8, 8]; θ is never wrapped in the state
  (only in the observation through cos/sin, and in the success test / return through wrap()).
* reacher: q̈ = M⁻¹ r solved in closed form: det = M11 M22 − M12², q̈1 = (M22 r1 − M12 r2)/det,
  q̈2 = (M11 r2 − M12 r1)/det, r = τ − c − b q̇. No wrapping of q.
* diffdrive: φ is not wrapped in the state; α = wrap(atan2(g_y − y, g_x − x) − φ).
* wrap(a) maps to (−π, π]: a − 2π·ceil((a − π) / 2π).
* Returns are summed over the steps taken, each step's reward computed from the state *before*
  the step and the clipped action (Gym convention); cartpole gets +1 for every step taken
  (including the one that fails), diffdrive stops after the step that reaches ρ < 0.1.
* Success tests use the states *after* the steps: cartpole no failure after any of the 500 steps;
  pendulum |wrap(θ)| < 0.3 after each of steps 501..600; reacher the state after step 300;
  diffdrive ρ < 0.1 after some step ≤ 800.
"""
import math

import numpy as np

DT = 0.01
OBS_PAD = 10
ACT_PAD = 2

TASKS = [
    dict(task="cartpole", variant="standard", params=dict(m_c=1.0, m_p=0.1, l=0.5)),
    dict(task="cartpole", variant="heavy_pole", params=dict(m_c=1.0, m_p=0.3, l=0.5)),
    dict(task="cartpole", variant="long_pole", params=dict(m_c=1.0, m_p=0.1, l=0.8)),
    dict(task="cartpole", variant="heavy_cart", params=dict(m_c=2.0, m_p=0.1, l=0.5)),
    dict(task="pendulum", variant="standard", params=dict(m=1.0, l=1.0, tau_max=3.0)),
    dict(task="pendulum", variant="heavy", params=dict(m=1.3, l=1.0, tau_max=3.0)),
    dict(task="pendulum", variant="short", params=dict(m=1.0, l=0.8, tau_max=3.0)),
    dict(task="reacher", variant="standard", params=dict(l1=0.5, l2=0.5, m1=1.0, m2=1.0, tau_max=2.0)),
    dict(task="reacher", variant="long_forearm", params=dict(l1=0.5, l2=0.7, m1=1.0, m2=1.0, tau_max=2.0)),
    dict(task="reacher", variant="heavy", params=dict(l1=0.5, l2=0.5, m1=1.0, m2=2.0, tau_max=2.0)),
    dict(task="diffdrive", variant="standard", params=dict(v_max=1.0, omega_max=2.0)),
    dict(task="diffdrive", variant="slow", params=dict(v_max=0.5, omega_max=2.0)),
    dict(task="diffdrive", variant="agile", params=dict(v_max=1.0, omega_max=4.0)),
]
for _i, _t in enumerate(TASKS):
    _t["id"] = _i

KIND = {
    "cartpole": dict(state_dim=4, obs_dim=4, act_dim=1, steps=500,
                     obs_layout=["x", "x_dot", "theta", "theta_dot"], act_layout=["force"]),
    "pendulum": dict(state_dim=2, obs_dim=3, act_dim=1, steps=600,
                     obs_layout=["cos_theta", "sin_theta", "theta_dot"], act_layout=["torque"]),
    "reacher": dict(state_dim=4, obs_dim=10, act_dim=2, steps=300,
                    obs_layout=["cos_q1", "sin_q1", "cos_q2", "sin_q2", "q1_dot", "q2_dot",
                                "target_x", "target_y", "ee_minus_target_x", "ee_minus_target_y"],
                    act_layout=["tau1", "tau2"]),
    "diffdrive": dict(state_dim=3, obs_dim=3, act_dim=2, steps=800,
                      obs_layout=["rho", "cos_alpha", "sin_alpha"], act_layout=["v", "omega"]),
}

CARTPOLE_G = 9.8
PENDULUM_G = 10.0
THETA_FAIL = 0.2095
X_FAIL = 2.4
PEND_SPEED = 8.0
REACHER_B = 0.1
DIFF_GOAL = 0.1


def kind(tid):
    return KIND[TASKS[tid]["task"]]


def act_limits(tid):
    t = TASKS[tid]
    p = t["params"]
    if t["task"] == "cartpole":
        return np.array([-10.0]), np.array([10.0])
    if t["task"] == "pendulum":
        return np.array([-p["tau_max"]]), np.array([p["tau_max"]])
    if t["task"] == "reacher":
        return np.array([-p["tau_max"]] * 2), np.array([p["tau_max"]] * 2)
    return np.array([-p["v_max"], -p["omega_max"]]), np.array([p["v_max"], p["omega_max"]])


def wrap(a):
    """to (−π, π]"""
    return a - 2.0 * math.pi * np.ceil((a - math.pi) / (2.0 * math.pi))


# ---------------------------------------------------------------------------------------------
# Dynamics (s [N, d], a [N, act_dim] already clipped, goal [N, 2] for reacher/diffdrive)
# ---------------------------------------------------------------------------------------------
def deriv(tid, s, a):
    t = TASKS[tid]
    p = t["params"]
    if t["task"] == "cartpole":
        mc, mp, l = p["m_c"], p["m_p"], p["l"]
        xd, th, thd = s[:, 1], s[:, 2], s[:, 3]
        F = a[:, 0]
        sin, cos = np.sin(th), np.cos(th)
        temp = (F + mp * l * thd * thd * sin) / (mc + mp)
        thacc = (CARTPOLE_G * sin - cos * temp) / (l * (4.0 / 3.0 - mp * cos * cos / (mc + mp)))
        xacc = temp - mp * l * thacc * cos / (mc + mp)
        return np.stack([xd, xacc, thd, thacc], 1)
    if t["task"] == "pendulum":
        m, l = p["m"], p["l"]
        th, thd = s[:, 0], s[:, 1]
        thacc = 3.0 * PENDULUM_G / (2.0 * l) * np.sin(th) + 3.0 / (m * l * l) * a[:, 0]
        return np.stack([thd, thacc], 1)
    if t["task"] == "reacher":
        l1, l2, m1, m2 = p["l1"], p["l2"], p["m1"], p["m2"]
        lc1, lc2 = l1 / 2.0, l2 / 2.0
        I1, I2 = m1 * l1 * l1 / 12.0, m2 * l2 * l2 / 12.0
        q2, qd1, qd2 = s[:, 1], s[:, 2], s[:, 3]
        c2, s2 = np.cos(q2), np.sin(q2)
        M11 = m1 * lc1 * lc1 + I1 + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * c2) + I2
        M12 = m2 * (lc2 * lc2 + l1 * lc2 * c2) + I2
        M22 = m2 * lc2 * lc2 + I2
        h = m2 * l1 * lc2 * s2
        r1 = a[:, 0] - (-h * qd2 * (2.0 * qd1 + qd2)) - REACHER_B * qd1
        r2 = a[:, 1] - (h * qd1 * qd1) - REACHER_B * qd2
        det = M11 * M22 - M12 * M12
        qa1 = (M22 * r1 - M12 * r2) / det
        qa2 = (M11 * r2 - M12 * r1) / det
        return np.stack([qd1, qd2, qa1, qa2], 1)
    # diffdrive
    phi = s[:, 2]
    v, w = a[:, 0], a[:, 1]
    return np.stack([v * np.cos(phi), v * np.sin(phi), w], 1)


def step(tid, s, a_raw):
    """One control step: clip, RK4, post-step clipping. Returns the new state (new array)."""
    lo, hi = act_limits(tid)
    a = np.clip(np.asarray(a_raw, np.float64), lo, hi)
    h = DT
    k1 = deriv(tid, s, a)
    k2 = deriv(tid, s + (h / 2.0) * k1, a)
    k3 = deriv(tid, s + (h / 2.0) * k2, a)
    k4 = deriv(tid, s + h * k3, a)
    s2 = s + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    if TASKS[tid]["task"] == "pendulum":
        s2[:, 1] = np.clip(s2[:, 1], -PEND_SPEED, PEND_SPEED)
    return s2


def end_effector(tid, s):
    p = TASKS[tid]["params"]
    q1, q2 = s[:, 0], s[:, 1]
    return np.stack([p["l1"] * np.cos(q1) + p["l2"] * np.cos(q1 + q2),
                     p["l1"] * np.sin(q1) + p["l2"] * np.sin(q1 + q2)], 1)


def rho_alpha(s, goal):
    dx, dy = goal[:, 0] - s[:, 0], goal[:, 1] - s[:, 1]
    rho = np.sqrt(dx * dx + dy * dy)
    alpha = wrap(np.arctan2(dy, dx) - s[:, 2])
    return rho, alpha


def observe(tid, s, goal):
    task = TASKS[tid]["task"]
    if task == "cartpole":
        return s.copy()
    if task == "pendulum":
        return np.stack([np.cos(s[:, 0]), np.sin(s[:, 0]), s[:, 1]], 1)
    if task == "reacher":
        e = end_effector(tid, s)
        return np.stack([np.cos(s[:, 0]), np.sin(s[:, 0]), np.cos(s[:, 1]), np.sin(s[:, 1]),
                         s[:, 2], s[:, 3], goal[:, 0], goal[:, 1],
                         e[:, 0] - goal[:, 0], e[:, 1] - goal[:, 1]], 1)
    rho, alpha = rho_alpha(s, goal)
    return np.stack([rho, np.cos(alpha), np.sin(alpha)], 1)


def reset(tid, rng, n):
    """Start states [n, d] and goals [n, 2] (zeros where the task has none)."""
    t = TASKS[tid]
    p = t["params"]
    goal = np.zeros((n, 2))
    if t["task"] == "cartpole":
        s = rng.uniform(-0.1, 0.1, size=(n, 4))
    elif t["task"] == "pendulum":
        s = np.stack([rng.uniform(-math.pi, math.pi, n), rng.uniform(-1.0, 1.0, n)], 1)
    elif t["task"] == "reacher":
        L = p["l1"] + p["l2"]
        s = np.stack([rng.uniform(-math.pi, math.pi, n), rng.uniform(-2.5, 2.5, n),
                      np.zeros(n), np.zeros(n)], 1)
        ang = rng.uniform(-math.pi, math.pi, n)
        rad = rng.uniform(0.3 * L, 0.9 * L, n)
        goal = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
    else:
        s = np.stack([np.zeros(n), np.zeros(n), rng.uniform(-math.pi, math.pi, n)], 1)
        ang = rng.uniform(-math.pi, math.pi, n)
        dist = rng.uniform(0.5, 2.0, n)
        goal = np.stack([dist * np.cos(ang), dist * np.sin(ang)], 1)
    return s, goal


def reward(tid, s, a, goal):
    """Reward of one step from the state before it and the clipped action."""
    task = TASKS[tid]["task"]
    if task == "cartpole":
        return np.ones(len(s))
    if task == "pendulum":
        th = wrap(s[:, 0])
        return -(th * th + 0.1 * s[:, 1] ** 2 + 0.001 * a[:, 0] ** 2)
    if task == "reacher":
        d = end_effector(tid, s) - goal
        return -np.sqrt((d * d).sum(1)) * DT
    rho, _ = rho_alpha(s, goal)
    return -rho * DT


class Episodes:
    """A batch of n episodes of one sub-task. Finished episodes are frozen."""

    def __init__(self, tid, rng, n, s=None, goal=None):
        self.tid = tid
        self.k = kind(tid)
        self.task = TASKS[tid]["task"]
        if s is None:
            s, goal = reset(tid, rng, n)
        self.s, self.goal = s, goal
        self.n = len(s)
        self.t = 0
        self.T = self.k["steps"]
        self.done = np.zeros(self.n, bool)
        self.success = np.zeros(self.n, bool)
        self.ret = np.zeros(self.n)
        self.upright = np.ones(self.n, bool)  # pendulum: last 100 steps all within 0.3
        self.lo, self.hi = act_limits(tid)

    def obs(self):
        return observe(self.tid, self.s, self.goal)

    def active(self):
        return ~self.done

    def step(self, a):
        a = np.clip(np.asarray(a, np.float64)[:, :self.k["act_dim"]], self.lo, self.hi)
        act = ~self.done
        r = reward(self.tid, self.s, a, self.goal)
        s2 = step(self.tid, self.s, a)
        self.ret[act] += r[act]
        self.s[act] = s2[act]
        self.t += 1
        if self.task == "cartpole":
            fail = (np.abs(self.s[:, 2]) > THETA_FAIL) | (np.abs(self.s[:, 0]) > X_FAIL)
            self.done |= fail & act
            if self.t >= self.T:
                self.success = ~self.done
                self.done[:] = True
        elif self.task == "pendulum":
            if self.t > self.T - 100:
                self.upright &= np.abs(wrap(self.s[:, 0])) < 0.3
            if self.t >= self.T:
                self.success = self.upright.copy()
                self.done[:] = True
        elif self.task == "reacher":
            if self.t >= self.T:
                d = end_effector(self.tid, self.s) - self.goal
                self.success = (np.sqrt((d * d).sum(1)) < 0.05) & (np.abs(self.s[:, 2]) < 0.5) & \
                    (np.abs(self.s[:, 3]) < 0.5)
                self.done[:] = True
        else:
            rho, _ = rho_alpha(self.s, self.goal)
            reach = (rho < DIFF_GOAL) & act
            self.success |= reach
            self.done |= reach
            if self.t >= self.T:
                self.done[:] = True
        return self.done.all()


def pad_obs(o):
    out = np.zeros((len(o), OBS_PAD))
    out[:, :o.shape[1]] = o
    return out
