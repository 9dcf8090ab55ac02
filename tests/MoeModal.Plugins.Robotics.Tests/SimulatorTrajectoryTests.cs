using RobotControl.Sim;

namespace MoeModal.Plugins.Robotics.Tests;

/// <summary>
/// The C# simulators of samples/RobotControl against the recipe's sim.py (reference/trajectories.json):
/// per sub-task, 50 steps of raw actions (some beyond the limits, to exercise clipping) from a fixed
/// start; states, observations and rewards within 1e-9 (both integrate in float64 with the same RK4).
/// </summary>
[Trait("Modality", "robot")]
public class SimulatorTrajectoryTests
{
    private static readonly System.Text.Json.Nodes.JsonNode Reference = BundledPolicy.ReadReference("trajectories.json");

    public static TheoryData<int> SubTasks() => [.. Enumerable.Range(0, TaskTable.Count)];

    [Theory]
    [MemberData(nameof(SubTasks))]
    public void Simulator_ReproducesRecipeTrajectory(int id)
    {
        var r = Reference["tasks"]!.AsArray().Single(t => t!["id"]!.GetValue<int>() == id)!;
        var sim = TaskTable.Create(id);
        Assert.Equal(r["task"]!.GetValue<string>(), sim.Task);
        Assert.Equal(r["variant"]!.GetValue<string>(), sim.Variant);
        sim.SetState(BundledPolicy.Doubles(r["start_state"]));
        if (r["goal"] is { } goal)
        {
            var g = BundledPolicy.Doubles(goal);
            if (sim is Reacher reacher) reacher.SetTarget(g[0], g[1]);
            else if (sim is DiffDrive drive) drive.SetGoal(g[0], g[1]);
            else Assert.Fail($"{sim.Task} has no goal");
        }
        AssertClose(BundledPolicy.Doubles(r["start_obs"]), sim.Observation(), "start observation");

        var actions = r["actions"]!.AsArray();
        var states = r["states"]!.AsArray();
        var obs = r["obs"]!.AsArray();
        var rewards = BundledPolicy.Doubles(r["rewards"]);
        double before = 0;
        for (int k = 0; k < actions.Count && !sim.Done; k++)
        {
            sim.Step(BundledPolicy.Doubles(actions[k]));
            AssertClose(BundledPolicy.Doubles(states[k]), sim.State, $"state after step {k + 1}");
            AssertClose(BundledPolicy.Doubles(obs[k]), sim.Observation(), $"observation after step {k + 1}");
            Assert.True(Math.Abs(rewards[k] - (sim.Return - before)) <= 1e-9, $"reward of step {k + 1}: {sim.Return - before} vs {rewards[k]}");
            before = sim.Return;
        }
    }

    private static void AssertClose(double[] expected, double[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-9 * Math.Max(1, Math.Abs(expected[i])),
                $"{what}, element {i}: {actual[i]:R} vs {expected[i]:R}");
    }
}
