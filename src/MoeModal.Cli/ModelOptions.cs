using MoeModal.Abstractions;
using MoeModal.Core;
using MoeModal.Core.Execution;
using MoeModal.Core.Packages;
using MoeModal.Core.Plugins;
using MoeModal.Plugins.Robotics;
using MoeModal.Plugins.Speech;
using MoeModal.Plugins.Vision;

namespace MoeModal.Cli;

/// <summary>Options every model-running command shares, and how they turn into a loaded model.</summary>
public static class ModelOptions
{
    public static readonly string[] Values = ["--model", "--ep", "--ep-fallback", "--top-k", "--capacity-factor", "--plugins", "--threads"];

    public const string Help = """
          --model DIR              model package folder (default: the bundled {0} package)
          --ep cpu|cuda            execution provider for every subgraph (default: the package's)
          --ep-fallback cpu|fail   when CUDA cannot be used: run on CPU and say so (default), or fail
          --top-k K                override k of every top-k MoE layer
          --capacity-factor X      override the capacity factor (<= 0: dropless)
          --plugins DIR            load extra modality plugins from DIR
          --threads N              ONNX Runtime threads (default: all cores)
        """;

    /// <summary>Where the bundled packages live: beside the program, or in the repository's models/ folder.</summary>
    public static string DefaultModel(string name)
    {
        string beside = Path.Combine(AppContext.BaseDirectory, "models", name);
        if (File.Exists(Path.Combine(beside, ManifestReader.FileName))) return beside;
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "models", name);
            if (File.Exists(Path.Combine(candidate, ManifestReader.FileName))) return candidate;
        }
        return beside;
    }

    public static LoadOptions LoadOptions(Args a, TextWriter stderr, int? defaultThreads = null)
    {
        var ep = a.Value("--ep") is { } e ? ParseEp(e) : (ExecutionProviderKind?)null;
        var fallback = a.Value("--ep-fallback") switch
        {
            null or "cpu" => ProviderFallback.Cpu,
            "fail" => ProviderFallback.Fail,
            var v => throw new UsageException($"--ep-fallback must be cpu or fail, got '{v}'"),
        };
        int threads = a.Int("--threads", 1, 256) ?? defaultThreads ?? Environment.ProcessorCount;
        return new LoadOptions
        {
            ExecutionProvider = ep,
            Fallback = fallback,
            TopK = a.Int("--top-k", 1, 1024),
            CapacityFactor = a.Double("--capacity-factor"),
            IntraOpThreads = threads,
            ExpertParallelism = threads,
            Log = line => stderr.WriteLine(line),
        };
    }

    private static ExecutionProviderKind ParseEp(string v)
    {
        try
        {
            return ManifestReader.ParseProvider(v);
        }
        catch (ArgumentException ex)
        {
            throw new UsageException($"--ep: {ex.Message}");
        }
    }

    /// <summary>The built-in plugins plus any from --plugins.</summary>
    public static IReadOnlyList<IModalityPlugin> Plugins(Args a, IEnumerable<IModalityPlugin>? builtins = null)
    {
        var list = new List<IModalityPlugin>(builtins ?? [new VisionModule(), new RobotModule(), new SpeechModule()]);
        if (a.Value("--plugins") is { } dir) list.AddRange(PluginLoader.FromFolder(dir));
        return list;
    }

    /// <summary>Loads the model and binds its modality's plugin. Errors here exit with code 2.</summary>
    public static (MoeModel Model, IModalityProcessor Processor, IModalityPlugin Plugin) Load(Args a, string defaultPackage,
        string? requiredModality, TextWriter stderr, IEnumerable<IModalityPlugin>? builtins = null, int? defaultThreads = null)
    {
        string dir = a.Value("--model") ?? DefaultModel(defaultPackage);
        var plugins = Plugins(a, builtins);
        var options = LoadOptions(a, stderr, defaultThreads);
        var manifest = ManifestReader.ReadFile(Path.Combine(Path.GetFullPath(dir), ManifestReader.FileName));
        if (requiredModality is not null && manifest.Modality != requiredModality)
            throw new ModelPackageException($"{dir}: this command needs a {requiredModality} package; '{manifest.Name}' is {manifest.Modality}");
        var plugin = plugins.LastOrDefault(p => p.Modality == manifest.Modality)
            ?? throw new ModelPackageException($"{dir}: no plugin serves modality '{manifest.Modality}' (have: {string.Join(", ", plugins.Select(p => p.Modality))})");
        var probe = new PackageInfo(manifest.Name, manifest.Modality, dir, manifest.Inputs, manifest.Outputs, manifest.Metadata, []);
        var extra = plugin.ContributeExperts(probe).ToList();
        var model = MoeModel.Load(dir, options with { ExtraExperts = extra });
        try
        {
            return (model, plugin.Bind(model.Info), plugin);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
