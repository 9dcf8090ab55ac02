using MoeModal.Abstractions;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace MoeModal.Plugins.Vision.Tests;

[Trait("Modality", "vision")]
public class ImageDecoderTests
{
    private readonly ImageDecoder _decoder = new();

    public static IEnumerable<object[]> Variants() => ImageFixtures.AllVariants().Select(v => new object[] { v.Name });

    private static byte[] Variant(string name) => ImageFixtures.AllVariants().Single(v => v.Name == name).Bytes;

    [Theory]
    [MemberData(nameof(Variants))]
    public void Decode_EveryFormatAndVariant_GivesTheImage(string name)
    {
        using var img = _decoder.Decode(Variant(name));
        Assert.Equal(40, img.Width);
        Assert.Equal(40, img.Height);
        Assert.Equal(name.Contains("16"), img.SixteenBit);
    }

    [Fact]
    public void Decode_JpegExifOrientation_IsApplied()
    {
        using var src = ImageFixtures.Pattern(30, 10); // bright block in the upper-left
        var bytes = ImageFixtures.JpegWithOrientation(src, 6); // display rotated 90° clockwise
        using var img = _decoder.Decode(bytes);
        Assert.Equal(10, img.Width);
        Assert.Equal(30, img.Height);
        var px = (Image<Rgba32>)img.Image;
        // After a clockwise turn the upper-left block is in the upper-right.
        Assert.True(px[8, 2].R > 180, $"upper-right is {px[8, 2].R}");
        Assert.True(px[1, 2].R < 150, $"upper-left is {px[1, 2].R}");
    }

    [Theory]
    [InlineData("cmyk.jpg")]
    [InlineData("progressive.jpg")]
    [InlineData("exif-rotated.jpg")]
    [InlineData("palette.png")]
    [InlineData("rgb16.png")]
    [InlineData("lossy.webp")]
    [InlineData("animated.gif")]
    public void Decode_ExternalToolFixtures(string file)
    {
        var bytes = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", file));
        using var img = _decoder.Decode(bytes);
        Assert.True(img.Width > 0 && img.Height > 0);
        // Every fixture is a light shape on black: the centre is brighter than the corner.
        var stats = new VisionPreprocessorTests.Probe(img);
        Assert.True(stats.Center > stats.Corner + 0.2, $"{file}: centre {stats.Center:F2}, corner {stats.Corner:F2}");
    }

    [Fact]
    public void Decode_Empty_SaysEmpty()
    {
        var ex = Assert.Throws<InputException>(() => _decoder.Decode([]));
        Assert.Contains("empty", ex.Message);
    }

