using MoeModal.Abstractions;
using static MoeModal.Plugins.Speech.Tests.WavBuilder;

namespace MoeModal.Plugins.Speech.Tests;

[Trait("Modality", "speech")]
public class WavReaderTests
{
    private static readonly WavReader Reader = new();

    private static double MeanOf(double[,] s, int i)
    {
        double sum = 0;
        for (int c = 0; c < s.GetLength(1); c++) sum += s[i, c];
        return sum / s.GetLength(1);
    }

    private static void AssertDecodes(byte[] wav, double[,] s, int rate, double tolerance)
    {
        var audio = Reader.Read(wav);
        Assert.Equal(rate, audio.SampleRate);
        Assert.Equal(s.GetLength(1), audio.Channels);
        Assert.Equal(s.GetLength(0), audio.Samples.Length);
        for (int i = 0; i < s.GetLength(0); i++) Assert.True(Math.Abs(audio.Samples[i] - MeanOf(s, i)) <= tolerance, $"sample {i}: {audio.Samples[i]} vs {MeanOf(s, i)}");
    }

    [Theory]
    [InlineData(Pcm, 8, 1, 8000, 1.0 / 128)]
    [InlineData(Pcm, 16, 1, 16000, 1.0 / 32768)]
    [InlineData(Pcm, 16, 2, 44100, 1.0 / 32768)]
    [InlineData(Pcm, 24, 1, 16000, 1e-6)]
    [InlineData(Pcm, 32, 2, 22050, 1e-7)]
    [InlineData(Float, 32, 1, 48000, 1e-7)]
    [InlineData(Float, 64, 3, 11025, 1e-7)]
    public void Pcm_And_Float_Decode_Downmixed(ushort format, int bits, int channels, int rate, double tol)
    {
        var s = Tone(500, channels, rate);
        AssertDecodes(Wav(s, rate, format, bits), s, rate, tol);
    }

    [Fact]
    public void Extensible_SixChannels_Decodes()
    {
        var s = Tone(400, 6, 48000);
        var wav = Riff(Chunk("fmt ", FmtExtensible(Pcm, 6, 48000, 16, 0x3F)), Chunk("data", Samples(s, Pcm, 16)));
        AssertDecodes(wav, s, 48000, 1.0 / 32768);
        var f = Riff(Chunk("fmt ", FmtExtensible(Float, 2, 16000, 32, 0x3)), Chunk("data", Samples(Tone(300, 2, 16000), Float, 32)));
        AssertDecodes(f, Tone(300, 2, 16000), 16000, 1e-7);
    }

    [Fact]
    public void OddSizedListChunk_BeforeData_WithOrWithoutPad_Decodes()
    {
        var s = Tone(300, 1, 16000);
        var list = "INFOISFT\x07\0\0\0Lavf58\0"u8.ToArray()[..17];   // 17 bytes: odd
        var padded = Riff(Chunk("fmt ", Fmt(Pcm, 1, 16000, 16)), Chunk("LIST", list, pad: true), Chunk("data", Samples(s, Pcm, 16)));
        var unpadded = Riff(Chunk("fmt ", Fmt(Pcm, 1, 16000, 16)), Chunk("LIST", list, pad: false), Chunk("data", Samples(s, Pcm, 16)));
        AssertDecodes(padded, s, 16000, 1.0 / 32768);
        AssertDecodes(unpadded, s, 16000, 1.0 / 32768);
    }

    [Fact]
    public void DataBeforeFmt_AndUnknownChunks_Decode()
    {
        var s = Tone(200, 1, 8000);
        var wav = Riff(Chunk("JUNK", new byte[28]), Chunk("data", Samples(s, Pcm, 16)), Chunk("fmt ", Fmt(Pcm, 1, 8000, 16)));
        AssertDecodes(wav, s, 8000, 1.0 / 32768);
    }

    [Fact]
    public void G711_MuLaw_And_ALaw_Decode()
    {
        // μ-law 0xFF and A-law 0xD5 are (near) zero; a constant file decodes to near-silence.
        var mu = Riff(Chunk("fmt ", Fmt(MuLaw, 1, 8000, 8)), Chunk("data", Enumerable.Repeat((byte)0xFF, 100).ToArray()));
        var a = Riff(Chunk("fmt ", Fmt(ALaw, 1, 8000, 8)), Chunk("data", Enumerable.Repeat((byte)0xD5, 100).ToArray()));
        Assert.All(Reader.Read(mu).Samples, v => Assert.True(Math.Abs(v) < 0.001));
        Assert.All(Reader.Read(a).Samples, v => Assert.True(Math.Abs(v) < 0.001));
        // μ-law 0x80 and 0x00 are full scale (+ and −).
        var loud = Riff(Chunk("fmt ", Fmt(MuLaw, 1, 8000, 8)), Chunk("data", [0x80, 0x00]));
        Assert.Equal([true, true], Reader.Read(loud).Samples.Select(v => Math.Abs(v) > 0.9));
        Assert.True(Reader.Read(loud).Samples[0] > 0 != Reader.Read(loud).Samples[1] > 0);
    }

    [Fact]
    public void DeclaredDataSize_LargerThanFile_TakesWholeFrames()
    {
        var s = Tone(300, 2, 16000);
        var data = Samples(s, Pcm, 16);
        var wav = Riff(Chunk("fmt ", Fmt(Pcm, 2, 16000, 16)), Chunk("data", data, declared: 0xFFFFFFFF));
        Assert.Equal(300, Reader.Read(wav).Samples.Length);
        var cut = wav[..^3];   // truncated mid-frame: the partial frame is dropped
        Assert.Equal(299, Reader.Read(cut).Samples.Length);
        var zeroSize = Riff(Chunk("fmt ", Fmt(Pcm, 2, 16000, 16)), Chunk("data", data, declared: 0));
        Assert.Equal(300, Reader.Read(zeroSize).Samples.Length);
    }

