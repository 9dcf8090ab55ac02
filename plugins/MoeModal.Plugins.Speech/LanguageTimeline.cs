using MoeModal.Abstractions;

namespace MoeModal.Plugins.Speech;

/// <summary>A stretch of audio served mostly by one language's expert, in seconds.</summary>
public sealed record LanguageSpan(string Lang, double Start, double End);

/// <summary>
/// Which language expert served which stretch, read from the gates: per encoder frame, each
/// language's gate weight averaged over the MoE layers. A frame belongs to a language when that
/// language's share is at least <see cref="Threshold"/>; frames where no language dominates (the
/// gate was trained towards 50/50 on silence) belong to none. Runs shorter than
/// <see cref="MinRun"/> frames are merged into their longer neighbour (an input shorter than that
/// names no language); the spans of "none" are left out of the result.
/// </summary>
public static class LanguageTimeline
{
    public const int MinRun = 3;
    public const double Threshold = 0.65;

    public static IReadOnlyList<LanguageSpan> From(IReadOnlyList<MoeStepTrace> traces, int item, IReadOnlyList<string> languages, double frameSeconds)
    {
        var traced = traces.Where(t => t.Assignments is not null && t.TokensPerExpert.Count == languages.Count).ToList();
        if (traced.Count == 0) return [];
        var shape = traced[0].Assignments!.TokenShape;
        int frames = shape.Count >= 2 ? shape[1] : traced[0].Tokens;
        int L = languages.Count;
        var weight = new double[frames * L];
        foreach (var t in traced)
        {
            var a = t.Assignments!;
            for (int f = 0; f < frames; f++)
            {
                int token = item * frames + f;
                for (int r = 0; r < t.K; r++)
                    if (a.Kept[token * t.K + r]) weight[f * L + a.Experts[token * t.K + r]] += a.Weights[token * t.K + r];
            }
        }
        var label = new int[frames];
        for (int f = 0; f < frames; f++)
        {
            int best = 0;
            double total = 0;
            for (int l = 0; l < L; l++)
            {
                total += weight[f * L + l];
                if (weight[f * L + l] > weight[f * L + best]) best = l;
            }
            label[f] = total > 0 && weight[f * L + best] / total >= Threshold ? best : -1;
        }
        return [.. Smooth(label).Where(r => r.Label >= 0)
            .Select(r => new LanguageSpan(languages[r.Label], r.Start * frameSeconds, r.End * frameSeconds))];
    }

    /// <summary>Runs (label, start frame, end frame exclusive) with runs shorter than <see cref="MinRun"/> absorbed.</summary>
    public static List<(int Label, int Start, int End)> Smooth(int[] label)
    {
        var runs = new List<(int Label, int Start, int End)>();
        for (int f = 0; f < label.Length;)
        {
            int g = f;
            while (g < label.Length && label[g] == label[f]) g++;
            runs.Add((label[f], f, g));
            f = g;
        }
        while (runs.Count > 1)
        {
            int shortest = -1;
            for (int i = 0; i < runs.Count; i++)
                if (Len(runs[i]) < MinRun && (shortest < 0 || Len(runs[i]) < Len(runs[shortest]))) shortest = i;
            if (shortest < 0) break;
            int left = shortest - 1, right = shortest + 1;
            int into = left < 0 ? right : right >= runs.Count ? left : Len(runs[left]) >= Len(runs[right]) ? left : right;
            var r = runs[shortest];
            var n = runs[into];
            runs[into] = (n.Label, Math.Min(n.Start, r.Start), Math.Max(n.End, r.End));
            runs.RemoveAt(shortest);
            for (int i = runs.Count - 1; i > 0; i--)
                if (runs[i].Label == runs[i - 1].Label) { runs[i - 1] = (runs[i].Label, runs[i - 1].Start, runs[i].End); runs.RemoveAt(i); }
        }
        // What is left shorter than MinRun is a whole input shorter than that: too short to name a language.
        runs.RemoveAll(r => Len(r) < MinRun);
        return runs;
    }

    private static int Len((int Label, int Start, int End) r) => r.End - r.Start;
}