    [Theory]
    [InlineData("hello, I am a text file\n")]
    [InlineData("\0\0\0\0\0\0\0\0\0\0")]
    [InlineData("RIFF\x10\0\0\0WAVEfmt ")]
    public void Decode_NotAnImage_SaysWhatItSaw(string content)
    {
        var ex = Assert.Throws<InputException>(() => _decoder.Decode(System.Text.Encoding.Latin1.GetBytes(content)));
        Assert.Contains("not a supported image", ex.Message);
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Decode_TruncatedAnywhere_ClearErrorNeverAnImage(string name)
    {
        var bytes = Variant(name);
        foreach (double cut in new[] { 0.1, 0.3, 0.5, 0.7, 0.9, 0.98 })
        {
            int n = Math.Max(1, (int)(bytes.Length * cut));
            var ex = Assert.Throws<InputException>(() => _decoder.Decode(bytes.AsSpan(0, n)).Dispose());
            Assert.False(string.IsNullOrWhiteSpace(ex.Message));
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Decode_JunkAfterHeader_ClearError(string name)
    {
        var bytes = Variant(name);
        var junk = new byte[bytes.Length];
        new Random(name.Length).NextBytes(junk);
        // The signature and first header survive; everything after is random.
        int keep = name.StartsWith("png") ? 33 : name.StartsWith("jpeg") ? 20 : name.StartsWith("bmp") ? 14 : name.StartsWith("gif") ? 13 : 12;
        bytes.AsSpan(0, keep).CopyTo(junk);
        var ex = Assert.Throws<InputException>(() => _decoder.Decode(junk).Dispose());
        Assert.False(string.IsNullOrWhiteSpace(ex.Message));
    }

    [Fact]
    public void Decode_BmpWithIntactHeadersAndRandomPixels_IsAValidNoiseImage()
    {
        // Uncompressed BMP has no checksum: random pixel bytes behind intact headers are a valid
        // image. Documented in docs/vision.md; the structural check still refuses short files.
        var bytes = Variant("bmp-24");
        var noisy = (byte[])bytes.Clone();
        new Random(5).NextBytes(noisy.AsSpan(54));
        using var img = _decoder.Decode(noisy);
        Assert.Equal(40, img.Width);
    }

    [Fact]
    public void Decode_PngWhoseDataEndsBeforeTheLastRow_Refused()
    {
        // Chunks complete, IEND present, but the compressed data holds 3 of 40 rows.
        var full = Variant("png-gray8");
        using var img = ImageFixtures.Pattern(40, 3);
        var shortPng = ImageFixtures.Encode(img, new SixLabors.ImageSharp.Formats.Png.PngEncoder { ColorType = SixLabors.ImageSharp.Formats.Png.PngColorType.Grayscale });
        shortPng[23] = 40; // IHDR height (big-endian, low byte at 23) 3 → 40; fix the CRC
        var crc = ImageFixtures.Crc32(shortPng.AsSpan(12, 17));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(shortPng.AsSpan(29), crc);
        var ex = Assert.Throws<InputException>(() => _decoder.Decode(shortPng).Dispose());
        Assert.Contains("truncated image data", ex.Message);
        using var ok = _decoder.Decode(full);
    }

    [Theory]
    [InlineData(100_000, 100_000)]
    [InlineData(10_000, 10_000)]
    [InlineData(1, 29_999_999)]
    public void Decode_PngBomb_RefusedFromTheHeader(int w, int h)
    {
        var ex = Assert.Throws<InputException>(() => _decoder.Decode(ImageFixtures.PngDeclaring(w, h)).Dispose());
        Assert.Contains($"{w}×{h}", ex.Message);
    }

    [Fact]
    public void Decode_JpegBomb_RefusedFromTheHeader()
    {
        using var img = ImageFixtures.Pattern(16, 16);
        var bytes = ImageFixtures.Encode(img, new SixLabors.ImageSharp.Formats.Jpeg.JpegEncoder());
        // Patch the SOF0 frame size to 60000 × 60000.
        int sof = bytes.AsSpan().IndexOf(new byte[] { 0xFF, 0xC0 });
        bytes[sof + 5] = 0xEA; bytes[sof + 6] = 0x60; bytes[sof + 7] = 0xEA; bytes[sof + 8] = 0x60;
        var ex = Assert.Throws<InputException>(() => _decoder.Decode(bytes).Dispose());
        Assert.Contains("60000×60000", ex.Message);
    }

    [Fact]
    public void Decode_OverFileSizeLimit_Refused()
    {
        var small = new ImageDecoder(VisionOptions.Default with { MaxFileBytes = 100 });
        var ex = Assert.Throws<InputException>(() => small.Decode(Variant("png-rgb8")).Dispose());
        Assert.Contains("byte limit", ex.Message);
    }

    [Fact]
    public void Decode_PixelBudgetIsConfigurable()
    {
        var tiny = new ImageDecoder(VisionOptions.Default with { MaxPixels = 100 });
        var ex = Assert.Throws<InputException>(() => tiny.Decode(Variant("png-gray8")).Dispose());
        Assert.Contains("budget", ex.Message);
    }
}
