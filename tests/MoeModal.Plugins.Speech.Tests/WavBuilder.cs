using System.Buffers.Binary;
using System.Text;

namespace MoeModal.Plugins.Speech.Tests;

/// <summary>Writes WAV files byte by byte, including the malformed ones real writers produce.</summary>
public static class WavBuilder
{
    public const ushort Pcm = 1, Float = 3, ALaw = 6, MuLaw = 7, Adpcm = 2, Mp3 = 0x55, Extensible = 0xFFFE;

    /// <summary>A test tone: 440 Hz in channel 0, 660 Hz in the others, amplitude 0.5.</summary>
    public static double[,] Tone(int frames, int channels, int rate)
    {
        var s = new double[frames, channels];
        for (int i = 0; i < frames; i++)
            for (int c = 0; c < channels; c++)
                s[i, c] = 0.5 * Math.Sin(2 * Math.PI * (c == 0 ? 440 : 660) * i / rate);
        return s;
    }

    public static byte[] Samples(double[,] s, ushort format, int bits)
    {
        int frames = s.GetLength(0), channels = s.GetLength(1), bytes = bits / 8;
        var data = new byte[frames * channels * bytes];
        int p = 0;
        for (int i = 0; i < frames; i++)
            for (int c = 0; c < channels; c++, p += bytes)
            {
                double v = s[i, c];
                var d = data.AsSpan(p, bytes);
                if (format == Float && bits == 32) BinaryPrimitives.WriteSingleLittleEndian(d, (float)v);
                else if (format == Float) BinaryPrimitives.WriteDoubleLittleEndian(d, v);
                else if (bits == 8) d[0] = (byte)Math.Clamp(Math.Round(v * 128 + 128), 0, 255);
                else if (bits == 16) BinaryPrimitives.WriteInt16LittleEndian(d, (short)Math.Clamp(Math.Round(v * 32768), -32768, 32767));
                else if (bits == 24)
                {
                    int x = (int)Math.Clamp(Math.Round(v * 8388608), -8388608, 8388607);
                    d[0] = (byte)x; d[1] = (byte)(x >> 8); d[2] = (byte)(x >> 16);
                }
                else BinaryPrimitives.WriteInt32LittleEndian(d, (int)Math.Clamp(Math.Round(v * 2147483648.0), int.MinValue, int.MaxValue));
            }
        return data;
    }

    public static byte[] Fmt(ushort format, int channels, int rate, int bits, int? blockAlign = null)
    {
        var f = new byte[16];
        int align = blockAlign ?? channels * bits / 8;
        BinaryPrimitives.WriteUInt16LittleEndian(f, format);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(2), (ushort)channels);
        BinaryPrimitives.WriteInt32LittleEndian(f.AsSpan(4), rate);
        BinaryPrimitives.WriteInt32LittleEndian(f.AsSpan(8), rate * align);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(12), (ushort)align);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(14), (ushort)bits);
        return f;
    }

    /// <summary>WAVE_FORMAT_EXTENSIBLE fmt chunk (40 bytes) with a sub-format GUID built from <paramref name="subFormat"/>.</summary>
    public static byte[] FmtExtensible(ushort subFormat, int channels, int rate, int bits, uint channelMask)
    {
        var f = new byte[40];
        Fmt(Extensible, channels, rate, bits).CopyTo(f, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(16), 22);
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(18), (ushort)bits);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(20), channelMask);
        new Guid($"{subFormat:x8}-0000-0010-8000-00aa00389b71").TryWriteBytes(f.AsSpan(24));
        return f;
    }

    public static byte[] Chunk(string id, byte[] body, bool pad = true, uint? declared = null)
    {
        var c = new List<byte>(Encoding.ASCII.GetBytes(id));
        var size = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(size, declared ?? (uint)body.Length);
        c.AddRange(size);
        c.AddRange(body);
        if (pad && body.Length % 2 == 1) c.Add(0);
        return [.. c];
    }

    public static byte[] Riff(params byte[][] chunks)
    {
        var body = chunks.SelectMany(c => c).ToArray();
        var h = new byte[12];
        Encoding.ASCII.GetBytes("RIFF").CopyTo(h, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(4), (uint)(body.Length + 4));
        Encoding.ASCII.GetBytes("WAVE").CopyTo(h, 8);
        return [.. h, .. body];
    }

    /// <summary>A plain WAV of <paramref name="s"/>.</summary>
    public static byte[] Wav(double[,] s, int rate, ushort format = Pcm, int bits = 16) =>
        Riff(Chunk("fmt ", Fmt(format, s.GetLength(1), rate, bits)), Chunk("data", Samples(s, format, bits)));
}
