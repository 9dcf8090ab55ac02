namespace RobotControl.Sim;

/// <summary>Cart-pole balancing (Barto, Sutton &amp; Anderson 1983), frictionless, continuous force.</summary>
public sealed class CartPole(string variant, int id, double mc, double mp, double l)
    : TaskSim("cartpole", variant, id, 4, 1, [-10], [10], 500)
{
    private const double G = 9.8;
    private bool _failed;

    protected override void ResetState(Random rng)
    {
        _failed = false;
        State = [Uniform(rng, -0.1, 0.1), Uniform(rng, -0.1, 0.1), Uniform(rng, -0.1, 0.1), Uniform(rng, -0.1, 0.1)];
    }

    public override double[] Observation() => [.. State];

    protected override double[] Derivative(double[] s, double[] u)
    {
        double th = s[2], thd = s[3], sin = Math.Sin(th), cos = Math.Cos(th);
        double temp = (u[0] + mp * l * thd * thd * sin) / (mc + mp);
        double thacc = (G * sin - cos * temp) / (l * (4.0 / 3.0 - mp * cos * cos / (mc + mp)));
        double xacc = temp - mp * l * thacc * cos / (mc + mp);
        return [s[1], xacc, thd, thacc];
    }

    protected override double Reward(double[] u) => 1.0;

    protected override void AfterStep()
    {
        if (Math.Abs(State[2]) > 0.2095 || Math.Abs(State[0]) > 2.4) { _failed = true; Done = true; }
    }

    public override bool Success => !_failed && Steps >= MaxSteps;
}

/// <summary>Pendulum swing-up (Gym Pendulum equations), θ = 0 upright.</summary>
public sealed class Pendulum(string variant, int id, double m, double l, double maxTorque)
    : TaskSim("pendulum", variant, id, 3, 1, [-maxTorque], [maxTorque], 600)
{
    private const double G = 10;
    private int _upright;

    protected override void ResetState(Random rng)
    {
        _upright = 0;
        State = [Uniform(rng, -Math.PI, Math.PI), Uniform(rng, -1, 1)];
    }

    public override double[] Observation() => [Math.Cos(State[0]), Math.Sin(State[0]), State[1]];

    protected override double[] Derivative(double[] s, double[] u) =>
        [s[1], 3 * G / (2 * l) * Math.Sin(s[0]) + 3.0 / (m * l * l) * u[0]];

    protected override void PostIntegrate() => State[1] = Math.Clamp(State[1], -8, 8);

    protected override double Reward(double[] u)
    {
        double th = Wrap(State[0]);
        return -(th * th + 0.1 * State[1] * State[1] + 0.001 * u[0] * u[0]);
    }

    protected override void AfterStep()
    {
        if (Steps > MaxSteps - 100) _upright += Math.Abs(Wrap(State[0])) < 0.3 ? 1 : 0;
    }

    public override bool Success => Steps >= MaxSteps && _upright == 100;
}

/// <summary>Two-link planar arm (uniform rods, no gravity, joint damping) reaching a target.</summary>
public sealed class Reacher(string variant, int id, double l1, double l2, double m1, double m2, double maxTorque)
    : TaskSim("reacher", variant, id, 10, 2, [-maxTorque, -maxTorque], [maxTorque, maxTorque], 300)
{
    private const double B = 0.1;
    public double TargetX { get; private set; }
    public double TargetY { get; private set; }

    public void SetTarget(double x, double y) { TargetX = x; TargetY = y; }

    protected override void ResetState(Random rng)
    {
        State = [Uniform(rng, -Math.PI, Math.PI), Uniform(rng, -2.5, 2.5), 0, 0];
        double reach = l1 + l2, angle = Uniform(rng, -Math.PI, Math.PI), radius = Uniform(rng, 0.3 * reach, 0.9 * reach);
        TargetX = radius * Math.Cos(angle);
        TargetY = radius * Math.Sin(angle);
    }

    public (double X, double Y) EndEffector() =>
        (l1 * Math.Cos(State[0]) + l2 * Math.Cos(State[0] + State[1]), l1 * Math.Sin(State[0]) + l2 * Math.Sin(State[0] + State[1]));

    public override double[] Observation()
    {
        var (ex, ey) = EndEffector();
        return [Math.Cos(State[0]), Math.Sin(State[0]), Math.Cos(State[1]), Math.Sin(State[1]), State[2], State[3], TargetX, TargetY, ex - TargetX, ey - TargetY];
    }

    protected override double[] Derivative(double[] s, double[] u)
    {
        double lc1 = l1 / 2, lc2 = l2 / 2, i1 = m1 * l1 * l1 / 12, i2 = m2 * l2 * l2 / 12;
        double c2 = Math.Cos(s[1]), s2 = Math.Sin(s[1]);
        double m11 = m1 * lc1 * lc1 + i1 + m2 * (l1 * l1 + lc2 * lc2 + 2 * l1 * lc2 * c2) + i2;
        double m12 = m2 * (lc2 * lc2 + l1 * lc2 * c2) + i2;
        double m22 = m2 * lc2 * lc2 + i2;
        double h = m2 * l1 * lc2 * s2;
        double r1 = u[0] - (-h * s[3] * (2 * s[2] + s[3])) - B * s[2];
        double r2 = u[1] - (h * s[2] * s[2]) - B * s[3];
        double det = m11 * m22 - m12 * m12;
        return [s[2], s[3], (m22 * r1 - m12 * r2) / det, (-m12 * r1 + m11 * r2) / det];
    }

    private double Distance()
    {
        var (ex, ey) = EndEffector();
        return Math.Sqrt((ex - TargetX) * (ex - TargetX) + (ey - TargetY) * (ey - TargetY));
    }

    protected override double Reward(double[] u) => -Distance() * Dt;

    public override bool Success => Steps >= MaxSteps && Distance() < 0.05 && Math.Abs(State[2]) < 0.5 && Math.Abs(State[3]) < 0.5;
}

