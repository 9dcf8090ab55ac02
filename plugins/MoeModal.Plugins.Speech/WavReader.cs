using System.Buffers.Binary;
using MoeModal.Abstractions;
using NAudio.Codecs;
using NAudio.Wave;

namespace MoeModal.Plugins.Speech;

/// <summary>Decoded audio: mono samples in [−1, 1] and what the file was.</summary>
public sealed record Audio(float[] Samples, int SampleRate, int Channels, string Format)
{
    public double Seconds => (double)Samples.Length / SampleRate;
}

/// <summary>
/// Reads WAV files defensively: its own RIFF walk (sizes checked against the file, odd-sized chunks
/// with or without their pad byte, truncated data cut to whole frames), NAudio's format-chunk parser
/// and G.711 decoders, then downmix to mono. PCM 8/16/24/32-bit, IEEE float 32/64, A-law, μ-law and
/// WAVE_FORMAT_EXTENSIBLE with any of those; other codecs are refused by name.
/// </summary>
public sealed class WavReader(AudioOptions? options = null)
{
    private readonly AudioOptions _o = options ?? AudioOptions.Default;

    private static readonly Guid PcmSubFormat = new("00000001-0000-0010-8000-00aa00389b71");
    private static readonly Guid FloatSubFormat = new("00000003-0000-0010-8000-00aa00389b71");
    private static readonly Guid ALawSubFormat = new("00000006-0000-0010-8000-00aa00389b71");
    private static readonly Guid MuLawSubFormat = new("00000007-0000-0010-8000-00aa00389b71");

