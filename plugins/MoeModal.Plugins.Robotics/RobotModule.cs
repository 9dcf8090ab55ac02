using System.Text.Json.Nodes;
using MoeModal.Abstractions;
using MoeModal.Plugins.Robotics.Protocol;

namespace MoeModal.Plugins.Robotics;

/// <summary>The robotics modality plugin: observations in, actions out.</summary>
public sealed class RobotModule : IModalityPlugin
{
    public string Modality => "robot";

    public string Description => "Multi-task robot policy: (task, observation) → action; served over MessagePack sockets";

    public IReadOnlyList<string> AcceptedInputs { get; } = ["application/x-msgpack"];

    public IModalityProcessor Bind(PackageInfo package) => new RobotProcessor(package);
}

/// <summary>
/// The robot plugin bound to a package: builds the policy's inputs (<c>task</c> int64 [1],
/// <c>obs</c> float32 [1, maxObs], zero-padded) and reads its <c>action</c> output, clipped to the
/// sub-task's limits. As a generic processor, a raw input is a MessagePack map
/// <c>{"task": name, "variant": name, "obs": [...]}</c>.
/// </summary>
public sealed class RobotProcessor : IModalityProcessor
{
    public const string TaskInput = "task", ObsInput = "obs", ActionOutput = "action";

    public RobotProcessor(PackageInfo package)
    {
        Catalog = TaskCatalog.From(package);
        var obs = package.Inputs.FirstOrDefault(i => i.Name == ObsInput);
        var task = package.Inputs.FirstOrDefault(i => i.Name == TaskInput);
        var act = package.Outputs.FirstOrDefault(o => o.Name == ActionOutput);
        if (obs is null || task is null || act is null || obs.Shape.Count != 2 || act.Shape.Count != 2 || task.Kind != TensorKind.Int64)
            throw new PluginException($"package '{package.Name}': a robot package needs inputs task int64 [B], obs float32 [B, O] and output action float32 [B, A]");
        ObsWidth = obs.Shape[1];
        ActWidth = act.Shape[1];
        if (Catalog.MaxObs > ObsWidth || Catalog.All.Max(t => t.ActDim) > ActWidth)
            throw new PluginException($"package '{package.Name}': a task needs more observation or action elements than the policy has");
    }

    public TaskCatalog Catalog { get; }
    public int ObsWidth { get; }
    public int ActWidth { get; }

    /// <summary>The policy's inputs for one observation.</summary>
    public Dictionary<string, Tensor> Inputs(RobotTask task, ReadOnlySpan<float> obs)
    {
        if (obs.Length != task.ObsDim)
            throw new InputException($"task {task.Task}/{task.Variant} observes {task.ObsDim} values, got {obs.Length}");
        var padded = new float[ObsWidth];
        for (int i = 0; i < obs.Length; i++)
        {
            if (!float.IsFinite(obs[i])) throw new InputException($"observation element {i} ({task.ObsLayout[i]}) is {obs[i]}");
            padded[i] = obs[i];
        }
        return new Dictionary<string, Tensor>
        {
            [TaskInput] = Tensor.FromInt64s([task.Id], 1),
            [ObsInput] = Tensor.FromFloats(padded, 1, ObsWidth),
        };
    }

    /// <summary>Item <paramref name="item"/>'s action, clipped to the task's limits.</summary>
    public float[] Action(RobotTask task, InferenceOutput output, int item = 0)
    {
        var a = output.Tensors[ActionOutput].AsFloats(ActionOutput);
        var act = new float[task.ActDim];
        for (int i = 0; i < act.Length; i++)
        {
            float v = a[item * ActWidth + i];
            act[i] = float.IsFinite(v) ? Math.Clamp(v, task.ActLow[i], task.ActHigh[i]) : 0f;
        }
        return act;
    }

    public IReadOnlyDictionary<string, Tensor> Preprocess(RawInput input)
    {
        RobotMessage m;
        try
        {
            m = RobotMessage.Parse(input.Bytes);
        }
        catch (ProtocolException ex)
        {
            throw new InputException($"{input.Name}: {ex.Message}");
        }
        if (m.Task is null || m.Obs is null)
            throw new InputException($"{input.Name}: needs 'task', 'variant' and 'obs'");
        var task = Catalog.Find(m.Task, m.Variant ?? "standard")
            ?? throw new InputException($"{input.Name}: unknown task {m.Task}/{m.Variant ?? "standard"}");
        return Inputs(task, m.Obs);
    }

    public JsonObject Postprocess(InferenceOutput output, int item)
    {
        var a = output.Tensors[ActionOutput].AsFloats(ActionOutput);
        var arr = new JsonArray();
        for (int i = 0; i < ActWidth; i++) arr.Add(a[item * ActWidth + i]);
        return new JsonObject { ["action"] = arr };
    }
}
