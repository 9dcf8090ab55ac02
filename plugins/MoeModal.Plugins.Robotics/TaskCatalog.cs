using System.Text.Json.Nodes;
using MoeModal.Abstractions;

namespace MoeModal.Plugins.Robotics;

/// <summary>One sub-task the policy was trained for (docs/robot-tasks.md).</summary>
public sealed record RobotTask(
    int Id, string Task, string Variant, int ObsDim, int ActDim,
    string[] ObsLayout, string[] ActLayout, float[] ActLow, float[] ActHigh);

/// <summary>The sub-tasks a robot package serves, read from its metadata.</summary>
public sealed class TaskCatalog
{
    private readonly Dictionary<(string, string), RobotTask> _byName = [];

    public TaskCatalog(IEnumerable<RobotTask> tasks)
    {
        All = [.. tasks.OrderBy(t => t.Id)];
        foreach (var t in All) _byName[(t.Task, t.Variant)] = t;
    }

    public IReadOnlyList<RobotTask> All { get; }

    public double Dt { get; init; } = 0.01;

    public int MaxObs => All.Max(t => t.ObsDim);

    public RobotTask? Find(string task, string variant) => _byName.GetValueOrDefault((task, variant));

    public static TaskCatalog From(PackageInfo package)
    {
        string where = $"package '{package.Name}'";
        var arr = package.Metadata["tasks"] as JsonArray ?? throw new PluginException($"{where}: metadata.tasks is missing");
        var tasks = new List<RobotTask>();
        foreach (var node in arr)
        {
            if (node is not JsonObject o) throw new PluginException($"{where}: metadata.tasks holds a non-object");
            try
            {
                var t = new RobotTask(
                    o["id"]!.GetValue<int>(), o["task"]!.GetValue<string>(), o["variant"]!.GetValue<string>(),
                    o["obs_dim"]!.GetValue<int>(), o["act_dim"]!.GetValue<int>(),
                    [.. o["obs_layout"]!.AsArray().Select(v => v!.GetValue<string>())],
                    [.. o["act_layout"]!.AsArray().Select(v => v!.GetValue<string>())],
                    [.. o["act_low"]!.AsArray().Select(v => v!.GetValue<float>())],
                    [.. o["act_high"]!.AsArray().Select(v => v!.GetValue<float>())]);
                if (t.ObsLayout.Length != t.ObsDim || t.ActLayout.Length != t.ActDim || t.ActLow.Length != t.ActDim || t.ActHigh.Length != t.ActDim)
                    throw new PluginException($"{where}: task {t.Id} ({t.Task}/{t.Variant}): layouts and limits disagree with obs_dim/act_dim");
                tasks.Add(t);
            }
            catch (Exception ex) when (ex is NullReferenceException or InvalidOperationException or FormatException)
            {
                throw new PluginException($"{where}: metadata.tasks entry {o.ToJsonString()} is incomplete ({ex.Message})", ex);
            }
        }
        if (tasks.Count == 0) throw new PluginException($"{where}: metadata.tasks is empty");
        double dt = package.Metadata["dt"] is JsonValue v && v.TryGetValue(out double d) ? d : 0.01;
        return new TaskCatalog(tasks) { Dt = dt };
    }
}
