// Transcribes the bundled code-switched WAVs with the bundled BA-MoE package through the library
// API and shows, per file, the text and which language expert served which stretch of audio.
using System.Text;
using MoeModal.Core.Execution;
using MoeModal.Plugins.Speech;

string? modelDir = null, audioDir = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--model" when i + 1 < args.Length: modelDir = args[++i]; break;
        case "--audio" when i + 1 < args.Length: audioDir = args[++i]; break;
        case "--help" or "-h":
            Console.WriteLine("usage: dotnet run --project samples/SpeechRecognition [-- [--model DIR] [--audio DIR]]");
            return 0;
        default:
            Console.Error.WriteLine("usage: dotnet run --project samples/SpeechRecognition [-- [--model DIR] [--audio DIR]]");
            return 2;
    }
}
modelDir ??= Repo.Find("models/speech-codeswitch");
audioDir ??= Repo.Find("samples/SpeechRecognition/audio");

using var model = MoeModel.Load(modelDir, new LoadOptions { IntraOpThreads = 1, ExpertParallelism = 1 });
var processor = (SpeechProcessor)new SpeechModule().Bind(model.Info);
var request = new RunRequest { TraceTokens = true };
var recognizer = new SpeechRecognizer(processor, inputs => model.Run(inputs, request));
Console.WriteLine($"{model.Manifest.Name}: {model.Report.Parameters:N0} parameters, experts {string.Join("/", processor.Metadata.ExpertLanguages)}, loaded in {model.Report.LoadTime.TotalMilliseconds:F0} ms");
Console.WriteLine("experts line: one character per 50 ms — z = the Mandarin expert served it, E = the English expert, · = neither (silence)");

int failed = 0;
var references = Repo.References(audioDir);
foreach (var file in Directory.GetFiles(audioDir, "*.wav").Order(StringComparer.Ordinal))
{
    string name = Path.GetFileName(file);
    Console.WriteLine();
    try
    {
        var t = recognizer.Transcribe(File.ReadAllBytes(file));
        Console.WriteLine($"{name}  ({t.Format}, {t.AudioSeconds:F2} s, rtf {t.Rtf:F3})");
        Console.WriteLine($"  text      {t.Text}");
        if (references.TryGetValue(name, out var reference))
        {
            int errors = CtcDecoder.EditDistance(t.Units, reference);
            Console.WriteLine($"  reference {CtcDecoder.Join(reference)}  ({(errors == 0 ? "exact" : $"{errors} unit error(s)")})");
        }
        Console.WriteLine($"  experts   {Timeline.Bar(t.Languages, t.AudioSeconds)}");
        Console.WriteLine($"            {string.Join("  ", t.Languages.Select(l => $"{l.Lang} {l.Start:F2}–{l.End:F2}s"))}");
    }
    catch (Exception ex) when (ex is MoeModal.Abstractions.InputException or IOException)
    {
        Console.WriteLine($"{name}  error: {ex.Message}");
        failed++;
    }
}
return failed > 0 ? 1 : 0;

static class Timeline
{
    /// <summary>One character per 50 ms: 中 = Mandarin expert, E = English expert, · = neither (silence).</summary>
    public static string Bar(IReadOnlyList<LanguageSpan> spans, double seconds)
    {
        const double step = 0.05;
        var sb = new StringBuilder();
        for (double t = step / 2; t < seconds; t += step)
        {
            var span = spans.FirstOrDefault(s => s.Start <= t && t < s.End);
            sb.Append(span?.Lang switch { "zh" => 'z', "en" => 'E', _ => '·' });
        }
        return sb.ToString();
    }
}

static class Repo
{
    /// <summary>A folder of the repository, from the current folder or the program's folder, upwards.</summary>
    public static string Find(string relative)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (Directory.Exists(Path.Combine(d.FullName, relative))) return Path.Combine(d.FullName, relative);
        throw new DirectoryNotFoundException($"{relative} not found; pass it explicitly");
    }

    /// <summary>Reference transcripts from the folder's transcripts.tsv (file<TAB>units), if present.</summary>
    public static Dictionary<string, string[]> References(string dir)
    {
        string tsv = Path.Combine(dir, "transcripts.tsv");
        if (!File.Exists(tsv)) return [];
        return File.ReadLines(tsv).Select(l => l.Split('\t')).Where(p => p.Length == 2)
            .ToDictionary(p => p[0], p => p[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }
}
