namespace MoeModal.Plugins.Speech;

/// <summary>Limits for untrusted audio files. Immutable, safe defaults.</summary>
public sealed record AudioOptions
{
    /// <summary>Largest file read. Stops a client from making the host buffer gigabytes.</summary>
    public long MaxFileBytes { get; init; } = 256L << 20;

    /// <summary>
    /// Longest audio decoded (seconds). Stops a small header from declaring hours of samples to
    /// allocate, and bounds the encoder's memory: its self-attention is quadratic in length
    /// (120 s = 3000 frames of 40 ms ≈ 150 MB of attention scores per layer; 600 s would be
    /// ≈ 3.6 GB). The bundled model serves voice commands of a few seconds.
    /// </summary>
    public double MaxSeconds { get; init; } = 120;

    /// <summary>Most channels accepted (WAVE_FORMAT_EXTENSIBLE allows up to 32 speaker positions).</summary>
    public int MaxChannels { get; init; } = 32;

    /// <summary>Sample rates accepted; outside this the file is almost certainly not speech.</summary>
    public int MinSampleRate { get; init; } = 4000;

    public int MaxSampleRate { get; init; } = 192_000;

    /// <summary>Most RIFF chunks walked before giving up (stops a file of millions of empty chunks).</summary>
    public int MaxChunks { get; init; } = 4096;

    public static readonly AudioOptions Default = new();
}
