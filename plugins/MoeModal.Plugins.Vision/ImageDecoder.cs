using MoeModal.Abstractions;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace MoeModal.Plugins.Vision;

/// <summary>
/// Decodes untrusted image bytes: size limit, format sniffing, structural checks for truncation,
/// pixel budget from the header before decoding, then decoding with EXIF orientation applied.
/// Every failure is an <see cref="InputException"/> that says what was wrong.
/// </summary>
public sealed class ImageDecoder
{
    private readonly VisionOptions _options;
    private readonly Configuration _configuration;

    public ImageDecoder(VisionOptions? options = null)
    {
        _options = options ?? VisionOptions.Default;
        _configuration = Configuration.Default.Clone();
        // Keep ImageSharp's pool small so memory goes back after large images.
        _configuration.MemoryAllocator = MemoryAllocator.Create(new MemoryAllocatorOptions { MaximumPoolSizeMegabytes = 32 });
        // Animated GIFs: the first frame only (never decode hundreds of frames).
        _configuration.ImageFormatsManager.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First });
        _configuration.ImageFormatsManager.SetDecoder(PngFormat.Instance, new PngDecoder { IgnoreMetadata = false });
    }

    /// <summary>A decoded image: 8-bit or 16-bit RGBA pixels, upright.</summary>
    public sealed class Decoded : IDisposable
    {
        internal Decoded(Image image, string format, bool sixteenBit)
        {
            Image = image;
            Format = format;
            SixteenBit = sixteenBit;
        }

        /// <summary><see cref="Image{Rgba32}"/> or, for 16-bit sources, <see cref="Image{Rgba64}"/>.</summary>
        public Image Image { get; }

        public string Format { get; }
        public bool SixteenBit { get; }
        public int Width => Image.Width;
        public int Height => Image.Height;

        public void Dispose() => Image.Dispose();
    }

    public Decoded Decode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0) throw new InputException("empty file (0 bytes)");
        if (bytes.Length > _options.MaxFileBytes)
            throw new InputException($"file is {bytes.Length} bytes, over the {_options.MaxFileBytes}-byte limit");
        var kind = ImageStructure.Sniff(bytes)
            ?? throw new InputException($"not a supported image (PNG, JPEG, BMP, GIF, WebP); the file starts with {Hex(bytes)}");
        string? problem = ImageStructure.Check(kind, bytes, _options.MaxPixels, _options.MaxDimension);
        if (problem is not null) throw new InputException($"{kind}: {problem}");

        var data = bytes.ToArray();
        IImageInfo info;
        IImageFormat? format;
        try
        {
            info = Image.Identify(_configuration, data, out format)
                ?? throw new InputException($"{kind}: ImageSharp does not recognise the header");
        }
        catch (Exception ex) when (ex is ImageFormatException or InvalidDataException or NotSupportedException or IndexOutOfRangeException or ArgumentException)
        {
            throw new InputException($"{kind}: corrupt header: {ex.Message}", ex);
        }
        CheckBudget(kind, info.Width, info.Height);

        bool sixteen = format is PngFormat && info.Metadata.GetPngMetadata().BitDepth == PngBitDepth.Bit16;
        Image image;
        try
        {
            image = sixteen ? Image.Load<Rgba64>(_configuration, data) : Image.Load<Rgba32>(_configuration, data);
        }
        catch (Exception ex) when (ex is ImageFormatException or InvalidDataException or NotSupportedException or IndexOutOfRangeException or ArgumentException or InvalidOperationException)
        {
            throw new InputException($"{kind}: cannot decode: {ex.Message}", ex);
        }
        try
        {
            image.Mutate(x => x.AutoOrient());
            return new Decoded(image, kind, sixteen);
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    private void CheckBudget(string kind, int width, int height)
    {
        if (width <= 0 || height <= 0)
            throw new InputException($"{kind}: header declares {width}×{height} pixels");
        if (width > _options.MaxDimension || height > _options.MaxDimension)
            throw new InputException($"{kind}: header declares {width}×{height} pixels; a side over {_options.MaxDimension} is refused");
        if ((long)width * height > _options.MaxPixels)
            throw new InputException($"{kind}: header declares {width}×{height} = {(long)width * height} pixels, over the {_options.MaxPixels}-pixel budget (decompression bomb?)");
    }

    /// <summary>The first bytes in hex, and as text where they are printable ASCII (e.g. <c>68656c6c6f2c2074 "hello, t"</c>).</summary>
    private static string Hex(ReadOnlySpan<byte> b)
    {
        var head = b[..Math.Min(8, b.Length)];
        string hex = Convert.ToHexString(head).ToLowerInvariant();
        foreach (byte c in head)
            if (c is < 0x20 or > 0x7e) return hex;
        return $"{hex} \"{System.Text.Encoding.ASCII.GetString(head)}\"";
    }
}
