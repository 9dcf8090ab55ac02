using System.Text.Json;
using System.Text.Json.Nodes;
using MoeModal.Abstractions;

namespace MoeModal.Plugins.Vision;

/// <summary>The vision part of a package's metadata: labels and preprocessing constants.</summary>
public sealed record VisionMetadata(
    string InputName,
    string OutputName,
    IReadOnlyList<string> Labels,
    int Width,
    int Height,
    float Mean,
    float Std,
    float[] GrayWeights,
    float Background,
    bool PadToSquare)
{
    /// <summary>Reads and checks the metadata; throws <see cref="PluginException"/> naming what is missing.</summary>
    public static VisionMetadata From(PackageInfo package)
    {
        string where = $"package '{package.Name}'";
        if (package.Inputs.Count != 1)
            throw new PluginException($"{where}: the vision plugin needs exactly one input tensor, the package has {package.Inputs.Count}");
        var input = package.Inputs[0];
        if (input.Kind != TensorKind.Float32 || input.Shape.Count != 4 || input.Shape[1] != 1)
            throw new PluginException($"{where}: input '{input.Name}' must be float32 [N, 1, H, W] (grayscale)");
        var output = package.Outputs[0];
        if (output.Kind != TensorKind.Float32 || output.Shape.Count != 2)
            throw new PluginException($"{where}: output '{output.Name}' must be float32 logits [N, classes]");

        var labels = (package.Metadata["labels"] as JsonArray)?.Select(l => l?.GetValue<string>() ?? "").ToArray()
            ?? throw new PluginException($"{where}: metadata.labels (an array of class names) is missing");
        if (output.Shape[1] > 0 && output.Shape[1] != labels.Length)
            throw new PluginException($"{where}: metadata.labels has {labels.Length} names but '{output.Name}' has {output.Shape[1]} classes");

        var pre = package.Metadata["preprocess"] as JsonObject
            ?? throw new PluginException($"{where}: metadata.preprocess is missing");
        string resize = Str(pre, "resize", where);
        if (resize != "adaptive_avg_pool")
            throw new PluginException($"{where}: metadata.preprocess.resize '{resize}' is not supported (adaptive_avg_pool)");
        int width = (int)Num(pre, "width", where), height = (int)Num(pre, "height", where);
        if (width != input.Shape[3] && input.Shape[3] > 0 || height != input.Shape[2] && input.Shape[2] > 0)
            throw new PluginException($"{where}: preprocess size {width}×{height} does not match input '{input.Name}'");
        float std = (float)Num(pre, "std", where);
        if (!(std > 0)) throw new PluginException($"{where}: metadata.preprocess.std must be positive");
        var gray = (pre["gray_weights"] as JsonArray)?.Select(v => v!.GetValue<float>()).ToArray();
        if (gray is not { Length: 3 }) throw new PluginException($"{where}: metadata.preprocess.gray_weights must be three numbers");
        return new VisionMetadata(input.Name, output.Name, labels, width, height, (float)Num(pre, "mean", where), std, gray,
            (float)Num(pre, "background", where), pre["pad_to_square"]?.GetValue<bool>() ?? true);
    }

    private static double Num(JsonObject o, string key, string where)
    {
        if (o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number) return v.GetValue<double>();
        throw new PluginException($"{where}: metadata.preprocess.{key} (a number) is missing");
    }

    private static string Str(JsonObject o, string key, string where)
    {
        if (o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String) return v.GetValue<string>();
        throw new PluginException($"{where}: metadata.preprocess.{key} (a string) is missing");
    }
}
