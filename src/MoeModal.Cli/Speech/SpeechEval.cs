using System.Diagnostics;
using System.Text.Json.Nodes;
using MoeModal.Core.Hosting;
using MoeModal.Plugins.Speech;

namespace MoeModal.Cli.Speech;

/// <summary>
/// moemodal eval on a speech package: a TSV of "wav&lt;TAB&gt;reference units" (units separated by
/// spaces; paths relative to the TSV). Mixed error rate = unit edit distance / reference units;
/// a file that fails counts as all its units deleted (and is reported in "failed").
/// </summary>
public static class SpeechEval
{
    public sealed record Line(int Number, string Wav, string[] Reference);

    /// <summary>Parses the TSV; malformed lines are usage errors naming the line.</summary>
    public static List<Line> ReadTsv(string path)
    {
        if (!File.Exists(path)) throw new UsageException($"--data '{path}': no such file (speech eval reads a TSV: wav<TAB>units)");
        var lines = new List<Line>();
        int number = 0;
        foreach (var raw in File.ReadLines(path))
        {
            number++;
            var text = raw.TrimEnd('\r');
            if (text.Length == 0 || text.StartsWith('#')) continue;
            var parts = text.Split('\t');
            if (parts.Length != 2 || parts[0].Length == 0)
                throw new UsageException($"{path}:{number}: expected 'wav<TAB>reference units', got {parts.Length} field(s)");
            string wav = Path.IsPathRooted(parts[0]) ? parts[0] : Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, parts[0]);
            lines.Add(new Line(number, wav, parts[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)));
        }
        if (lines.Count == 0) throw new UsageException($"{path}: no utterances");
        return lines;
    }

    public static int Run(Args a, string data, TextWriter stdout, TextWriter stderr)
    {
        var lines = ReadTsv(data);
        if (a.Int("--limit", 1) is int limit && limit < lines.Count) lines = lines[..limit];
        var (model, recognizer, audio, parallel) = Commands.TranscribeCommand.Load(a, stderr);
        using (model)
        {
            var sw = Stopwatch.StartNew();
            long edits = 0, refUnits = 0, sentencesWrong = 0;
            double audioSeconds = 0, processing = 0, rtfSum = 0;
            int n = 0, failed = 0;
            var items = lines.Select(l => new PipelineItem(l.Wav, () => InputFiles.ReadCapped(l.Wav, audio.MaxFileBytes)));
            var worst = new List<(double Rate, string File, string Hyp, string Ref)>();
            int i = 0;
            foreach (var r in SpeechFiles.Transcribe(recognizer, items, parallel))
            {
                var line = lines[i++];
                if (r.Result is not { } t)
                {
                    // A file that cannot be read counts as all its reference units deleted, so
                    // unreadable files cannot make the error rate look better.
                    failed++;
                    edits += line.Reference.Length;
                    refUnits += line.Reference.Length;
                    sentencesWrong++;
                    stderr.WriteLine($"eval: {line.Wav}: {r.Error}");
                    continue;
                }
                int e = CtcDecoder.EditDistance(t.Units, line.Reference);
                edits += e;
                refUnits += line.Reference.Length;
                if (e > 0) sentencesWrong++;
                audioSeconds += t.AudioSeconds;
                processing += t.FrontEndSeconds + t.ModelSeconds;
                rtfSum += t.Rtf;
                n++;
                if (e > 0) worst.Add((e / (double)Math.Max(1, line.Reference.Length), line.Wav, t.Text, CtcDecoder.Join(line.Reference)));
                if (n % 25 == 0)
                    stderr.WriteLine($"eval: {n}/{lines.Count}  MER {Rate(edits, refUnits):F4}  rtf {rtfSum / n:F4}");
            }
            foreach (var w in worst.OrderByDescending(w => w.Rate).Take(5))
                stderr.WriteLine($"eval: worst {w.Rate:F2} {w.File}: heard \"{w.Hyp}\", reference \"{w.Ref}\"");
            var result = new JsonObject
            {
                ["mer"] = Math.Round(Rate(edits, refUnits), 5),
                ["n"] = n,
                ["failed"] = failed,
                ["rtf"] = Math.Round(n > 0 ? rtfSum / n : 0, 5),
                ["rtf_total"] = Math.Round(audioSeconds > 0 ? processing / audioSeconds : 0, 5),
                ["edits"] = edits,
                ["reference_units"] = refUnits,
                ["sentence_error_rate"] = Math.Round(n + failed > 0 ? sentencesWrong / (double)(n + failed) : 0, 4),
                ["audio_seconds"] = Math.Round(audioSeconds, 2),
                ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 2),
                ["parallel"] = parallel,
            };
            stdout.WriteLine(CliApp.Line(result));
            return failed == 0 ? CliApp.Ok : CliApp.SomeFailed;
        }
    }

    private static double Rate(long edits, long units) => units > 0 ? edits / (double)units : 0;
}
