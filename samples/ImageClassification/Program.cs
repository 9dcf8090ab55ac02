// Classifies the bundled images with the bundled V-MoE package through the library API, and shows
// which experts served each image's patches.
using MoeModal.Core.Execution;
using MoeModal.Core.Hosting;
using MoeModal.Plugins.Vision;

string? modelDir = null, imageDir = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--model" when i + 1 < args.Length: modelDir = args[++i]; break;
        case "--images" when i + 1 < args.Length: imageDir = args[++i]; break;
        case "--help" or "-h":
            Console.WriteLine("usage: dotnet run --project samples/ImageClassification [-- [--model DIR] [--images DIR]]");
            return 0;
        default:
            Console.Error.WriteLine("usage: dotnet run --project samples/ImageClassification [-- [--model DIR] [--images DIR]]");
            return 2;
    }
}
modelDir ??= Repo.Find("models/vision-fmnist");
imageDir ??= Repo.Find("samples/ImageClassification/images");

using var model = MoeModel.Load(modelDir);
var processor = new VisionModule().Bind(model.Info);
var pipeline = new BatchPipeline(model, processor, batchSize: 32, new RunRequest { TraceTokens = true });
var files = Directory.GetFiles(imageDir).Order(StringComparer.Ordinal).ToArray();
Console.WriteLine($"{model.Manifest.Name}: {model.Report.Parameters:N0} parameters, loaded in {model.Report.LoadTime.TotalMilliseconds:F0} ms");
Console.WriteLine($"{"file",-22} {"predicted",-12} {"score",6}  {"truth",-13} experts (moe1 | moe3: top-1 per patch, most used first)");

int correct = 0, known = 0, failed = 0;
foreach (var r in pipeline.Run(files.Select(f => new PipelineItem(f, () => File.ReadAllBytes(f)))))
{
    string name = Path.GetFileName(r.Name);
    if (!r.Ok)
    {
        Console.WriteLine($"{name,-22} error: {r.Error}");
        failed++;
        continue;
    }
    string label = r.Result!["label"]!.GetValue<string>();
    double score = r.Result["score"]!.GetValue<double>();
    string? truth = Labels.FromFileName(name);
    string mark = truth is null ? " " : truth == label ? "✓" : "✗";
    if (truth is not null) { known++; if (truth == label) correct++; }
    var experts = r.Result["experts"]!.AsObject().Select(kv => Labels.Histogram(kv.Value!.AsArray().Select(v => v!.GetValue<int>())));
    Console.WriteLine($"{name,-22} {label,-12} {score,6:F3}  {truth ?? "?",-12}{mark} {string.Join(" | ", experts)}");
}
Console.WriteLine($"{correct}/{known} correct{(failed > 0 ? $", {failed} failed" : "")}");
return failed > 0 ? 1 : 0;

static class Labels
{
    private static readonly Dictionary<string, string> Names = new()
    {
        ["tshirt"] = "T-shirt/top", ["trouser"] = "Trouser", ["pullover"] = "Pullover", ["dress"] = "Dress", ["coat"] = "Coat",
        ["sandal"] = "Sandal", ["shirt"] = "Shirt", ["sneaker"] = "Sneaker", ["bag"] = "Bag", ["boot"] = "Ankle boot",
    };

    /// <summary>"1002_sandal.bmp" → "Sandal".</summary>
    public static string? FromFileName(string name)
    {
        string stem = Path.GetFileNameWithoutExtension(name);
        int us = stem.IndexOf('_');
        return us >= 0 && Names.TryGetValue(stem[(us + 1)..], out var l) ? l : null;
    }

    /// <summary>"e3×20 e5×15 …": how many patches each expert served first.</summary>
    public static string Histogram(IEnumerable<int> experts) => string.Join(" ", experts
        .Where(e => e >= 0).GroupBy(e => e).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Take(3)
        .Select(g => $"e{g.Key}×{g.Count()}"));
}

static class Repo
{
    /// <summary>Finds a path of the repository from the current folder or the program's folder, upwards.</summary>
    public static string Find(string relative)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (Directory.Exists(Path.Combine(d.FullName, relative))) return Path.Combine(d.FullName, relative);
        throw new DirectoryNotFoundException($"{relative} not found; pass it explicitly");
    }
}
