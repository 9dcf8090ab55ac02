using System.Text;

namespace MoeModal.Plugins.Speech;

/// <summary>Greedy CTC decoding and how units become text.</summary>
public static class CtcDecoder
{
    /// <summary>Argmax per frame, repeats collapsed, blanks (class 0) removed.</summary>
    public static int[] Greedy(ReadOnlySpan<float> logits, int frames, int classes)
    {
        var ids = new List<int>();
        int previous = -1;
        for (int t = 0; t < frames; t++)
        {
            var row = logits.Slice(t * classes, classes);
            int best = 0;
            for (int c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
            if (best != previous && best != 0) ids.Add(best);
            previous = best;
        }
        return [.. ids];
    }

    /// <summary>English words are separated by spaces, Mandarin characters are not; a space marks a language switch.</summary>
    public static string Join(IReadOnlyList<string> units)
    {
        var sb = new StringBuilder();
        bool? previousEnglish = null;
        foreach (var u in units)
        {
            bool english = IsEnglish(u);
            if (previousEnglish is bool p && (english || p)) sb.Append(' ');
            sb.Append(u);
            previousEnglish = english;
        }
        return sb.ToString();
    }

    public static bool IsEnglish(string unit) => unit.All(c => c < 128);

    /// <summary>Edit distance between unit sequences (for the mixed error rate).</summary>
    public static int EditDistance(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        var prev = new int[b.Count + 1];
        var cur = new int[b.Count + 1];
        for (int j = 0; j <= b.Count; j++) prev[j] = j;
        for (int i = 1; i <= a.Count; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Count; j++)
                cur[j] = Math.Min(Math.Min(prev[j] + 1, cur[j - 1] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Count];
    }
}
