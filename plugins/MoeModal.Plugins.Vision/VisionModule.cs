using System.Text.Json.Nodes;
using MoeModal.Abstractions;

namespace MoeModal.Plugins.Vision;

/// <summary>The vision modality plugin: image files in, class labels out.</summary>
public sealed class VisionModule : IModalityPlugin
{
    public VisionModule() : this(VisionOptions.Default) { }

    public VisionModule(VisionOptions options) => Options = options;

    public VisionOptions Options { get; }

    public string Modality => "vision";

    public string Description => "Image classification: PNG, JPEG, BMP, GIF (first frame), WebP → class label";

    public IReadOnlyList<string> AcceptedInputs { get; } = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"];

    public IModalityProcessor Bind(PackageInfo package) => new VisionProcessor(VisionMetadata.From(package), Options);
}

/// <summary>The vision plugin bound to one package.</summary>
public sealed class VisionProcessor(VisionMetadata meta, VisionOptions options) : IModalityProcessor
{
    private readonly ImageDecoder _decoder = new(options);
    private readonly VisionPreprocessor _pre = new(meta);

    public VisionMetadata Metadata => meta;

    public IReadOnlyDictionary<string, Tensor> Preprocess(RawInput input)
    {
        using var image = _decoder.Decode(input.Bytes.Span);
        var data = new float[meta.Height * meta.Width];
        _pre.Process(image, data);
        return new Dictionary<string, Tensor> { [meta.InputName] = Tensor.FromFloats(data, 1, 1, meta.Height, meta.Width) };
    }

    /// <summary>Preprocesses raw 8-bit grayscale pixels (an IDX image) through the same path as files.</summary>
    public Tensor PreprocessGray8(ReadOnlySpan<byte> pixels, int width, int height)
    {
        using var gray = SixLabors.ImageSharp.Image.LoadPixelData<SixLabors.ImageSharp.PixelFormats.L8>(pixels, width, height);
        using var decoded = new ImageDecoder.Decoded(gray.CloneAs<SixLabors.ImageSharp.PixelFormats.Rgba32>(), "IDX", false);
        var data = new float[meta.Height * meta.Width];
        _pre.Process(decoded, data);
        return Tensor.FromFloats(data, 1, 1, meta.Height, meta.Width);
    }

    public JsonObject Postprocess(InferenceOutput output, int item)
    {
        var logits = output.Tensors[meta.OutputName];
        int classes = logits.Shape[1];
        var row = logits.AsFloats(meta.OutputName).AsSpan(item * classes, classes);
        var probs = Softmax(row);
        var order = Enumerable.Range(0, classes).OrderByDescending(i => probs[i]).ThenBy(i => i).ToArray();
        var top = new JsonArray();
        foreach (int i in order.Take(Math.Min(options.TopClasses, classes)))
            top.Add(new JsonObject { ["label"] = meta.Labels[i], ["score"] = Math.Round(probs[i], 6) });
        var result = new JsonObject
        {
            ["label"] = meta.Labels[order[0]],
            ["index"] = order[0],
            ["score"] = Math.Round(probs[order[0]], 6),
            ["top"] = top,
        };
        var experts = PatchExperts(output, item);
        if (experts is not null) result["experts"] = experts;
        return result;
    }

    /// <summary>When routing was traced: per MoE step, the top-1 expert of every patch (−1 = dropped).</summary>
    private static JsonObject? PatchExperts(InferenceOutput output, int item)
    {
        if (output.Routing.All(t => t.Assignments is null)) return null;
        var o = new JsonObject();
        foreach (var t in output.Routing)
        {
            if (t.Assignments is not { } a) continue;
            int perItem = a.TokenShape.Count >= 2 ? a.TokenShape[1] : 1;
            var arr = new JsonArray();
            for (int p = 0; p < perItem; p++)
            {
                int i = (item * perItem + p) * t.K;
                arr.Add(a.Kept[i] ? a.Experts[i] : -1);
            }
            o[t.Step] = arr;
        }
        return o;
    }

    private static double[] Softmax(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        foreach (var v in x) max = Math.Max(max, v);
        var p = new double[x.Length];
        double sum = 0;
        for (int i = 0; i < x.Length; i++) sum += p[i] = Math.Exp(x[i] - max);
        for (int i = 0; i < x.Length; i++) p[i] /= sum;
        return p;
    }
}
