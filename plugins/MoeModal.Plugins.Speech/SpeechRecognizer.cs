using System.Diagnostics;
using System.Text.Json.Nodes;
using MoeModal.Abstractions;

namespace MoeModal.Plugins.Speech;

/// <summary>One file's transcription and what it cost.</summary>
public sealed record Transcription(
    string Text,
    IReadOnlyList<string> Units,
    IReadOnlyList<LanguageSpan> Languages,
    double AudioSeconds,
    double FrontEndSeconds,
    double ModelSeconds,
    string Format)
{
    /// <summary>Model and front-end time per second of audio.</summary>
    public double Rtf => AudioSeconds > 0 ? (FrontEndSeconds + ModelSeconds) / AudioSeconds : 0;

    public JsonObject ToJson()
    {
        var json = ResultJson(Text, Units, Languages);
        json["rtf"] = Math.Round(Rtf, 5);
        json["seconds"] = Math.Round(AudioSeconds, 3);
        return json;
    }

    /// <summary>What was recognized, without timing: text, units, language timeline.</summary>
    public static JsonObject ResultJson(string text, IReadOnlyList<string> units, IReadOnlyList<LanguageSpan> languages) => new()
    {
        ["text"] = text,
        ["units"] = new JsonArray([.. units.Select(u => (JsonNode)u)]),
        ["languages"] = new JsonArray([.. languages.Select(l => (JsonNode)new JsonObject
        {
            ["lang"] = l.Lang, ["start"] = Math.Round(l.Start, 3), ["end"] = Math.Round(l.End, 3),
        })]),
    };
}

/// <summary>
/// WAV bytes → transcript, one utterance per model call (the encoder has no padding mask, so
/// utterances are never padded into a batch). <paramref name="run"/> runs the package with token
/// tracing on (the language timeline is read from the gates) and must be thread-safe.
/// </summary>
public sealed class SpeechRecognizer(SpeechProcessor processor, Func<IReadOnlyDictionary<string, Tensor>, InferenceOutput> run)
{
    public SpeechProcessor Processor => processor;

    public Transcription Transcribe(ReadOnlySpan<byte> wav)
    {
        long t0 = Stopwatch.GetTimestamp();
        var audio = processor.Load(wav);
        var features = processor.Features(audio);
        long t1 = Stopwatch.GetTimestamp();
        var output = run(new Dictionary<string, Tensor> { [processor.Metadata.InputName] = features });
        long t2 = Stopwatch.GetTimestamp();
        var units = processor.Decode(output, 0);
        var languages = processor.Languages(output, 0);
        return new Transcription(CtcDecoder.Join(units), units, languages, audio.Seconds,
            Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, Stopwatch.GetElapsedTime(t1, t2).TotalSeconds, audio.Format);
    }
}
