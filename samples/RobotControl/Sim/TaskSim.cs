namespace RobotControl.Sim;

/// <summary>
/// One simulated robot of docs/robot-tasks.md: float64 state, RK4 with dt = 0.01, one step per
/// control period, actions clipped before integration.
/// </summary>
public abstract class TaskSim
{
    public const double Dt = 0.01;

    protected TaskSim(string task, string variant, int id, int obsDim, int actDim, double[] low, double[] high, int maxSteps)
    {
        Task = task; Variant = variant; Id = id; ObsDim = obsDim; ActDim = actDim; Low = low; High = high; MaxSteps = maxSteps;
    }

    public string Task { get; }
    public string Variant { get; }
    public int Id { get; }
    public int ObsDim { get; }
    public int ActDim { get; }
    public double[] Low { get; }
    public double[] High { get; }
    public int MaxSteps { get; }

    /// <summary>The state vector (its layout is the task's).</summary>
    public double[] State { get; protected set; } = [];

    public int Steps { get; private set; }
    public double Return { get; private set; }
    public bool Done { get; protected set; }

    /// <summary>Starts an episode from the task's start distribution.</summary>
    public void Reset(Random rng)
    {
        Steps = 0;
        Return = 0;
        Done = false;
        ResetState(rng);
    }

    /// <summary>Sets the state directly (tests, reference trajectories).</summary>
    public void SetState(double[] state)
    {
        State = (double[])state.Clone();
        Steps = 0;
        Return = 0;
        Done = false;
    }

    protected abstract void ResetState(Random rng);

    public abstract double[] Observation();

    protected abstract double[] Derivative(double[] s, double[] u);

    /// <summary>Reward of the step about to be taken: from the state before it and the clipped action (Gym convention, as sim.py).</summary>
    protected abstract double Reward(double[] u);

    /// <summary>Called after each step: failure/success ends the episode.</summary>
    protected virtual void AfterStep() { }

    protected virtual void PostIntegrate() { }

    public abstract bool Success { get; }

    /// <summary>Clips, scores (from the state before the step), integrates one RK4 step.</summary>
    public void Step(ReadOnlySpan<double> action)
    {
        var u = new double[ActDim];
        for (int i = 0; i < ActDim; i++) u[i] = Math.Clamp(double.IsFinite(action[i]) ? action[i] : 0, Low[i], High[i]);
        Return += Reward(u);
        State = Rk4(State, u);
        PostIntegrate();
        Steps++;
        AfterStep();
        if (Steps >= MaxSteps) Done = true;
    }

    private double[] Rk4(double[] s, double[] u)
    {
        int n = s.Length;
        var k1 = Derivative(s, u);
        var k2 = Derivative(Add(s, k1, Dt / 2), u);
        var k3 = Derivative(Add(s, k2, Dt / 2), u);
        var k4 = Derivative(Add(s, k3, Dt), u);
        var r = new double[n];
        for (int i = 0; i < n; i++) r[i] = s[i] + Dt / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
        return r;
    }

    private static double[] Add(double[] s, double[] k, double h)
    {
        var r = new double[s.Length];
        for (int i = 0; i < s.Length; i++) r[i] = s[i] + h * k[i];
        return r;
    }

    /// <summary>Wraps an angle to (−π, π]: a − 2π·ceil((a − π) / 2π), the formula of sim.py.</summary>
    public static double Wrap(double a) => a - 2 * Math.PI * Math.Ceiling((a - Math.PI) / (2 * Math.PI));

    protected static double Uniform(Random rng, double lo, double hi) => lo + (hi - lo) * rng.NextDouble();
}
