namespace MoeModal.Core.Routing;

/// <summary>
/// The router's decision for one call: for every token its K choices (expert, weight, kept), and
/// for every expert the kept tokens in ascending token order (a CSR layout that dispatch uses to
/// gather and scatter). Buffers grow as needed and are reused across calls by one owner; a plan is
/// not thread-safe.
/// </summary>
public sealed class RoutingPlan
{
    private int[] _choiceExpert = [];
    private float[] _choiceWeight = [];
    private bool[] _kept = [];
    private int[] _expertCount = [];
    private int[] _expertOffset = [];
    private int[] _slotToken = [];
    private float[] _slotWeight = [];

    public int Tokens { get; private set; }
    public int Experts { get; private set; }

    /// <summary>Choices per token (E for dense gating).</summary>
    public int K { get; private set; }

    /// <summary>Assignments dropped by capacity in this call.</summary>
    public int Dropped { get; internal set; }

    /// <summary>Capacity per expert per group used in this call (int.MaxValue when dropless).</summary>
    public int Capacity { get; internal set; }

    /// <summary>Expert of token t's choice r at t·K + r. Valid until the next <see cref="Router.Route"/> on this plan.</summary>
    public Span<int> ChoiceExpert => _choiceExpert.AsSpan(0, Tokens * K);
    public Span<float> ChoiceWeight => _choiceWeight.AsSpan(0, Tokens * K);
    public Span<bool> Kept => _kept.AsSpan(0, Tokens * K);

    /// <summary>Kept tokens per expert.</summary>
    public ReadOnlySpan<int> TokensPerExpert => _expertCount.AsSpan(0, Experts);

    /// <summary>Tokens routed to <paramref name="expert"/>, ascending. Valid until the next route.</summary>
    public ReadOnlySpan<int> TokensOf(int expert) =>
        _slotToken.AsSpan(_expertOffset[expert], _expertOffset[expert + 1] - _expertOffset[expert]);

    /// <summary>Weights matching <see cref="TokensOf"/>.</summary>
    public ReadOnlySpan<float> WeightsOf(int expert) =>
        _slotWeight.AsSpan(_expertOffset[expert], _expertOffset[expert + 1] - _expertOffset[expert]);

    internal float[] WeightBuffer => _choiceWeight;

    internal void Reset(int tokens, int experts, int k)
    {
        Tokens = tokens;
        Experts = experts;
        K = k;
        Dropped = 0;
        int nk = checked(tokens * k);
        Grow(ref _choiceExpert, nk);
        Grow(ref _choiceWeight, nk);
        Grow(ref _kept, nk);
        Grow(ref _slotToken, nk);
        Grow(ref _slotWeight, nk);
        Grow(ref _expertCount, experts);
        Grow(ref _expertOffset, experts + 1);
    }

    /// <summary>Builds the per-expert token lists from the kept choices (tokens ascending).</summary>
    internal void BuildExpertLists()
    {
        var count = _expertCount.AsSpan(0, Experts);
        count.Clear();
        int nk = Tokens * K;
        for (int i = 0; i < nk; i++)
            if (_kept[i]) count[_choiceExpert[i]]++;
        _expertOffset[0] = 0;
        for (int e = 0; e < Experts; e++) _expertOffset[e + 1] = _expertOffset[e] + count[e];
        // Fill in token order so each expert's list is ascending.
        Span<int> cursor = Experts <= 256 ? stackalloc int[Experts] : new int[Experts];
        _expertOffset.AsSpan(0, Experts).CopyTo(cursor);
        for (int t = 0; t < Tokens; t++)
        {
            int baseIdx = t * K;
            for (int r = 0; r < K; r++)
            {
                int i = baseIdx + r;
                if (!_kept[i]) continue;
                int slot = cursor[_choiceExpert[i]]++;
                _slotToken[slot] = t;
                _slotWeight[slot] = _choiceWeight[i];
            }
        }
    }

    private static void Grow<T>(ref T[] a, int n)
    {
        if (a.Length < n) a = new T[Math.Max(n, a.Length * 2)];
    }
}
