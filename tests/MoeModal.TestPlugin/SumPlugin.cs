using System.Buffers.Binary;
using System.Text.Json.Nodes;
using MoeModal.Abstractions;

namespace MoeModal.TestPlugin;

/// <summary>
/// Modality "test": raw bytes are little-endian float32 tokens of width D; the result is the sum
/// of the output. Contributes one expert: "e0" is replaced by expert_x10.onnx (y = 10·x).
/// </summary>
public sealed class SumPlugin : IModalityPlugin
{
    public string Modality => "test";

    public string Description => "test modality: float32 tokens in, their transformed sum out";

    public IReadOnlyList<string> AcceptedInputs { get; } = [".f32"];

    public IModalityProcessor Bind(PackageInfo package)
    {
        var input = package.Inputs.Single();
        if (input.Shape.Count != 3 || input.Shape[2] <= 0)
            throw new PluginException($"package '{package.Name}': input must be [b, t, D] with a static D");
        return new Processor(input.Name, input.Shape[2], package.Outputs.Single().Name);
    }

    public IEnumerable<ExpertContribution> ContributeExperts(PackageInfo package)
    {
        if (!package.Metadata.ContainsKey("allow_test_plugin_experts")) yield break;
        string dir = Path.GetDirectoryName(typeof(SumPlugin).Assembly.Location)!;
        yield return new ExpertContribution("moe", "e0", Path.Combine(dir, "expert_x10.onnx"));
    }

    private sealed class Processor(string inputName, int d, string outputName) : IModalityProcessor
    {
        public IReadOnlyDictionary<string, Tensor> Preprocess(RawInput input)
        {
            var bytes = input.Bytes.Span;
            if (bytes.Length == 0 || bytes.Length % (4 * d) != 0)
                throw new InputException($"{input.Name}: {bytes.Length} bytes is not a whole number of {d}-float tokens");
            var data = new float[bytes.Length / 4];
            for (int i = 0; i < data.Length; i++) data[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(4 * i)..]);
            return new Dictionary<string, Tensor> { [inputName] = Tensor.FromFloats(data, 1, data.Length / d, d) };
        }

        public JsonObject Postprocess(InferenceOutput output, int item)
        {
            var t = output.Tensors[outputName];
            int per = t.ItemLength;
            double sum = 0;
            foreach (var v in t.Floats!.AsSpan(item * per, per)) sum += v;
            return new JsonObject { ["sum"] = sum, ["routed_tokens"] = output.Routing.Sum(r => r.TokensPerExpert.Sum()) };
        }
    }
}
