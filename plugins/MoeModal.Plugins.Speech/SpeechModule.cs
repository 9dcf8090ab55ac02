using System.Text.Json.Nodes;
using MoeModal.Abstractions;

namespace MoeModal.Plugins.Speech;

/// <summary>The speech modality plugin: WAV files in, code-switched transcripts out.</summary>
public sealed class SpeechModule(AudioOptions options) : IModalityPlugin
{
    public SpeechModule() : this(AudioOptions.Default) { }

    public string Modality => "speech";

    public string Description => "Mandarin/English code-switching speech recognition: WAV → text, units, language timeline";

    public IReadOnlyList<string> AcceptedInputs { get; } = [".wav"];

    public IModalityProcessor Bind(PackageInfo package) => new SpeechProcessor(SpeechMetadata.From(package), options);
}

/// <summary>The speech plugin bound to one package.</summary>
public sealed class SpeechProcessor(SpeechMetadata meta, AudioOptions options) : IModalityProcessor
{
    private readonly WavReader _reader = new(options);
    private readonly LogMel _features = new(meta.Features);

    public SpeechMetadata Metadata => meta;

    /// <summary>Decodes a WAV file to mono at its own rate.</summary>
    public Audio Load(ReadOnlySpan<byte> wav) => _reader.Read(wav);

    /// <summary>The model input for decoded audio: resampled to the model's rate, log-mel, normalised.</summary>
    public Tensor Features(Audio audio)
    {
        var y = Resampler.Resample(audio.Samples, audio.SampleRate, meta.Features.SampleRate);
        var f = _features.Compute(y);
        return Tensor.FromFloats(f, 1, f.Length / meta.Features.NMels, meta.Features.NMels);
    }

    public IReadOnlyDictionary<string, Tensor> Preprocess(RawInput input) =>
        new Dictionary<string, Tensor> { [meta.InputName] = Features(Load(input.Bytes.Span)) };

    /// <summary>Greedy CTC units of item <paramref name="item"/>.</summary>
    public string[] Decode(InferenceOutput output, int item)
    {
        var logits = output.Tensors[meta.OutputName];
        int frames = logits.Shape[1], classes = logits.Shape[2];
        var ids = CtcDecoder.Greedy(logits.AsFloats(meta.OutputName).AsSpan(item * frames * classes, frames * classes), frames, classes);
        return [.. ids.Select(i => meta.Vocabulary[i])];
    }

    /// <summary>Which language expert served which stretch (empty when the run was not traced).</summary>
    public IReadOnlyList<LanguageSpan> Languages(InferenceOutput output, int item) =>
        LanguageTimeline.From(output.Routing, item, meta.ExpertLanguages, meta.FrameSeconds);

    public JsonObject Postprocess(InferenceOutput output, int item)
    {
        var units = Decode(output, item);
        return Transcription.ResultJson(CtcDecoder.Join(units), units, Languages(output, item));
    }
}
