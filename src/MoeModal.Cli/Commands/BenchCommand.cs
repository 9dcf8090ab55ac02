using System.Diagnostics;
using System.Text.Json.Nodes;
using MoeModal.Abstractions;
using MoeModal.Core.Execution;
using MoeModal.Core.Hosting;
using MoeModal.Plugins.Vision;

namespace MoeModal.Cli.Commands;

/// <summary>
/// moemodal bench: in one run, times the routed MoE layers (gate + router + only the chosen
/// experts) against the package's dense all-experts export of the same layers, and the whole
/// routed model against the single dense graph, at batch 1 and 128. Measurements alternate
/// between the two sides so machine noise hits both alike; medians are reported.
/// </summary>
public static class BenchCommand
{
    private static readonly string Help = $"""
        usage: moemodal bench [--model DIR] [options]

        Inputs: --data DIR (a Fashion-MNIST IDX folder) or, by default, the package's reference
        images (reference/reference.json). The last line is one JSON object with
        sparse_vs_dense_speedup (MoE layers, batch 128) and the per-batch timings.

        {string.Format(ModelOptions.Help, ClassifyCommand.DefaultPackage)}
          --data DIR               Fashion-MNIST IDX folder for inputs
          --batches LIST           comma-separated batch sizes (default 1,128)
          --seconds S              time budget per measurement (default 2)
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (CliApp.WantsHelp(args, Help, stdout)) return CliApp.Ok;
        var a = Args.Parse(args, [.. ModelOptions.Values, "--data", "--batches", "--seconds"], []);
        if (a.Positionals.Count > 0) throw new UsageException($"bench takes no positional arguments (got '{a.Positionals[0]}')");
        var batches = (a.Value("--batches") ?? "1,128").Split(',').Select(s =>
            int.TryParse(s, out int b) && b is >= 1 and <= 4096 ? b : throw new UsageException($"--batches: '{s}' is not a batch size (1..4096)")).ToArray();
        double seconds = a.Double("--seconds") ?? 2.0;
        if (seconds <= 0) throw new UsageException("--seconds must be positive");

        var (model, processor, _) = ModelOptions.Load(a, ClassifyCommand.DefaultPackage, "vision", stderr);
        using (model)
        {
            var vision = (VisionProcessor)processor;
            var baselines = model.Manifest.Baselines;
            if (baselines.MoeLayers.Count == 0 && baselines.Dense is null)
                throw new UsageException($"package '{model.Manifest.Name}' declares no baselines to compare against");
            // Both sides run with the same ONNX Runtime settings. (Letting the dense graph's threads
            // spin did not make it faster here, and in alternating runs its spinning threads steal
            // the cores the routed run needs right after it.)
            var options = model.Options;
            using var dense = baselines.Dense is null ? null : StandaloneGraph.Load(model.Directory, baselines.Dense, options, "baseline/dense");
            var layers = baselines.MoeLayers.ToDictionary(kv => kv.Key, kv => StandaloneGraph.Load(model.Directory, kv.Value, options, $"baseline/{kv.Key}"));
            try
            {
                var images = BenchImages(a, model, vision);
                var result = new JsonObject
                {
                    ["threads"] = options.IntraOpThreads,
                    ["providers"] = EvalCommand.Providers(model),
                };
                double maxDiff = 0;
                foreach (int b in batches)
                {
                    var input = new Dictionary<string, Tensor>
                    {
                        [vision.Metadata.InputName] = BatchPipeline.Stack([.. Enumerable.Range(0, b).Select(i =>
                            (IReadOnlyDictionary<string, Tensor>)new Dictionary<string, Tensor> { [vision.Metadata.InputName] = images[i % images.Length] })])
                            [vision.Metadata.InputName],
                    };
                    var (entry, diff) = MeasureBatch(model, dense, layers, input, seconds, stderr, b);
                    maxDiff = Math.Max(maxDiff, diff);
                    result[$"batch_{b}"] = entry;
                }
                int last = batches.Contains(128) ? 128 : batches[^1];
                result["sparse_vs_dense_speedup"] = result[$"batch_{last}"]!["moe_speedup"]!.DeepClone();
                result["sparse_vs_dense_batch"] = last;
                result["max_abs_diff"] = maxDiff;
                stdout.WriteLine(CliApp.Line(result));
                return CliApp.Ok;
            }
            finally
            {
                foreach (var l in layers.Values) l.Dispose();
            }
        }
    }

    private static Tensor[] BenchImages(Args a, MoeModel model, VisionProcessor vision)
    {
        if (a.Value("--data") is { } dir)
        {
            var data = IdxDataset.Load(dir);
            return [.. Enumerable.Range(0, Math.Min(512, data.Count)).Select(i => vision.PreprocessGray8(data.Image(i), data.Cols, data.Rows))];
        }
        string path = Path.Combine(model.Directory, "reference", "reference.json");
        if (!File.Exists(path)) throw new UsageException($"no --data given and the package has no {path}");
        var json = JsonNode.Parse(File.ReadAllText(path))!;
        return [.. json["images_u8"]!.AsArray().Select(img =>
        {
            var px = img!.AsArray().Select(v => (byte)v!.GetValue<int>()).ToArray();
            int side = (int)Math.Sqrt(px.Length);
            return vision.PreprocessGray8(px, side, side);
        })];
    }

    private static (JsonObject Entry, double MaxDiff) MeasureBatch(MoeModel model, StandaloneGraph? dense,
        Dictionary<string, StandaloneGraph> layers, Dictionary<string, Tensor> input, double seconds, TextWriter stderr, int batch)
    {
        var entry = new JsonObject();
        double maxDiff = 0;
        var full = model.Run(input, new RunRequest { KeepIntermediates = true });
        double sparseTotal = 0, denseTotal = 0;
        var perLayer = new JsonObject();
        foreach (var step in model.MoeSteps)
        {
            if (!layers.TryGetValue(step.Name, out var layer)) continue;
            var h = full.Tensors[step.Input];
            var residual = step.Residual is null ? null : full.Tensors[step.Residual];
            int n = h.Length / step.D;
            var flat = new Dictionary<string, Tensor> { ["h"] = Tensor.FromFloats(h.Floats!, n, step.D) };
            if (residual is not null) flat["residual"] = Tensor.FromFloats(residual.Floats!, n, step.DOut);
            var sparseOut = model.RunMoeStep(step.Name, h, residual).Output.Floats!;
            var denseOut = layer.Run(flat).Values.First().Floats!;
            for (int i = 0; i < sparseOut.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(sparseOut[i] - denseOut[i]));
            var (s, d) = Alternate(() => model.RunMoeStep(step.Name, h, residual), () => layer.Run(flat), seconds);
            sparseTotal += s;
            denseTotal += d;
            perLayer[step.Name] = new JsonObject { ["sparse_ms"] = Round(s), ["dense_ms"] = Round(d), ["speedup"] = Round(d / s) };
            stderr.WriteLine($"bench: batch {batch,4} {step.Name}: routed {s:F3} ms, dense {d:F3} ms, ×{d / s:F2}");
        }
        entry["moe_sparse_ms"] = Round(sparseTotal);
        entry["moe_dense_ms"] = Round(denseTotal);
        entry["moe_speedup"] = Round(denseTotal / Math.Max(1e-9, sparseTotal));
        entry["layers"] = perLayer;
        if (dense is not null)
        {
            var outName = model.Manifest.Outputs[0].Name;
            var routedLogits = full.Tensors[outName].Floats!;
            var denseLogits = dense.Run(input).Values.First().Floats!;
            for (int i = 0; i < routedLogits.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(routedLogits[i] - denseLogits[i]));
            var (s, d) = Alternate(() => model.Run(input), () => dense.Run(input), seconds);
            entry["model_routed_ms"] = Round(s);
            entry["model_dense_ms"] = Round(d);
            entry["model_speedup"] = Round(d / s);
            stderr.WriteLine($"bench: batch {batch,4} whole model: routed {s:F3} ms, dense graph {d:F3} ms, ×{d / s:F2}");
        }
        return (entry, maxDiff);
    }

    /// <summary>Warms both up, then alternates single runs until the budget is spent; returns median ms of each.</summary>
    private static (double A, double B) Alternate(Action a, Action b, double seconds)
    {
        for (int i = 0; i < 3; i++) { a(); b(); }
        var ta = new List<double>();
        var tb = new List<double>();
        var budget = Stopwatch.StartNew();
        while ((budget.Elapsed.TotalSeconds < seconds || ta.Count < 5) && ta.Count < 2000)
        {
            long t0 = Stopwatch.GetTimestamp();
            a();
            long t1 = Stopwatch.GetTimestamp();
            b();
            long t2 = Stopwatch.GetTimestamp();
            ta.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            tb.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
        }
        return (Median(ta), Median(tb));
    }

    private static double Median(List<double> x)
    {
        x.Sort();
        return x.Count % 2 == 1 ? x[x.Count / 2] : (x[x.Count / 2 - 1] + x[x.Count / 2]) / 2;
    }

    private static double Round(double v) => Math.Round(v, 4);
}
