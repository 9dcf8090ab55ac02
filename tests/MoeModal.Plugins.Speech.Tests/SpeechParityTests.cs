using MoeModal.Core.Execution;

namespace MoeModal.Plugins.Speech.Tests;

/// <summary>
/// The C# front end and the routed model against the recipe's references (models/speech-codeswitch/
/// reference/reference.json, four WAVs at 16, 16, 22.05 and 8 kHz). Tolerances: features 1e-4
/// absolute (the recipe computes in float64 and stores 7 significant digits; the C# front end is
/// float64 inside too, but decodes samples to float32 first), log-probabilities 2e-3 absolute
/// (float32 ONNX Runtime vs torch on slightly different features), greedy units identical,
/// gate weights 2e-3.
/// </summary>
[Trait("Modality", "speech")]
public sealed class SpeechParityTests : IDisposable
{
    private readonly MoeModel _model = MoeModel.Load(SpeechPackage.Directory, new LoadOptions { IntraOpThreads = 1 });
    private readonly SpeechProcessor _processor;

    public SpeechParityTests() => _processor = (SpeechProcessor)new SpeechModule().Bind(_model.Info);

    public void Dispose() => _model.Dispose();

    public static TheoryData<string> FileNames() => [.. SpeechPackage.Files.Select(f => f["file"]!.GetValue<string>())];

    private static System.Text.Json.Nodes.JsonNode Ref(string name) => SpeechPackage.Files.Single(f => f["file"]!.GetValue<string>() == name);

    [Theory]
    [MemberData(nameof(FileNames))]
    public void Features_MatchRecipe(string name)
    {
        var r = Ref(name);
        var audio = _processor.Load(File.ReadAllBytes(Path.Combine(SpeechPackage.ReferenceDir, name)));
        Assert.Equal(r["sample_rate"]!.GetValue<int>(), audio.SampleRate);
        Assert.Equal(r["samples"]!.GetValue<int>(), audio.Samples.Length);
        Assert.Equal(r["resampled_samples"]!.GetValue<int>(), Resampler.Resample(audio.Samples, audio.SampleRate, 16000).Length);
        var features = _processor.Features(audio);
        Assert.Equal([1, r["frames"]!.GetValue<int>(), 80], features.Shape);
        var expected = SpeechPackage.Flat(r["features"]);
        var actual = features.Floats!;
        double max = expected.Select((v, i) => Math.Abs(v - actual[i])).Max();
        Assert.True(max <= 1e-4, $"{name}: max abs feature difference {max:E2}");
    }

    [Theory]
    [MemberData(nameof(FileNames))]
    public void Model_LogitsGatesAndUnits_MatchRecipe(string name)
    {
        var r = Ref(name);
        var features = _processor.Features(_processor.Load(File.ReadAllBytes(Path.Combine(SpeechPackage.ReferenceDir, name))));
        var output = _model.Run(new Dictionary<string, Abstractions.Tensor> { [_processor.Metadata.InputName] = features },
            new RunRequest { TraceTokens = true });
        var logits = output.Tensors[_processor.Metadata.OutputName];
        Assert.Equal(r["out_frames"]!.GetValue<int>(), logits.Shape[1]);
        var expected = SpeechPackage.Flat(r["logits"]);
        var actual = logits.Floats!;
        double max = expected.Select((v, i) => Math.Abs(v - actual[i])).Max();
        Assert.True(max <= 2e-3, $"{name}: max abs log-probability difference {max:E2}");
        Assert.Equal(r["greedy_units"]!.AsArray().Select(u => u!.GetValue<string>()), _processor.Decode(output, 0));

        foreach (var trace in output.Routing)
        {
            var gate = SpeechPackage.Flat(r["gate_weights"]![trace.Step]);
            var a = trace.Assignments!;
            Assert.Equal(2, trace.K);
            for (int f = 0; f < trace.Tokens; f++)
                for (int k = 0; k < 2; k++)
                {
                    double w = a.Weights[f * 2 + k];
                    double refW = gate[f * 2 + a.Experts[f * 2 + k]];
                    Assert.True(Math.Abs(w - refW) <= 2e-3, $"{name} {trace.Step} frame {f}: gate {w} vs {refW}");
                }
        }
    }

    [Theory]
    [MemberData(nameof(FileNames))]
    public void Timeline_NamesTheLanguageOfEverySegment(string name)
    {
        var r = Ref(name);
        var recognizer = new SpeechRecognizer(_processor, inputs => _model.Run(inputs, new RunRequest { TraceTokens = true }));
        var t = recognizer.Transcribe(File.ReadAllBytes(Path.Combine(SpeechPackage.ReferenceDir, name)));
        foreach (var seg in r["language_segments_seconds"]!.AsArray())
        {
            string lang = seg![0]!.GetValue<string>();
            double start = seg[1]!.GetValue<double>(), end = seg[2]!.GetValue<double>();
            double mid = (start + end) / 2;
            var span = t.Languages.FirstOrDefault(s => s.Start <= mid && mid < s.End);
            Assert.True(span?.Lang == lang,
                $"{name}: segment {lang} {start:F2}–{end:F2}s; timeline says {span?.Lang ?? "nothing"} at {mid:F2}s ({string.Join(", ", t.Languages)})");
        }
    }
}
