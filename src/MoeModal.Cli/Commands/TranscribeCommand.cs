using System.Text.Json.Nodes;
using MoeModal.Cli.Speech;
using MoeModal.Plugins.Speech;

namespace MoeModal.Cli.Commands;

/// <summary>moemodal transcribe: one JSON line per WAV file, in input order.</summary>
public static class TranscribeCommand
{
    public const string DefaultPackage = "speech-codeswitch";

    /// <summary>What a folder is searched for.</summary>
    public static readonly string[] WavExtensions = [".wav", ".wave"];

    private static readonly string Help = $"""
        usage: moemodal transcribe [options] PATH...

        Transcribes Mandarin/English code-switched speech in WAV files (PCM 8/16/24/32-bit, float,
        A-law/μ-law, WAVE_FORMAT_EXTENSIBLE; any rate 4–192 kHz, any channel count); folders are
        searched recursively for *.wav and *.wave files (others are skipped and named on stderr;
        files given by name are always read). One JSON object per file:
          {"{"}"file", "text", "units": [...], "languages": [{"{"}"lang", "start", "end"{"}"}, ...], "rtf", "seconds"{"}"}
        or {"{"}"file", "error"{"}"}. "languages" says which language expert served which stretch
        (seconds); "rtf" is processing time per second of audio.
        Exit code: 0 all files transcribed, 1 some failed (the others are still transcribed), 2 usage or model error.

        {string.Format(ModelOptions.Help.Replace("(default: all cores)", "(default 1 per file; files run in parallel)"), DefaultPackage)}
          --parallel N             files transcribed at once (default: the number of cores)
          --max-seconds X          refuse audio longer than X seconds (default {AudioOptions.Default.MaxSeconds})
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (CliApp.WantsHelp(args, Help, stdout)) return CliApp.Ok;
        var a = Args.Parse(args, [.. ModelOptions.Values, "--parallel", "--max-seconds"], []);
        if (a.Positionals.Count == 0) throw new UsageException("transcribe needs at least one WAV file or folder");
        var (model, recognizer, audio, parallel) = Load(a, stderr);
        using (model)
        {
            int failed = 0;
            var files = InputFiles.Enumerate(a.Positionals, audio.MaxFileBytes, WavExtensions,
                f => stderr.WriteLine($"transcribe: skipped {f} (not .wav)"));
            foreach (var r in SpeechFiles.Transcribe(recognizer, files, parallel))
            {
                var line = new JsonObject { ["file"] = r.Name };
                if (r.Result is { } t)
                {
                    foreach (var (k, v) in t.ToJson()) line[k] = v?.DeepClone();
                }
                else
                {
                    line["error"] = r.Error;
                    failed++;
                }
                stdout.WriteLine(CliApp.Line(line));
            }
            return failed == 0 ? CliApp.Ok : CliApp.SomeFailed;
        }
    }

    /// <summary>Loads a speech package with the audio limits and parallelism from the arguments.</summary>
    internal static (Core.Execution.MoeModel Model, SpeechRecognizer Recognizer, AudioOptions Audio, int Parallel) Load(Args a, TextWriter stderr)
    {
        int parallel = a.Int("--parallel", 1, 256) ?? Environment.ProcessorCount;
        double maxSeconds = a.Double("--max-seconds") ?? AudioOptions.Default.MaxSeconds;
        if (maxSeconds <= 0) throw new UsageException("--max-seconds must be > 0");
        var audio = AudioOptions.Default with { MaxSeconds = maxSeconds };
        var (model, processor, _) = ModelOptions.Load(a, DefaultPackage, "speech", stderr, [new SpeechModule(audio)], defaultThreads: 1);
        return (model, SpeechFiles.Recognizer(model, processor), audio, parallel);
    }
}
