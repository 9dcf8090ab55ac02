using System.Diagnostics;
using MoeModal.Abstractions;
using MoeModal.Core.Packages;

namespace MoeModal.Core.Execution;

/// <summary>Per-call options.</summary>
public sealed record RunRequest
{
    /// <summary>Record every token's experts, weights and drops (for explanations).</summary>
    public bool TraceTokens { get; init; }

    /// <summary>Return every tensor of the dataflow, not only the package outputs.</summary>
    public bool KeepIntermediates { get; init; }

    public static readonly RunRequest Default = new();
}

/// <summary>
/// A loaded, validated model package: one session per subgraph, ready to run. Thread-safe: many
/// callers may <see cref="Run"/> at once.
/// </summary>
public sealed class MoeModel : IDisposable
{
    private readonly IStepRunner[] _steps;

    private MoeModel(PackageManifest manifest, PackagePaths paths, IStepRunner[] steps, LoadReport report, LoadOptions options)
    {
        Manifest = manifest;
        Directory = paths.Root;
        _steps = steps;
        Report = report;
        Options = options;
        Info = new PackageInfo(manifest.Name, manifest.Modality, paths.Root, manifest.Inputs, manifest.Outputs,
            manifest.Metadata, [.. steps.OfType<MoeStepRunner>().Select(s => s.Name)]);
    }

    public PackageManifest Manifest { get; }
    public string Directory { get; }
    public LoadReport Report { get; }
    public LoadOptions Options { get; }

    /// <summary>What plugins see of this package.</summary>
    public PackageInfo Info { get; }

    internal IReadOnlyList<IStepRunner> Steps => _steps;

    /// <summary>The moe steps with their routing, experts and dimensions.</summary>
    public IEnumerable<MoeStepInfo> MoeSteps => _steps.OfType<MoeStepRunner>()
        .Select(s => new MoeStepInfo(s.Name, s.ExpertNames, s.Routing, s.D, s.DOut, s.InputTensor, s.ResidualTensor, s.OutputTensor));

    /// <summary>Loads and validates a package folder. Throws <see cref="ModelPackageException"/>.</summary>
    public static MoeModel Load(string directory, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        var sw = Stopwatch.StartNew();
        var paths = new PackagePaths(directory);
        var manifest = ManifestReader.ReadFile(Path.Combine(paths.Root, ManifestReader.FileName));
        var factory = new SessionFactory(paths, options);
        var validator = new PackageValidator(manifest);
        var created = new List<IDisposable>();
        var steps = new List<IStepRunner>();
        try
        {
            foreach (var step in manifest.Steps)
            {
                var ep = manifest.ExecutionProvider;
                switch (step)
                {
                    case OnnxStepManifest o:
                    {
                        var g = Track(created, factory.Create(o.Path, o.Name, o.Name, o.ExecutionProvider ?? ep, options.IntraOpThreads));
                        validator.CheckOnnxStep(o, g);
                        steps.Add(new OnnxStepRunner(o, g));
                        break;
                    }
                    case MoeStepManifest m:
                        steps.Add(LoadMoe(m, ep, factory, validator, options, created));
                        break;
                }
            }
            validator.CheckOutputs(manifest);
            var report = new LoadReport(
                [.. steps.SelectMany(s => s.Subgraphs).Select(g => new SubgraphReport(g.Role, g.Path, g.Requested, g.Actual, g.FallbackReason, g.Parameters, g.LoadTime))],
                sw.Elapsed, factory.CudaFailure);
            return new MoeModel(manifest, paths, [.. steps], report, options);
        }
        catch
        {
            foreach (var d in created) d.Dispose();
            throw;
        }
    }