/// <summary>Differential-drive (unicycle) robot reaching a goal.</summary>
public sealed class DiffDrive(string variant, int id, double vMax, double wMax)
    : TaskSim("diffdrive", variant, id, 3, 2, [-vMax, -wMax], [vMax, wMax], 800)
{
    public double GoalX { get; private set; }
    public double GoalY { get; private set; }
    private bool _reached;

    public void SetGoal(double x, double y) { GoalX = x; GoalY = y; _reached = false; }

    protected override void ResetState(Random rng)
    {
        _reached = false;
        State = [0, 0, Uniform(rng, -Math.PI, Math.PI)];
        double angle = Uniform(rng, -Math.PI, Math.PI), dist = Uniform(rng, 0.5, 2.0);
        GoalX = dist * Math.Cos(angle);
        GoalY = dist * Math.Sin(angle);
    }

    private double Rho => Math.Sqrt((GoalX - State[0]) * (GoalX - State[0]) + (GoalY - State[1]) * (GoalY - State[1]));

    public override double[] Observation()
    {
        double alpha = Wrap(Math.Atan2(GoalY - State[1], GoalX - State[0]) - State[2]);
        return [Rho, Math.Cos(alpha), Math.Sin(alpha)];
    }

    protected override double[] Derivative(double[] s, double[] u) => [u[0] * Math.Cos(s[2]), u[0] * Math.Sin(s[2]), u[1]];

    protected override double Reward(double[] u) => -Rho * Dt;

    protected override void AfterStep()
    {
        if (Rho < 0.1) { _reached = true; Done = true; }
    }

    public override bool Success => _reached;
}

/// <summary>The 13 sub-tasks of docs/robot-tasks.md, by id.</summary>
public static class TaskTable
{
    public static TaskSim Create(int id) => id switch
    {
        0 => new CartPole("standard", 0, 1.0, 0.1, 0.5),
        1 => new CartPole("heavy_pole", 1, 1.0, 0.3, 0.5),
        2 => new CartPole("long_pole", 2, 1.0, 0.1, 0.8),
        3 => new CartPole("heavy_cart", 3, 2.0, 0.1, 0.5),
        4 => new Pendulum("standard", 4, 1.0, 1.0, 3.0),
        5 => new Pendulum("heavy", 5, 1.3, 1.0, 3.0),
        6 => new Pendulum("short", 6, 1.0, 0.8, 3.0),
        7 => new Reacher("standard", 7, 0.5, 0.5, 1.0, 1.0, 2.0),
        8 => new Reacher("long_forearm", 8, 0.5, 0.7, 1.0, 1.0, 2.0),
        9 => new Reacher("heavy", 9, 0.5, 0.5, 1.0, 2.0, 2.0),
        10 => new DiffDrive("standard", 10, 1.0, 2.0),
        11 => new DiffDrive("slow", 11, 0.5, 2.0),
        12 => new DiffDrive("agile", 12, 1.0, 4.0),
        _ => throw new ArgumentOutOfRangeException(nameof(id), $"no sub-task {id} (0..12)"),
    };

    public const int Count = 13;
}
