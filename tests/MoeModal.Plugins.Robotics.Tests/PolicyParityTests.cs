using MoeModal.Abstractions;
using MoeModal.Core.Execution;

namespace MoeModal.Plugins.Robotics.Tests;

/// <summary>
/// The bundled policy, run by the C# router, against the recipe's reference: 64 (task, observation)
/// pairs from closed-loop states; actions within 1e-4, identical expert choices per MoE step,
/// weights within 1e-5 — both as one batch of 64 and one robot at a time (routing is per item, so
/// a robot's action must not depend on the others in its batch).
/// </summary>
[Trait("Modality", "robot")]
public sealed class PolicyParityTests : IDisposable
{
    private static readonly System.Text.Json.Nodes.JsonNode Reference = BundledPolicy.ReadReference("reference.json");
    private readonly MoeModel _model = MoeModel.Load(BundledPolicy.Directory, new LoadOptions { IntraOpThreads = 1 });

    public void Dispose() => _model.Dispose();

    private static long[] Tasks => [.. Reference["task"]!.AsArray().Select(v => v!.GetValue<long>())];

    private static float[] Obs(int from, int count) =>
        [.. Reference["obs"]!.AsArray().Skip(from).Take(count).SelectMany(r => BundledPolicy.Doubles(r).Select(v => (float)v))];

    private InferenceOutput Run(int from, int count)
    {
        int width = Reference["obs"]![0]!.AsArray().Count;
        var inputs = new Dictionary<string, Tensor>
        {
            ["task"] = Tensor.FromInt64s(Tasks[from..(from + count)], count),
            ["obs"] = Tensor.FromFloats(Obs(from, count), count, width),
        };
        return _model.Run(inputs, new RunRequest { TraceTokens = true });
    }

    private static void AssertMatches(InferenceOutput output, int from, int count)
    {
        var action = output.Tensors["action"].Floats!;
        var expected = Reference["action"]!.AsArray().Skip(from).Take(count).SelectMany(BundledPolicy.Doubles).ToArray();
        Assert.Equal(expected.Length, action.Length);
        double max = expected.Select((v, i) => Math.Abs(v - action[i])).Max();
        Assert.True(max <= 1e-4, $"items {from}..{from + count - 1}: max abs action difference {max:E2}");
        Assert.Equal(["moe0", "moe1"], output.Routing.Select(t => t.Step));
        foreach (var trace in output.Routing)
        {
            var step = Reference[trace.Step]!;
            var experts = step["experts"]!.AsArray().Skip(from).Take(count)
                .SelectMany(item => item!.AsArray().SelectMany(tok => tok!.AsArray().Select(v => v!.GetValue<int>()))).ToArray();
            var weights = step["weights"]!.AsArray().Skip(from).Take(count)
                .SelectMany(item => item!.AsArray().SelectMany(tok => tok!.AsArray().Select(v => v!.GetValue<double>()))).ToArray();
            var a = trace.Assignments!;
            Assert.Equal(experts, a.Experts);
            Assert.All(a.Kept, Assert.True);
            double w = weights.Select((v, i) => Math.Abs(v - a.Weights[i])).Max();
            Assert.True(w <= 1e-5, $"{trace.Step}: max weight difference {w:E2}");
            Assert.Equal(0, trace.DroppedAssignments);
        }
    }

    [Fact]
    public void Batch_MatchesRecipe()
    {
        int n = Tasks.Length;
        Assert.True(n >= 64, $"only {n} reference pairs");
        Assert.Equal(13, Tasks.Distinct().Count());
        AssertMatches(Run(0, n), 0, n);
    }

    [Fact]
    public void OneRobotAtATime_MatchesRecipe()
    {
        for (int i = 0; i < Tasks.Length; i++) AssertMatches(Run(i, 1), i, 1);
    }

    [Fact]
    public void Processor_ClipsToTheTaskLimits_AndReadsTheCatalog()
    {
        var processor = (RobotProcessor)new RobotModule().Bind(_model.Info);
        Assert.Equal(13, processor.Catalog.All.Count);
        Assert.Equal(0.01, processor.Catalog.Dt);
        var pendulum = processor.Catalog.Find("pendulum", "standard")!;
        // Upright at rest: the policy should hold still, well inside ±3 N·m.
        var output = _model.Run(processor.Inputs(pendulum, [1f, 0f, 0f]));
        var a = processor.Action(pendulum, output);
        Assert.Single(a);
        Assert.InRange(a[0], -0.5f, 0.5f);
        Assert.Throws<InputException>(() => processor.Inputs(pendulum, [1f, 0f]));
        Assert.Throws<InputException>(() => processor.Inputs(pendulum, [1f, float.NaN, 0f]));
    }
}
