using System.Diagnostics;
using System.Text.Json.Nodes;
using MoeModal.Abstractions;
using MoeModal.Core.Execution;
using MoeModal.Cli.Speech;
using MoeModal.Core.Hosting;
using MoeModal.Core.Packages;
using MoeModal.Plugins.Vision;

namespace MoeModal.Cli.Commands;

/// <summary>moemodal eval: accuracy and routing statistics on a labelled dataset.</summary>
public static class EvalCommand
{
    private static readonly string Help = $"""
        usage: moemodal eval [--model DIR] --data DIR|FILE.tsv [options]

        Speech packages: --data is a TSV file, one utterance per line: wav<TAB>reference units (units
        separated by spaces; paths relative to the TSV). The last line is one JSON object with mer
        (unit edit distance / reference units), n, rtf (mean processing time per second of audio),
        failed (files that could not be read; each counts as all its units deleted), sentence_error_rate.
        Without --model, a .tsv file selects the bundled speech package.

        Vision packages: DIR is a Fashion-MNIST IDX folder (t10k-images-idx3-ubyte[.gz] and
        t10k-labels-idx1-ubyte[.gz]). Progress goes to stderr; the last line on stdout is one JSON
        object: accuracy, n, expert_load (per MoE layer, the fraction of kept assignments each expert
        received), dropped_fraction (dropped assignments / all assignments), timing and providers.

        {string.Format(ModelOptions.Help, $"{ClassifyCommand.DefaultPackage} (an IDX folder) or {TranscribeCommand.DefaultPackage} (a .tsv)")}
          --data DIR|FILE.tsv      the dataset (required): an IDX folder (vision) or a TSV (speech)
          --split NAME             IDX file prefix (default t10k)
          --limit N                evaluate the first N examples only
          --batch N                examples per model call (vision; default 256)
          --parallel N             files transcribed at once (speech; default: the number of cores)
          --max-seconds X          refuse longer audio (speech)
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (CliApp.WantsHelp(args, Help, stdout)) return CliApp.Ok;
        var a = Args.Parse(args, [.. ModelOptions.Values, "--data", "--split", "--limit", "--batch", "--parallel", "--max-seconds"], []);
        string data = a.Value("--data") ?? throw new UsageException("eval needs --data");
        if (a.Positionals.Count > 0) throw new UsageException($"eval takes no positional arguments (got '{a.Positionals[0]}')");
        bool tsv = File.Exists(data);
        string dir = a.Value("--model") ?? ModelOptions.DefaultModel(tsv ? TranscribeCommand.DefaultPackage : ClassifyCommand.DefaultPackage);
        string modality = ManifestReader.ReadFile(Path.Combine(Path.GetFullPath(dir), ManifestReader.FileName)).Modality;
        if (modality == "speech") return SpeechEval.Run(a, data, stdout, stderr);
        var (model, processor, _) = ModelOptions.Load(a, ClassifyCommand.DefaultPackage, null, stderr);
        using (model)
        {
            return model.Manifest.Modality switch
            {
                "vision" => EvalVision(model, (VisionProcessor)processor, a, data, stdout, stderr),
                var m => throw new UsageException($"eval does not know how to evaluate '{m}' packages"),
            };
        }
    }

    private static int EvalVision(MoeModel model, VisionProcessor processor, Args a, string dataDir, TextWriter stdout, TextWriter stderr)
    {
        var data = IdxDataset.Load(dataDir, a.Value("--split") ?? "t10k");
        int n = Math.Min(data.Count, a.Int("--limit", 1) ?? int.MaxValue);
        int batch = a.Int("--batch", 1, 4096) ?? 256;
        var stats = new RoutingTotals();
        int correct = 0;
        var sw = Stopwatch.StartNew();
        double modelSeconds = 0;
        for (int start = 0; start < n; start += batch)
        {
            int count = Math.Min(batch, n - start);
            var items = new IReadOnlyDictionary<string, Tensor>[count];
            Parallel.For(0, count, i => items[i] = new Dictionary<string, Tensor>
            {
                [processor.Metadata.InputName] = processor.PreprocessGray8(data.Image(start + i), data.Cols, data.Rows),
            });
            var t0 = Stopwatch.GetTimestamp();
            var output = model.Run(BatchPipeline.Stack(items));
            modelSeconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
            stats.Add(output.Routing);
            var logits = output.Tensors[processor.Metadata.OutputName];
            int classes = logits.Shape[1];
            for (int i = 0; i < count; i++)
            {
                var row = logits.Floats!.AsSpan(i * classes, classes);
                int best = 0;
                for (int c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
                if (best == data.Labels[start + i]) correct++;
            }
            stderr.WriteLine($"eval: {start + count}/{n} accuracy so far {(double)correct / (start + count):F4}");
        }
        var result = new JsonObject
        {
            ["accuracy"] = Math.Round((double)correct / Math.Max(1, n), 6),
            ["n"] = n,
            ["correct"] = correct,
            ["expert_load"] = stats.ExpertLoad(),
            ["dropped_fraction"] = Math.Round(stats.DroppedFraction, 6),
            ["routing"] = stats.Describe(model),
            ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 3),
            ["model_seconds"] = Math.Round(modelSeconds, 3),
            ["images_per_second"] = Math.Round(n / Math.Max(1e-9, sw.Elapsed.TotalSeconds), 1),
            ["providers"] = Providers(model),
        };
        stdout.WriteLine(CliApp.Line(result));
        return CliApp.Ok;
    }

    /// <summary>Which providers the subgraphs actually run on, and any CUDA fallback.</summary>
    public static JsonObject Providers(MoeModel model)
    {
        var o = new JsonObject();
        foreach (var g in model.Report.Subgraphs.GroupBy(s => s.Actual.ToString().ToLowerInvariant()))
            o[g.Key] = g.Count();
        if (model.Report.CudaFailure is { } f) o["cuda_fallback"] = f;
        return o;
    }
}

/// <summary>Accumulates routing traces over many calls.</summary>
public sealed class RoutingTotals
{
    private readonly Dictionary<string, long[]> _perExpert = [];
    private readonly List<string> _order = [];
    private long _assignments, _dropped;

    public void Add(IEnumerable<MoeStepTrace> traces)
    {
        foreach (var t in traces)
        {
            if (!_perExpert.TryGetValue(t.Step, out var counts))
            {
                _perExpert[t.Step] = counts = new long[t.TokensPerExpert.Count];
                _order.Add(t.Step);
            }
            for (int e = 0; e < counts.Length; e++) counts[e] += t.TokensPerExpert[e];
            _assignments += (long)t.Tokens * t.K;
            _dropped += t.DroppedAssignments;
        }
    }

    public double DroppedFraction => _assignments == 0 ? 0 : (double)_dropped / _assignments;

    public JsonObject ExpertLoad()
    {
        var o = new JsonObject();
        foreach (var step in _order)
        {
            var c = _perExpert[step];
            double total = Math.Max(1, c.Sum());
            o[step] = new JsonArray([.. c.Select(v => (JsonNode)Math.Round(v / total, 5))]);
        }
        return o;
    }

    public JsonObject Describe(MoeModel model)
    {
        var o = new JsonObject();
        foreach (var s in model.MoeSteps) o[s.Name] = s.Routing.ToString();
        return o;
    }
}