    public Audio Read(ReadOnlySpan<byte> b)
    {
        if (b.Length == 0) throw new InputException("empty file (0 bytes)");
        if (b.Length > _o.MaxFileBytes) throw new InputException($"file is {b.Length} bytes, over the {_o.MaxFileBytes}-byte limit");
        if (b.Length < 12) throw new InputException($"truncated: {b.Length} bytes is shorter than a RIFF header");
        string riff = FourCc(b[..4]);
        if (riff == "RF64") throw new InputException("RF64 (WAV over 4 GB) is not supported");
        if (riff == "RIFX") throw new InputException("big-endian WAV (RIFX) is not supported; convert it with sox in.wav -e signed -b 16 out.wav");
        if (riff != "RIFF" || FourCc(b[8..12]) != "WAVE")
            throw new InputException($"not a WAV file (starts with '{FourCc(b[..4])}'…'{FourCc(b[8..12])}', expected RIFF…WAVE)");

        var (fmtAt, fmtLen, dataAt, dataLen) = Walk(b);
        if (fmtAt < 0) throw new InputException("no 'fmt ' chunk: the file does not say how its samples are stored");
        if (dataAt < 0) throw new InputException("no 'data' chunk: the file holds no audio");
        var format = ParseFormat(b.Slice(fmtAt, fmtLen));
        var (kind, bytesPerSample) = Classify(format, b.Slice(fmtAt, fmtLen));
        int channels = format.Channels;
        // The field is unsigned; NAudio reads it as int, so a huge value would look negative.
        uint rawRate = BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(fmtAt + 4, 4));
        if (channels < 1 || channels > _o.MaxChannels) throw new InputException($"{channels} channels; 1 to {_o.MaxChannels} are supported");
        if (rawRate < _o.MinSampleRate || rawRate > _o.MaxSampleRate)
            throw new InputException($"sample rate {rawRate} Hz is outside {_o.MinSampleRate}–{_o.MaxSampleRate} Hz");
        int rate = (int)rawRate;
        int frameBytes = bytesPerSample * channels;
        long frames = dataLen / frameBytes;
        if (frames == 0) throw new InputException("the data chunk holds no complete sample frame");
        if (frames > _o.MaxSeconds * rate)
            throw new InputException($"{frames / (double)rate:F1} s of audio is over the {_o.MaxSeconds} s limit (split the file, or raise the limit: transcribe --max-seconds)");
        var mono = Decode(b.Slice(dataAt, (int)(frames * frameBytes)), kind, bytesPerSample, channels, (int)frames);
        string desc = $"{kind} {bytesPerSample * 8}-bit, {channels} ch, {rate} Hz";
        return new Audio(mono, rate, channels, desc);
    }

    /// <summary>Finds fmt and data. Sizes larger than the file are clamped (streamed WAVs often leave them 0 or 0xFFFFFFFF).</summary>
    private (int FmtAt, int FmtLen, int DataAt, int DataLen) Walk(ReadOnlySpan<byte> b)
    {
        int pos = 12, fmtAt = -1, fmtLen = 0, dataAt = -1, dataLen = 0;
        for (int chunks = 0; pos + 8 <= b.Length && (fmtAt < 0 || dataAt < 0); chunks++)
        {
            if (chunks >= _o.MaxChunks) throw new InputException($"more than {_o.MaxChunks} RIFF chunks");
            if (!IsChunkId(b.Slice(pos, 4))) throw new InputException($"garbage where a RIFF chunk should start at byte {pos}");
            string id = FourCc(b.Slice(pos, 4));
            long size = BinaryPrimitives.ReadUInt32LittleEndian(b[(pos + 4)..]);
            int body = pos + 8;
            long available = b.Length - body;
            if (id == "fmt ")
            {
                if (size < 14 || size > available)
                    throw new InputException($"'fmt ' chunk of {size} bytes {(size > available ? "runs past the end of the file" : "is too short")}");
                fmtAt = body;
                fmtLen = (int)size;
            }
            else if (id == "data")
            {
                // 0 and 0xFFFFFFFF are placeholders of writers that never came back to fix the header;
                // a size past the end is a truncated file: take the whole frames that are there.
                dataAt = body;
                dataLen = (int)(size == 0 || size > available ? available : size);
                if (size == 0 || size > available) break;
            }
            if (size > available) break;
            long next = body + size;
            if ((size & 1) == 1 && next < b.Length)
            {
                // RIFF pads odd-sized chunks to even length with a zero byte; some writers forget it.
                // A chunk id never starts with 0, so a zero here is the pad byte.
                bool padded = b[(int)next] == 0;
                bool unpadded = next + 8 <= b.Length && IsChunkId(b.Slice((int)next, 4));
                if (padded || !unpadded) next++;
            }
            pos = (int)next;
        }
        return (fmtAt, fmtLen, dataAt, dataLen);
    }

    private static WaveFormat ParseFormat(ReadOnlySpan<byte> chunk)
    {
        try
        {
            using var br = new BinaryReader(new MemoryStream(chunk.ToArray()));
            return WaveFormat.FromFormatChunk(br, chunk.Length);
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or ArgumentException or FormatException)
        {
            throw new InputException($"unreadable 'fmt ' chunk: {ex.Message}", ex);
        }
    }

    private enum Kind { Pcm, Float, ALaw, MuLaw }

    private static (Kind Kind, int BytesPerSample) Classify(WaveFormat f, ReadOnlySpan<byte> chunk)
    {
        var encoding = f.Encoding;
        string codec = $"{encoding} (0x{(int)encoding:x4})";
        if (encoding == WaveFormatEncoding.Extensible)
        {
            if (chunk.Length < 40) throw new InputException($"WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk of {chunk.Length} bytes is too short (40)");
            var sub = new Guid(chunk.Slice(24, 16));
            encoding = sub == PcmSubFormat ? WaveFormatEncoding.Pcm
                : sub == FloatSubFormat ? WaveFormatEncoding.IeeeFloat
                : sub == ALawSubFormat ? WaveFormatEncoding.ALaw
                : sub == MuLawSubFormat ? WaveFormatEncoding.MuLaw
                : throw new InputException($"WAVE_FORMAT_EXTENSIBLE sub-format {sub} is not supported (PCM, IEEE float, A-law, μ-law are)");
            codec = $"extensible {encoding}";
        }
        if (encoding is not (WaveFormatEncoding.Pcm or WaveFormatEncoding.IeeeFloat or WaveFormatEncoding.ALaw or WaveFormatEncoding.MuLaw))
            throw new InputException($"WAV codec {codec} is not supported (PCM, IEEE float, A-law, μ-law are); convert the file to PCM, e.g. sox in.wav -e signed -b 16 out.wav");
        int bits = f.BitsPerSample;
        int bytes = bits / 8;
        (Kind, int) result = encoding switch
        {
            WaveFormatEncoding.Pcm when bits is 8 or 16 or 24 or 32 => (Kind.Pcm, bytes),
            WaveFormatEncoding.Pcm => throw new InputException($"{bits}-bit PCM is not supported (8, 16, 24, 32)"),
            WaveFormatEncoding.IeeeFloat when bits is 32 or 64 => (Kind.Float, bytes),
            WaveFormatEncoding.IeeeFloat => throw new InputException($"{bits}-bit float is not supported (32, 64)"),
            WaveFormatEncoding.ALaw when bits == 8 => (Kind.ALaw, 1),
            WaveFormatEncoding.MuLaw when bits == 8 => (Kind.MuLaw, 1),
            _ => throw new InputException($"{bits}-bit {encoding} is not supported (G.711 is 8-bit)"),
        };
        if (f.Channels > 0 && f.BlockAlign != bytes * f.Channels)
            throw new InputException($"block align {f.BlockAlign} does not match {f.Channels} channels of {bits}-bit samples");
        return result;
    }

    private static float[] Decode(ReadOnlySpan<byte> data, Kind kind, int bytes, int channels, int frames)
    {
        var mono = new float[frames];
        float scale = 1f / channels;
        int frameBytes = bytes * channels;
        for (int i = 0; i < frames; i++)
        {
            var frame = data.Slice(i * frameBytes, frameBytes);
            double sum = 0;
            for (int c = 0; c < channels; c++) sum += Sample(frame.Slice(c * bytes, bytes), kind, bytes);
            mono[i] = (float)(sum * scale);
        }
        return mono;
    }

    private static double Sample(ReadOnlySpan<byte> s, Kind kind, int bytes) => kind switch
    {
        Kind.Pcm => bytes switch
        {
            1 => (s[0] - 128) / 128.0,
            2 => BinaryPrimitives.ReadInt16LittleEndian(s) / 32768.0,
            3 => ((s[0] | (s[1] << 8) | (s[2] << 16)) << 8 >> 8) / 8388608.0,
            _ => BinaryPrimitives.ReadInt32LittleEndian(s) / 2147483648.0,
        },
        Kind.Float => bytes == 4 ? Finite(BinaryPrimitives.ReadSingleLittleEndian(s)) : Finite(BinaryPrimitives.ReadDoubleLittleEndian(s)),
        Kind.ALaw => ALawDecoder.ALawToLinearSample(s[0]) / 32768.0,
        _ => MuLawDecoder.MuLawToLinearSample(s[0]) / 32768.0,
    };

    /// <summary>NaN/inf samples (corrupt float files) become silence; finite ones are clipped to [−1, 1].</summary>
    private static double Finite(double v) => double.IsFinite(v) ? Math.Clamp(v, -1.0, 1.0) : 0.0;

    private static bool IsChunkId(ReadOnlySpan<byte> id)
    {
        foreach (byte c in id) if (c is < 0x20 or > 0x7e) return false;
        return true;
    }

    private static string FourCc(ReadOnlySpan<byte> id) =>
        IsChunkId(id) ? System.Text.Encoding.ASCII.GetString(id) : "0x" + Convert.ToHexString(id);
}
