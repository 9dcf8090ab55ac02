using System.Text.Json.Nodes;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace MoeModal.Plugins.Vision.Tests;

[Trait("Modality", "vision")]
public class VisionPreprocessorTests
{
    private static readonly VisionMetadata Plain = new("image", "logits", ["a"], 28, 28, 0f, 1f, [0.299f, 0.587f, 0.114f], 0f, true);

    /// <summary>Centre and corner brightness of a decoded image after preprocessing with mean 0, std 1.</summary>
    public sealed class Probe
    {
        public Probe(ImageDecoder.Decoded img)
        {
            var t = new float[28 * 28];
            new VisionPreprocessor(Plain).Process(img, t);
            Center = t.Where((_, i) => i / 28 is >= 9 and < 19 && i % 28 is >= 9 and < 19).Average();
            Corner = (t[0] + t[27] + t[27 * 28] + t[28 * 28 - 1]) / 4;
        }

        public double Center { get; }
        public double Corner { get; }
    }

    private static float[] Run(Image<Rgba32> img, VisionMetadata? meta = null)
    {
        var bytes = ImageFixtures.Encode(img, new PngEncoder { ColorType = PngColorType.RgbWithAlpha });
        using var decoded = new ImageDecoder().Decode(bytes);
        var t = new float[28 * 28];
        new VisionPreprocessor(meta ?? Plain).Process(decoded, t);
        return t;
    }

    private static Image<Rgba32> Random28(int seed, int scale = 1)
    {
        var rng = new Random(seed);
        var px = new byte[28 * 28];
        rng.NextBytes(px);
        var img = new Image<Rgba32>(28 * scale, 28 * scale);
        for (int y = 0; y < 28 * scale; y++)
            for (int x = 0; x < 28 * scale; x++)
            {
                byte v = px[y / scale * 28 + x / scale];
                img[x, y] = new Rgba32(v, v, v, 255);
            }
        return img;
    }

    [Fact]
    public void Process_28x28Gray_IsPixelsOver255Normalized()
    {
        using var img = Random28(1);
        var meta = Plain with { Mean = 0.2860f, Std = 0.3530f };
        var t = Run(img, meta);
        for (int i = 0; i < 784; i++)
        {
            float v = img[i % 28, i / 28].R / 255f;
            Assert.Equal((v - 0.2860f) / 0.3530f, t[i], 1e-5);
        }
    }

    [Fact]
    public void Process_UpscaledThreeTimes_GivesTheOriginal()
    {
        using var small = Random28(2);
        using var big = Random28(2, scale: 3);
        var a = Run(small);
        var b = Run(big);
        for (int i = 0; i < a.Length; i++) Assert.Equal(a[i], b[i], 1e-6);
    }

    [Fact]
    public void Process_WideImage_IsPaddedCentredWithBlack()
    {
        using var img = new Image<Rgba32>(56, 28, new Rgba32(255, 255, 255, 255));
        var t = Run(img);
        // 56×28 is padded to 56×56 with 14 black rows above and below: output rows 0-6 and 21-27 are black.
        for (int x = 0; x < 28; x++)
        {
            Assert.Equal(0f, t[3 * 28 + x]);
            Assert.Equal(1f, t[14 * 28 + x], 1e-6);
            Assert.Equal(0f, t[25 * 28 + x]);
        }
    }

    [Fact]
    public void Process_TransparentPixels_CompositeOverBlack()
    {
        using var img = new Image<Rgba32>(28, 28, new Rgba32(255, 255, 255, 0));
        Assert.All(Run(img), v => Assert.Equal(0f, v));
        using var half = new Image<Rgba32>(28, 28, new Rgba32(255, 255, 255, 128));
        Assert.All(Run(half), v => Assert.Equal(128 / 255f, v, 1e-6));
    }

    [Fact]
    public void Process_Color_UsesLumaWeights()
    {
        using var img = new Image<Rgba32>(28, 28, new Rgba32(255, 0, 0, 255));
        Assert.All(Run(img), v => Assert.Equal(0.299f, v, 1e-6));
    }

    [Fact]
    public void Process_SixteenBitMatchesEightBit()
    {
        using var img8 = Random28(3);
        using var img16 = img8.CloneAs<Rgba64>();
        var bytes16 = ImageFixtures.Encode(img16, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit16 });
        using var decoded = new ImageDecoder().Decode(bytes16);
        Assert.True(decoded.SixteenBit);
        var t16 = new float[784];
        new VisionPreprocessor(Plain).Process(decoded, t16);
        var t8 = Run(img8);
        for (int i = 0; i < 784; i++) Assert.Equal(t8[i], t16[i], 1e-5);
    }

    [Fact]
    public void Process_TinyImage_IsUpsampledLikeAdaptivePooling()
    {
        using var img = new Image<Rgba32>(2, 1);
        img[0, 0] = new Rgba32(255, 255, 255, 255);
        img[1, 0] = new Rgba32(0, 0, 0, 255);
        var t = Run(img);
        // 2×1 padded to 2×2 (row 0 black pad? (2-1)/2 = 0 rows above, 1 below), each output bin maps to one pixel.
        Assert.Equal(1f, t[0]);
        Assert.Equal(0f, t[27]);
        Assert.Equal(0f, t[27 * 28]);
    }

    [Theory]
    [InlineData(28, 28)]
    [InlineData(90, 28)]
    [InlineData(10, 7)]
    [InlineData(100, 3)]
    public void Range_CoversEveryInputAndMatchesTorchFormula(int size, int n)
    {
        var covered = new bool[size];
        for (int i = 0; i < n; i++)
        {
            var (s, e) = VisionPreprocessor.Range(i, size, n);
            Assert.Equal((int)Math.Floor((double)i * size / n), s);
            Assert.Equal((int)Math.Ceiling((double)(i + 1) * size / n), e);
            for (int j = s; j < e; j++) covered[j] = true;
        }
        Assert.All(covered, Assert.True);
    }

    /// <summary>The recipe wrote fixture PNGs and the tensors its own preprocessing made of them.</summary>
    [Theory]
    [InlineData("pre_rgb8_90x60.png")]
    [InlineData("pre_graya8_40x40.png")]
    [InlineData("pre_gray16_56x56.png")]
    public void Process_MatchesTheRecipesPreprocessing(string file)
    {
        string dir = Path.Combine(VisionPackage.Directory, "reference");
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "preprocess.json")))!["files"]![file]!["tensor"]!.AsArray()
            .Select(v => v!.GetValue<float>()).ToArray();
        var meta = VisionMetadata.From(VisionPackage.Info());
        using var decoded = new ImageDecoder().Decode(File.ReadAllBytes(Path.Combine(dir, file)));
        var t = new float[28 * 28];
        new VisionPreprocessor(meta).Process(decoded, t);
        double max = 0;
        for (int i = 0; i < t.Length; i++) max = Math.Max(max, Math.Abs(t[i] - expected[i]));
        Assert.True(max <= 1e-5, $"{file}: max abs difference {max} > 1e-5");
    }
}
