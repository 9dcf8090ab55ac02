using System.Text.Json.Nodes;
using MoeModal.Abstractions;

namespace MoeModal.Plugins.Speech;

/// <summary>
/// Which language expert served which stretch: per frame, the language whose expert got the
/// larger gate weight, averaged over the MoE layers; runs shorter than <see cref="MinRun"/>
/// frames are merged into their neighbours.
/// </summary>
public static class LanguageTimeline
{
    public const int MinRun = 3;

    public static JsonArray? From(IReadOnlyList<MoeStepTrace> traces, int item, IReadOnlyList<string> languages, double frameSeconds)
    {
        var traced = traces.Where(t => t.Assignments is not null && t.TokensPerExpert.Count == languages.Count).ToList();
        if (traced.Count == 0) return null;
        var shape = traced[0].Assignments!.TokenShape;
        int frames = shape.Count >= 2 ? shape[1] : traced[0].Tokens;
        var weight = new double[frames * languages.Count];
        foreach (var t in traced)
        {
            var a = t.Assignments!;
            for (int f = 0; f < frames; f++)
            {
                int token = item * frames + f;
                for (int r = 0; r < t.K; r++)
                    if (a.Kept[token * t.K + r]) weight[f * languages.Count + a.Experts[token * t.K + r]] += a.Weights[token * t.K + r];
            }
        }
        var label = new int[frames];
        for (int f = 0; f < frames; f++)
        {
            int best = 0;
            for (int l = 1; l < languages.Count; l++) if (weight[f * languages.Count + l] > weight[f * languages.Count + best]) best = l;
            label[f] = best;
        }
        var runs = Smooth(label);
        var arr = new JsonArray();
        foreach (var (lang, start, end) in runs)
            arr.Add(new JsonObject { ["lang"] = languages[lang], ["start"] = Math.Round(start * frameSeconds, 3), ["end"] = Math.Round(end * frameSeconds, 3) });
        return arr;
    }

    /// <summary>Runs (label, start frame, end frame exclusive) with short runs absorbed.</summary>
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
        bool changed = true;
        while (changed && runs.Count > 1)
        {
            changed = false;
            int shortest = -1;
            for (int i = 0; i < runs.Count; i++)
                if (runs[i].End - runs[i].Start < MinRun && (shortest < 0 || runs[i].End - runs[i].Start < runs[shortest].End - runs[shortest].Start)) shortest = i;
            if (shortest < 0) break;
            // Absorb into the longer neighbour.
            int left = shortest - 1, right = shortest + 1;
            int into = left < 0 ? right : right >= runs.Count ? left
                : runs[left].End - runs[left].Start >= runs[right].End - runs[right].Start ? left : right;
            var r = runs[shortest];
            var n = runs[into];
            runs[into] = (n.Label, Math.Min(n.Start, r.Start), Math.Max(n.End, r.End));
            runs.RemoveAt(shortest);
            // Neighbours with equal labels merge.
            for (int i = runs.Count - 1; i > 0; i--)
                if (runs[i].Label == runs[i - 1].Label) { runs[i - 1] = (runs[i].Label, runs[i - 1].Start, runs[i].End); runs.RemoveAt(i); }
            changed = true;
        }
        return runs;
    }
}