    private static IStepRunner LoadMoe(MoeStepManifest m, ExecutionProviderKind ep, SessionFactory factory,
        PackageValidator validator, LoadOptions options, List<IDisposable> created)
    {
        var routing = m.Routing;
        if (options.TopK is int k) routing = routing with { K = k };
        if (options.CapacityFactor is double cf) routing = routing with { CapacityFactor = cf };

        var experts = m.Experts.Select(e => (e.Name, Path: e.Path, e.ExecutionProvider, External: false)).ToList();
        foreach (var extra in options.ExtraExperts.Where(x => x.Step == m.Name))
        {
            var ep2 = extra.ExecutionProvider is null ? (ExecutionProviderKind?)null : ManifestReader.ParseProvider(extra.ExecutionProvider);
            int at = experts.FindIndex(x => x.Name == extra.Name);
            var entry = (extra.Name, Path: extra.OnnxPath, ep2, External: true);
            if (at >= 0) experts[at] = entry; else experts.Add(entry);
        }
        string? err = routing.Validate(experts.Count);
        if (err is not null) throw ModelPackageException.At(ManifestReader.FileName, m.Name, null, err);

        int parallel = Math.Max(1, options.ExpertParallelism);
        int expertThreads = parallel > 1 ? 1 : options.IntraOpThreads;
        var gate = Track(created, factory.Create(m.GatePath, $"{m.Name}/gate", m.Name, m.GateExecutionProvider ?? ep, options.IntraOpThreads));
        var sessions = new Subgraph[experts.Count];
        for (int i = 0; i < experts.Count; i++)
        {
            var (name, path, eep, external) = experts[i];
            string role = $"{m.Name}/{name}";
            sessions[i] = Track(created, external
                ? factory.CreateFromFile(Path.GetFullPath(path), path, role, m.Name, eep ?? ep, expertThreads)
                : factory.Create(path, role, m.Name, eep ?? ep, expertThreads));
        }
        var (d, dOut) = validator.CheckMoeStep(m, gate, sessions, [.. experts.Select(x => x.Path)]);
        return new MoeStepRunner(m, gate, sessions, [.. experts.Select(x => x.Name)], routing, d, dOut, parallel);
    }

    private static T Track<T>(List<IDisposable> created, T item) where T : IDisposable
    {
        created.Add(item);
        return item;
    }

    /// <summary>
    /// Runs the package on its input tensors (each with the batch on axis 0). Throws
    /// <see cref="InputException"/> when the tensors do not fit the package, <see cref="RoutingException"/>
    /// when a gate row is not finite, <see cref="InferenceException"/> when ONNX Runtime fails.
    /// </summary>
    public InferenceOutput Run(IReadOnlyDictionary<string, Tensor> inputs, RunRequest? request = null)
    {
        request ??= RunRequest.Default;
        CheckInputs(inputs);
        var store = new Dictionary<string, Tensor>(inputs, StringComparer.Ordinal);
        var context = new RunContext(request.TraceTokens);
        foreach (var step in _steps) step.Execute(store, context);
        IReadOnlyDictionary<string, Tensor> outputs = request.KeepIntermediates
            ? store
            : Manifest.Outputs.ToDictionary(o => o.Name, o => store[o.Name], StringComparer.Ordinal);
        return new InferenceOutput(outputs, context.Traces);
    }

    /// <summary>Runs one moe step alone on its input (and residual); used by benchmarks and tests.</summary>
    public (Tensor Output, MoeStepTrace Trace) RunMoeStep(string step, Tensor input, Tensor? residual, bool traceTokens = false)
    {
        var runner = _steps.OfType<MoeStepRunner>().FirstOrDefault(s => s.Name == step)
            ?? throw new ArgumentException($"no moe step named '{step}'");
        if (input.Kind != TensorKind.Float32 || input.Shape.Count < 2 || input.Shape[^1] != runner.D)
            throw new InputException($"step '{step}': input must be float32 [..., {runner.D}], got {input.ShapeText}");
        var context = new RunContext(traceTokens);
        var output = runner.Run(input, residual, context);
        return (output, context.Traces[0]);
    }

    private void CheckInputs(IReadOnlyDictionary<string, Tensor> inputs)
    {
        foreach (var name in inputs.Keys)
            if (!Manifest.Inputs.Any(i => i.Name == name))
                throw new InputException($"package '{Manifest.Name}' has no input '{name}' (inputs: {string.Join(", ", Manifest.Inputs.Select(i => i.Name))})");
        foreach (var decl in Manifest.Inputs)
        {
            if (!inputs.TryGetValue(decl.Name, out var t))
                throw new InputException($"input '{decl.Name}' is missing");
            bool ok = t.Kind == decl.Kind && t.Shape.Count == decl.Shape.Count;
            for (int i = 0; ok && i < decl.Shape.Count; i++)
                ok = decl.Shape[i] < 0 || decl.Shape[i] == t.Shape[i];
            if (!ok)
                throw new InputException($"input '{decl.Name}' must be {TensorFact.KindName(decl.Kind)} {TensorFact.ShapeText(decl.Shape)}, got {TensorFact.KindName(t.Kind)} {t.ShapeText}");
        }
    }

    public void Dispose()
    {
        foreach (var s in _steps) s.Dispose();
    }
}

/// <summary>A moe step as loaded.</summary>
public sealed record MoeStepInfo(string Name, IReadOnlyList<string> Experts, Routing.RoutingOptions Routing,
    int D, int DOut, string Input, string? Residual, string Output);
