using System.Text.Json.Nodes;
using MoeModal.Core.Execution;
using MoeModal.Core.Packages;

namespace MoeModal.Cli.Commands;

/// <summary>moemodal inspect: what a package holds and how it loaded.</summary>
public static class InspectCommand
{
    private static readonly string Help = $"""
        usage: moemodal inspect [--model DIR] [--json] [options]

        Loads the package and prints its steps, experts, routing, execution providers (with any
        CUDA fallback), parameter counts (total and active per token) and load times.

        {string.Format(ModelOptions.Help, ClassifyCommand.DefaultPackage)}
          --json                   one JSON object instead of text
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (CliApp.WantsHelp(args, Help, stdout)) return CliApp.Ok;
        var a = Args.Parse(args, ModelOptions.Values, ["--json"]);
        if (a.Positionals.Count > 0) throw new UsageException($"inspect takes no positional arguments (got '{a.Positionals[0]}')");
        string dir = a.Value("--model") ?? ModelOptions.DefaultModel(ClassifyCommand.DefaultPackage);
        using var model = MoeModel.Load(dir, ModelOptions.LoadOptions(a, stderr));
        var report = Describe(model);
        if (a.Flag("--json"))
        {
            stdout.WriteLine(CliApp.Line(report));
            return CliApp.Ok;
        }
        var m = model.Manifest;
        stdout.WriteLine($"package   {m.Name} ({m.Modality}) at {model.Directory}");
        if (m.Description is not null) stdout.WriteLine($"          {m.Description}");
        if (m.Recipe is not null) stdout.WriteLine($"recipe    {m.Recipe}");
        stdout.WriteLine($"inputs    {string.Join(", ", m.Inputs.Select(t => $"{t.Name} {TypeText(t)}"))}");
        stdout.WriteLine($"outputs   {string.Join(", ", m.Outputs.Select(t => $"{t.Name} {TypeText(t)}"))}");
        stdout.WriteLine($"params    {report["parameters"]} total, {report["active_parameters_per_token"]} active per token");
        stdout.WriteLine($"load      {model.Report.LoadTime.TotalMilliseconds:F0} ms");
        if (model.Report.CudaFailure is { } f) stdout.WriteLine($"cuda      unavailable: {f}");
        stdout.WriteLine();
        stdout.WriteLine("steps");
        foreach (var step in m.Steps)
        {
            if (step is OnnxStepManifest o)
                stdout.WriteLine($"  onnx  {o.Name,-10} {o.Path}  ({string.Join(", ", o.Inputs.Values)}) → ({string.Join(", ", o.Outputs.Values)})");
            else if (step is MoeStepManifest s)
            {
                var info = model.MoeSteps.Single(x => x.Name == s.Name);
                stdout.WriteLine($"  moe   {s.Name,-10} {info.Experts.Count} experts [n,{info.D}]→[n,{info.DOut}]  {info.Routing}");
                stdout.WriteLine($"        {s.Input}{(s.Residual is null ? "" : $" (+ residual {s.Residual})")} → {s.Output}");
            }
        }
        stdout.WriteLine();
        stdout.WriteLine($"  {"subgraph",-16} {"provider",-12} {"parameters",12} {"load ms",8}  file");
        foreach (var g in model.Report.Subgraphs)
        {
            string ep = g.Actual == g.Requested ? Name(g.Actual) : $"{Name(g.Actual)} (asked {Name(g.Requested)})";
            stdout.WriteLine($"  {g.Role,-16} {ep,-12} {g.Parameters,12:N0} {g.LoadTime.TotalMilliseconds,8:F1}  {g.Path}");
        }
        return CliApp.Ok;
    }

    private static string Name(ExecutionProviderKind k) => k.ToString().ToLowerInvariant();

    private static string TypeText(MoeModal.Abstractions.TensorInfo t) =>
        $"{(t.Kind == MoeModal.Abstractions.TensorKind.Float32 ? "float32" : "int64")}[{string.Join(",", t.Shape.Select(d => d < 0 ? "?" : d.ToString()))}]";

    public static JsonObject Describe(MoeModel model)
    {
        var subgraphs = new JsonArray();
        foreach (var g in model.Report.Subgraphs)
        {
            var o = new JsonObject
            {
                ["role"] = g.Role,
                ["path"] = g.Path,
                ["requested"] = Name(g.Requested),
                ["provider"] = Name(g.Actual),
                ["parameters"] = g.Parameters,
                ["load_ms"] = Math.Round(g.LoadTime.TotalMilliseconds, 2),
            };
            if (g.FallbackReason is not null) o["fallback_reason"] = g.FallbackReason;
            subgraphs.Add(o);
        }
        long total = model.Report.Parameters, active = total;
        var steps = new JsonArray();
        foreach (var s in model.MoeSteps)
        {
            var experts = model.Report.Subgraphs.Where(g => g.Role.StartsWith(s.Name + "/", StringComparison.Ordinal) && g.Role != s.Name + "/gate").ToList();
            long all = experts.Sum(e => e.Parameters);
            int k = s.Routing.EffectiveK(s.Experts.Count);
            active -= all - (long)Math.Round((double)all * k / Math.Max(1, experts.Count));
            steps.Add(new JsonObject
            {
                ["name"] = s.Name,
                ["experts"] = s.Experts.Count,
                ["routing"] = s.Routing.ToString(),
                ["d"] = s.D,
                ["d_out"] = s.DOut,
                ["expert_parameters"] = all,
            });
        }
        var r = new JsonObject
        {
            ["name"] = model.Manifest.Name,
            ["modality"] = model.Manifest.Modality,
            ["parameters"] = total,
            ["active_parameters_per_token"] = active,
            ["load_ms"] = Math.Round(model.Report.LoadTime.TotalMilliseconds, 1),
            ["moe_steps"] = steps,
            ["subgraphs"] = subgraphs,
        };
        if (model.Report.CudaFailure is { } f) r["cuda_fallback"] = f;
        return r;
    }
}