    public static TheoryData<string, byte[], string> Refused()
    {
        var ok = Wav(Tone(100, 1, 16000), 16000);
        var d = new TheoryData<string, byte[], string>
        {
            { "empty", [], "empty" },
            { "tiny", "RIFF"u8.ToArray(), "truncated" },
            { "text", "hello, this is not audio at all"u8.ToArray(), "not a WAV" },
            { "header only", ok[..12], "no 'fmt '" },
            { "fmt only", ok[..36], "no 'data'" },
            { "no frames", Riff(Chunk("fmt ", Fmt(Pcm, 2, 16000, 16)), Chunk("data", [1, 2, 3])), "no complete sample frame" },
            { "adpcm", Riff(Chunk("fmt ", Fmt(Adpcm, 1, 8000, 4, 256)), Chunk("data", new byte[512])), "not supported" },
            { "mp3 in wav", Riff(Chunk("fmt ", Fmt(Mp3, 2, 44100, 0, 1)), Chunk("data", new byte[418])), "not supported" },
            { "12-bit pcm", Riff(Chunk("fmt ", Fmt(Pcm, 1, 8000, 12, 2)), Chunk("data", new byte[100])), "12-bit" },
            { "zero channels", Riff(Chunk("fmt ", Fmt(Pcm, 0, 16000, 16, 2)), Chunk("data", new byte[100])), "channels" },
            { "rate 100", Riff(Chunk("fmt ", Fmt(Pcm, 1, 100, 16)), Chunk("data", new byte[100])), "sample rate" },
            { "rate 0", Riff(Chunk("fmt ", Fmt(Pcm, 1, 0, 16)), Chunk("data", new byte[100])), "sample rate" },
            { "bad align", Riff(Chunk("fmt ", Fmt(Pcm, 2, 16000, 16, 3)), Chunk("data", new byte[100])), "block align" },
            { "fmt past end", [.. ok[..16], 0xff, 0xff, 0, 0, .. ok[20..40]], "runs past the end" },
            { "short fmt", Riff(Chunk("fmt ", new byte[6]), Chunk("data", new byte[10])), "too short" },
            { "garbage chunk", [.. ok[..12], 0x00, 0x01, 0x02, 0x03, 0, 0, 0, 0, .. ok[12..]], "garbage" },
            { "rf64", [.. "RF64"u8.ToArray(), .. ok[4..]], "RF64" },
            { "extensible unknown", Riff(Chunk("fmt ", FmtExtensible(0x55, 1, 16000, 16, 4)), Chunk("data", new byte[100])), "sub-format" },
            { "65 channels", Riff(Chunk("fmt ", Fmt(Pcm, 65, 16000, 16)), Chunk("data", new byte[1300])), "channels" },
            { "rifx", [.. "RIFX"u8.ToArray(), .. ok[4..]], "big-endian" },
            // 4,000,000,000 Hz: an unsigned field; the message must not show it as a negative int.
            { "rate 4e9", [.. ok[..24], 0x00, 0x28, 0x6b, 0xee, .. ok[28..]], "sample rate 4000000000 Hz" },
        };
        return d;
    }

    [Theory]
    [MemberData(nameof(Refused))]
    public void Broken_Or_Unsupported_ClearError(string name, byte[] wav, string expected)
    {
        var ex = Assert.Throws<InputException>(() => Reader.Read(wav));
        Assert.Contains(expected, ex.Message, StringComparison.OrdinalIgnoreCase);
        Assert.False(string.IsNullOrEmpty(name));
    }

    [Fact]
    public void LengthCap_RefusesBeforeAllocating()
    {
        var reader = new WavReader(AudioOptions.Default with { MaxSeconds = 1 });
        var wav = Wav(Tone(16001, 1, 16000), 16000);
        Assert.Contains("limit", Assert.Throws<InputException>(() => reader.Read(wav)).Message);
        var small = new WavReader(AudioOptions.Default with { MaxFileBytes = 100 });
        Assert.Contains("limit", Assert.Throws<InputException>(() => small.Read(wav)).Message);
    }

    [Fact]
    public void ManyTinyChunks_Refused()
    {
        var chunks = Enumerable.Range(0, 5000).Select(_ => Chunk("JUNK", [])).Append(Chunk("fmt ", Fmt(Pcm, 1, 16000, 16))).ToArray();
        Assert.Contains("chunks", Assert.Throws<InputException>(() => Reader.Read(Riff(chunks))).Message);
    }

    [Fact]
    public void NaNFloatSamples_BecomeSilence()
    {
        var s = new double[4, 1] { { double.NaN }, { double.PositiveInfinity }, { 2.0 }, { -0.25 } };
        var audio = Reader.Read(Wav(s, 16000, Float, 32));
        Assert.Equal(new float[] { 0, 0, 1, -0.25f }, audio.Samples);
    }

    [Fact]
    public void RandomCorruption_OnlyInputExceptions()
    {
        var ok = Wav(Tone(300, 2, 16000), 16000);
        var rng = new Random(11);
        for (int trial = 0; trial < 3000; trial++)
        {
            var b = (byte[])ok.Clone();
            int edits = rng.Next(1, 6);
            for (int e = 0; e < edits; e++) b[rng.Next(Math.Min(b.Length, 64))] = (byte)rng.Next(256);
            int len = rng.Next(2) == 0 ? b.Length : rng.Next(b.Length);
            try
            {
                var a = Reader.Read(b.AsSpan(0, len));
                Assert.All(a.Samples, v => Assert.True(float.IsFinite(v) && Math.Abs(v) <= 1.0001f));
            }
            catch (InputException)
            {
            }
        }
    }
}
