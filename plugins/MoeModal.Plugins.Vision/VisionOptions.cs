namespace MoeModal.Plugins.Vision;

/// <summary>
/// Limits for untrusted image files. Immutable; the defaults are safe for a server that decodes
/// whatever users upload.
/// </summary>
public sealed record VisionOptions
{
    /// <summary>
    /// Largest width × height decoded, read from the header before any pixel is decoded. Stops
    /// decompression bombs (a tiny file declaring a gigapixel image) from exhausting memory.
    /// 40 MP decodes in well under 1 GB.
    /// </summary>
    public long MaxPixels { get; init; } = 40_000_000;

    /// <summary>Largest width or height. Stops degenerate 1 × 10⁸ images.</summary>
    public int MaxDimension { get; init; } = 30_000;

    /// <summary>Largest file accepted. Stops a client from making the host buffer gigabytes.</summary>
    public long MaxFileBytes { get; init; } = 64L << 20;

    /// <summary>How many classes each result lists under "top".</summary>
    public int TopClasses { get; init; } = 3;

    public static readonly VisionOptions Default = new();
}
