using System.Text.Json.Nodes;
using MoeModal.Abstractions;

namespace MoeModal.Plugins.Speech;

/// <summary>What a speech package's metadata says: vocabulary, expert languages, frame stride, front end.</summary>
public sealed record SpeechMetadata(
    string InputName,
    string OutputName,
    IReadOnlyList<string> Vocabulary,
    IReadOnlyList<string> ExpertLanguages,
    double FrameSeconds,
    FeatureSpec Features)
{
    public static SpeechMetadata From(PackageInfo package)
    {
        string where = $"package '{package.Name}'";
        var input = package.Inputs.Count == 1 ? package.Inputs[0] : throw new PluginException($"{where}: the speech plugin needs one input (features)");
        if (input.Kind != TensorKind.Float32 || input.Shape.Count != 3)
            throw new PluginException($"{where}: input '{input.Name}' must be float32 [B, T, mels]");
        var output = package.Outputs[0];
        if (output.Shape.Count != 3) throw new PluginException($"{where}: output '{output.Name}' must be [B, T', vocabulary]");
        var m = package.Metadata;
        try
        {
            var vocab = m["vocabulary"]!.AsArray().Select(v => v!.GetValue<string>()).ToArray();
            var langs = m["expert_languages"]!.AsArray().Select(v => v!.GetValue<string>()).ToArray();
            double frame = m["frame_seconds"]!.GetValue<double>();
            var f = m["features"]!.AsObject();
            var spec = new FeatureSpec(
                f["sample_rate"]!.GetValue<int>(), f["frame_length"]!.GetValue<int>(), f["hop"]!.GetValue<int>(),
                f["n_fft"]!.GetValue<int>(), f["n_mels"]!.GetValue<int>(), f["fmin"]!.GetValue<double>(), f["fmax"]!.GetValue<double>(),
                f["log_offset"]!.GetValue<double>(), f["std"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray())
            {
                // v2 front end; packages without these keys are v1 (mean over all frames).
                RelFloor = f["rel_floor"]?.GetValue<double>() ?? 0,
                ActiveDb = f["active_db"]?.GetValue<double>() ?? double.PositiveInfinity,
            };
            if (!(spec.RelFloor >= 0) || !(spec.ActiveDb > 0))
                throw new PluginException($"{where}: metadata.features.rel_floor must be ≥ 0 and active_db > 0");
            if (spec.Std.Length != spec.NMels || spec.Std.Any(s => !(s > 0)))
                throw new PluginException($"{where}: metadata.features.std must hold {spec.NMels} positive numbers");
            if (input.Shape[2] > 0 && input.Shape[2] != spec.NMels)
                throw new PluginException($"{where}: input '{input.Name}' has {input.Shape[2]} features per frame, metadata says {spec.NMels}");
            if (output.Shape[2] > 0 && output.Shape[2] != vocab.Length)
                throw new PluginException($"{where}: output has {output.Shape[2]} classes, the vocabulary {vocab.Length}");
            return new SpeechMetadata(input.Name, output.Name, vocab, langs, frame, spec);
        }
        catch (Exception ex) when (ex is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new PluginException($"{where}: speech metadata (vocabulary, expert_languages, frame_seconds, features) is incomplete: {ex.Message}", ex);
        }
    }
}
