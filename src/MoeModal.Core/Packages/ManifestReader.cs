using System.Text.Json;
using System.Text.Json.Nodes;
using MoeModal.Abstractions;
using MoeModal.Core.Routing;

namespace MoeModal.Core.Packages;

/// <summary>Parses <c>moemodal.json</c> strictly: unknown keys, kinds, policies and providers fail.</summary>
public static class ManifestReader
{
    public const string FileName = "moemodal.json";
    public const string Format = "moemodal-package/1";

    /// <summary>Manifests larger than this are refused before parsing.</summary>
    public const int MaxManifestBytes = 4 << 20;

    public static PackageManifest ReadFile(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new ModelPackageException($"{path}: no {FileName} here (is this a model package folder?)");
        if (info.Length > MaxManifestBytes)
            throw new ModelPackageException($"{path}: manifest is {info.Length} bytes, more than the {MaxManifestBytes}-byte limit");
        return Parse(File.ReadAllText(path), path);
    }

    public static PackageManifest Parse(string json, string file = FileName)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            throw new ModelPackageException($"{file}: not valid JSON: {ex.Message}", ex);
        }

        var r = new JsonObjectReader(root, file, "$");
        string format = r.RequiredString("format");
        if (format != Format) throw r.Error($"$.format is '{format}', expected '{Format}'");
        string name = r.RequiredString("name");
        string modality = r.RequiredString("modality");
        string? description = r.OptionalString("description");
        string? recipe = r.OptionalString("recipe");
        var ep = ParseProvider(r, r.OptionalString("execution_provider"), "$.execution_provider") ?? ExecutionProviderKind.Cpu;
        var inputs = ParseTensors(r, "inputs");
        var outputs = ParseTensors(r, "outputs");
        var stepsArr = r.RequiredArray("steps");
        var steps = new List<StepManifest>(stepsArr.Count);
        for (int i = 0; i < stepsArr.Count; i++) steps.Add(ParseStep(stepsArr[i], file, $"$.steps[{i}]"));
        var metadata = r.OptionalRawObject("metadata") ?? new JsonObject();
        var baselines = ParseBaselines(r.OptionalObject("baselines"));
        r.EnsureNoUnknownKeys();

        if (steps.Count == 0) throw r.Error("$.steps is empty: a package needs at least one step");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in steps)
            if (!names.Add(s.Name)) throw r.Error($"two steps are named '{s.Name}'");

        // Detach metadata from the parsed tree so callers may keep it.
        var meta = (JsonObject)metadata.DeepClone();
        return new PackageManifest(name, modality, description, recipe, ep, inputs, outputs, steps, meta, baselines);
    }

    private static IReadOnlyList<TensorInfo> ParseTensors(JsonObjectReader r, string key)
    {
        var arr = r.RequiredArray(key);
        var list = new List<TensorInfo>(arr.Count);
        for (int i = 0; i < arr.Count; i++)
        {
            var tr = r.Child(arr[i], $"$.{key}[{i}]");
            string name = tr.RequiredString("name");
            string type = tr.OptionalString("type") ?? "float32";
            TensorKind kind = type switch
            {
                "float32" => TensorKind.Float32,
                "int64" => TensorKind.Int64,
                _ => throw tr.Error($"{tr.Path}.type '{type}' is not supported (float32, int64)"),
            };
            var shapeArr = tr.RequiredArray("shape");
            var shape = new int[shapeArr.Count];
            for (int d = 0; d < shape.Length; d++)
            {
                if (shapeArr[d] is JsonValue v && v.TryGetValue(out int dim) && dim >= -1 && dim != 0) shape[d] = dim;
                else throw tr.Error($"{tr.Path}.shape[{d}] must be a positive integer or -1 (dynamic)");
            }
            if (shape.Length == 0) throw tr.Error($"{tr.Path}.shape must have at least one axis");
            tr.EnsureNoUnknownKeys();
            if (list.Any(x => x.Name == name)) throw tr.Error($"$.{key} names tensor '{name}' twice");
            list.Add(new TensorInfo(name, kind, shape));
        }
        if (list.Count == 0) throw r.Error($"$.{key} is empty");
        return list;
    }

    private static StepManifest ParseStep(JsonNode? node, string file, string path)
    {
        var s = new JsonObjectReader(node, file, path);
        string kind = s.RequiredString("kind");
        string name = s.RequiredString("name");
        StepManifest step = kind switch
        {
            "onnx" => new OnnxStepManifest(
                name,
                s.RequiredString("path"),
                s.RequiredStringMap("inputs"),
                s.RequiredStringMap("outputs"),
                ParseProvider(s, s.OptionalString("execution_provider"), $"{path}.execution_provider")),
            "moe" => ParseMoe(s, name, path),
            _ => throw s.Error($"{path}.kind '{kind}' is not a step kind (onnx, moe)"),
        };
        s.EnsureNoUnknownKeys();
        return step;
    }

    private static MoeStepManifest ParseMoe(JsonObjectReader s, string name, string path)
    {
        string input = s.RequiredString("input");
        string? residual = s.OptionalString("residual");
        string output = s.RequiredString("output");
        var gate = s.RequiredObject("gate");
        string gatePath = gate.RequiredString("path");
        var gateEp = ParseProvider(gate, gate.OptionalString("execution_provider"), $"{gate.Path}.execution_provider");
        gate.EnsureNoUnknownKeys();

        var arr = s.RequiredArray("experts");
        var experts = new List<ExpertManifest>(arr.Count);
        for (int i = 0; i < arr.Count; i++)
        {
            var e = s.Child(arr[i], $"{path}.experts[{i}]");
            string ename = e.OptionalString("name") ?? $"expert{i}";
            string epath = e.RequiredString("path");
            var eep = ParseProvider(e, e.OptionalString("execution_provider"), $"{e.Path}.execution_provider");
            e.EnsureNoUnknownKeys();
            experts.Add(new ExpertManifest(ename, epath, eep));
        }
        if (experts.Count == 0) throw s.Error($"step '{name}': {path}.experts is empty");

        var routing = ParseRouting(s.RequiredObject("routing"), name);
        string? err = routing.Validate(experts.Count);
        if (err is not null) throw s.Error($"step '{name}': {err}");
        return new MoeStepManifest(name, input, residual, output, gatePath, gateEp, experts, routing);
    }

    internal static RoutingOptions ParseRouting(JsonObjectReader r, string step)
    {
        string policyName = r.RequiredString("policy");
        if (!RoutingOptions.TryParsePolicy(policyName, out var policy))
            throw r.Error($"step '{step}': {r.Path}.policy '{policyName}' is not a routing policy (topk_softmax_first, topk_topk_first, dense)");
        string groupName = r.OptionalString("group") ?? "item";
        RoutingGroup group = groupName switch
        {
            "item" => RoutingGroup.Item,
            "batch" => RoutingGroup.Batch,
            _ => throw r.Error($"step '{step}': {r.Path}.group '{groupName}' is not a routing group (item, batch)"),
        };
        var options = new RoutingOptions
        {
            Policy = policy,
            K = r.OptionalInt("k", policy == GatingPolicy.Dense ? 0 : 1),
            Renormalize = r.OptionalBool("renormalize", false),
            CapacityFactor = r.OptionalNumber("capacity_factor", 0),
            BatchPrioritized = r.OptionalBool("batch_prioritized", true),
            Group = group,
        };
        r.EnsureNoUnknownKeys();
        if (options.Renormalize && policy != GatingPolicy.TopKSoftmaxFirst)
            throw r.Error($"step '{step}': {r.Path}.renormalize applies to topk_softmax_first only");
        return options;
    }

    private static BaselineManifest ParseBaselines(JsonObjectReader? b)
    {
        if (b is null) return BaselineManifest.None;
        string? dense = b.OptionalString("dense");
        var layers = b.Has("moe_layers") ? b.RequiredStringMap("moe_layers") : new Dictionary<string, string>();
        b.EnsureNoUnknownKeys();
        return new BaselineManifest(dense, layers);
    }

    internal static ExecutionProviderKind? ParseProvider(JsonObjectReader r, string? value, string path) => value switch
    {
        null => null,
        "cpu" => ExecutionProviderKind.Cpu,
        "cuda" => ExecutionProviderKind.Cuda,
        _ => throw r.Error($"{path} '{value}' is not an execution provider (cpu, cuda)"),
    };

    public static ExecutionProviderKind ParseProvider(string value) => value.ToLowerInvariant() switch
    {
        "cpu" => ExecutionProviderKind.Cpu,
        "cuda" => ExecutionProviderKind.Cuda,
        _ => throw new ArgumentException($"'{value}' is not an execution provider (cpu, cuda)"),
    };
}
