using System.Buffers.Binary;

namespace MoeModal.Plugins.Vision;

/// <summary>
/// Format sniffing and cheap structural checks run before decoding. Decoders tend to fill a
/// truncated image with gray and carry on; a classifier must not classify half an image, so
/// files whose structure ends early are refused here with a message that says where.
/// </summary>
public static class ImageStructure
{
    private static ReadOnlySpan<byte> PngSignature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    public static string? Sniff(ReadOnlySpan<byte> b)
    {
        if (b.Length >= 8 && b[..8].SequenceEqual(PngSignature)) return "PNG";
        if (b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "JPEG";
        if (b.Length >= 2 && b[0] == (byte)'B' && b[1] == (byte)'M') return "BMP";
        if (b.Length >= 6 && (b[..6].SequenceEqual("GIF87a"u8) || b[..6].SequenceEqual("GIF89a"u8))) return "GIF";
        if (b.Length >= 12 && b[..4].SequenceEqual("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8)) return "WebP";
        return null;
    }

    /// <summary>
    /// Null when the structure is complete, else what is wrong. Image data is inflated only for
    /// images within <paramref name="maxPixels"/> and <paramref name="maxSide"/> (bigger ones are
    /// refused from the header later).
    /// </summary>
    public static string? Check(string kind, ReadOnlySpan<byte> b, long maxPixels = long.MaxValue, long maxSide = long.MaxValue) => kind switch
    {
        "PNG" => CheckPng(b, maxPixels, maxSide),
        "JPEG" => CheckJpeg(b),
        "BMP" => CheckBmp(b),
        "GIF" => CheckGif(b),
        "WebP" => CheckWebP(b),
        _ => null,
    };

    /// <summary>
    /// Walks the chunks (each must fit in the file, IHDR first, IDAT present, IEND last), then
    /// inflates the image data just far enough to know it holds every row the header declares.
    /// </summary>
    private static string? CheckPng(ReadOnlySpan<byte> b, long maxPixels, long maxSide)
    {
        int pos = 8;
        bool first = true;
        var idat = new List<(int Start, int Length)>();
        ReadOnlySpan<byte> ihdr = default;
        while (true)
        {
            if (b.Length - pos < 12) return $"truncated: chunk header at byte {pos} runs past the end ({b.Length} bytes)";
            uint len = BinaryPrimitives.ReadUInt32BigEndian(b[pos..]);
            string type = Printable(b.Slice(pos + 4, 4));
            if (len > int.MaxValue || (long)pos + 12 + len > b.Length)
                return $"truncated: chunk '{type}' at byte {pos} declares {len} bytes but the file ends at {b.Length}";
            if (first && (type != "IHDR" || len < 13)) return $"the first chunk is '{type}' ({len} bytes), not IHDR";
            if (first) ihdr = b.Slice(pos + 8, 13);
            first = false;
            if (type == "IDAT") idat.Add((pos + 8, (int)len));
            pos += 12 + (int)len;
            if (type == "IEND") break;
        }
        if (idat.Count == 0) return "no image data (IDAT) before IEND";
        long w = BinaryPrimitives.ReadUInt32BigEndian(ihdr), h = BinaryPrimitives.ReadUInt32BigEndian(ihdr[4..]);
        return w * h > maxPixels || w > maxSide || h > maxSide ? null : CheckPngData(b, ihdr, idat);
    }

    /// <summary>Inflates the IDAT stream (counting, not keeping) up to the size the header implies.</summary>
    private static string? CheckPngData(ReadOnlySpan<byte> b, ReadOnlySpan<byte> ihdr, List<(int Start, int Length)> idat)
    {
        long w = BinaryPrimitives.ReadUInt32BigEndian(ihdr), h = BinaryPrimitives.ReadUInt32BigEndian(ihdr[4..]);
        int depth = ihdr[8], colorType = ihdr[9], interlace = ihdr[12];
        int channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => 0 };
        if (channels == 0 || depth is not (1 or 2 or 4 or 8 or 16)) return $"IHDR declares color type {colorType} with bit depth {depth}";
        if (w == 0 || h == 0 || w > 1 << 30 || h > 1 << 30) return $"IHDR declares {w}×{h} pixels";
        long expected = interlace == 0 ? RawSize(w, h, channels, depth) : Adam7Size(w, h, channels, depth);
        var compressed = new byte[idat.Sum(c => c.Length)];
        int at = 0;
        foreach (var (start, length) in idat) { b.Slice(start, length).CopyTo(compressed.AsSpan(at)); at += length; }
        long got = 0;
        try
        {
            using var z = new System.IO.Compression.ZLibStream(new MemoryStream(compressed), System.IO.Compression.CompressionMode.Decompress);
            var scratch = new byte[1 << 16];
            int n;
            while (got < expected && (n = z.Read(scratch, 0, (int)Math.Min(scratch.Length, expected - got))) > 0) got += n;
        }
        catch (InvalidDataException ex)
        {
            return $"corrupt image data after {got} of {expected} bytes ({ex.Message})";
        }
        return got < expected ? $"truncated image data: {got} of the {expected} bytes the header declares" : null;
    }

    private static long RawSize(long w, long h, int channels, int depth) => h * (1 + (w * channels * depth + 7) / 8);

    private static long Adam7Size(long w, long h, int channels, int depth)
    {
        (int X0, int Y0, int Dx, int Dy)[] passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];
        long total = 0;
        foreach (var (x0, y0, dx, dy) in passes)
        {
            long pw = (w - x0 + dx - 1) / dx, ph = (h - y0 + dy - 1) / dy;
            if (pw > 0 && ph > 0) total += RawSize(pw, ph, channels, depth);
        }
        return total;
    }

    private static string Printable(ReadOnlySpan<byte> fourcc)
    {
        foreach (byte c in fourcc) if (c is < 0x20 or > 0x7e) return "0x" + Convert.ToHexString(fourcc);
        return System.Text.Encoding.ASCII.GetString(fourcc);
    }

    /// <summary>Walks the markers up to the first scan, then requires an EOI marker after it.</summary>
    private static string? CheckJpeg(ReadOnlySpan<byte> b)
    {
        int pos = 2;
        bool frame = false;
        while (true)
        {
            if (b.Length - pos < 4) return $"truncated: marker at byte {pos} runs past the end ({b.Length} bytes)";
            if (b[pos] != 0xFF) return $"expected a marker at byte {pos}, found 0x{b[pos]:x2}";
            byte m = b[pos + 1];
            if (m == 0xFF) { pos++; continue; }                              // fill byte
            if (m == 0xD8 || m is >= 0xD0 and <= 0xD7 || m == 0x01) { pos += 2; continue; }
            if (m == 0xD9) return "end of image before any scan";
            int len = BinaryPrimitives.ReadUInt16BigEndian(b[(pos + 2)..]);
            if (len < 2 || pos + 2 + len > b.Length)
                return $"truncated: segment 0x{m:x2} at byte {pos} declares {len} bytes but the file ends at {b.Length}";
            if (m is >= 0xC0 and <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) frame = true;
            pos += 2 + len;
            if (m == 0xDA) break;                                              // start of scan
        }
        if (!frame) return "no frame header (SOF) before the scan";
        // Entropy-coded data follows; a complete file has an EOI marker (FF D9) after it.
        // Trailing bytes after EOI (padding, thumbnails) are allowed.
        for (int i = b.Length - 2; i >= pos; i--)
            if (b[i] == 0xFF && b[i + 1] == 0xD9) return null;
        return $"truncated: no end-of-image marker after the scan data (file ends at byte {b.Length})";
    }

    /// <summary>Header fields must be consistent and uncompressed pixel data must fit in the file.</summary>
    private static string? CheckBmp(ReadOnlySpan<byte> b)
    {
        if (b.Length < 26) return $"truncated: {b.Length} bytes is shorter than a BMP header";
        uint offset = BinaryPrimitives.ReadUInt32LittleEndian(b[10..]);
        uint dib = BinaryPrimitives.ReadUInt32LittleEndian(b[14..]);
        if (dib < 12 || 14 + dib > b.Length) return $"truncated: DIB header of {dib} bytes runs past the end";
        if (offset > b.Length) return $"truncated: pixel data offset {offset} is past the end ({b.Length} bytes)";
        if (dib >= 40)
        {
            long width = BinaryPrimitives.ReadInt32LittleEndian(b[18..]);
            long height = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(b[22..]));
            int bpp = BinaryPrimitives.ReadUInt16LittleEndian(b[28..]);
            uint compression = BinaryPrimitives.ReadUInt32LittleEndian(b[30..]);
            if (compression is 0 or 3 or 6 && width > 0 && bpp is 1 or 4 or 8 or 16 or 24 or 32)
            {
                long stride = (width * bpp + 31) / 32 * 4;
                long need = offset + stride * height;
                if (need > b.Length) return $"truncated: {width}×{height} at {bpp} bits needs {need} bytes, the file has {b.Length}";
            }
        }
        return null;
    }

    /// <summary>The first image's data sub-blocks must be complete.</summary>
    private static string? CheckGif(ReadOnlySpan<byte> b)
    {
        if (b.Length < 13) return "truncated: shorter than a GIF header";
        int pos = 13;
        byte flags = b[10];
        if ((flags & 0x80) != 0) pos += 3 * (1 << ((flags & 7) + 1));
        while (true)
        {
            if (pos >= b.Length) return "truncated: no image in the file";
            byte block = b[pos];
            if (block == 0x3B) return "no image before the trailer";
            if (block == 0x21)
            {
                pos += 2;
                string? e = SkipSubBlocks(b, ref pos);
                if (e is not null) return e;
                continue;
            }
            if (block != 0x2C) return $"unexpected block 0x{block:x2} at byte {pos}";
            if (pos + 10 > b.Length) return "truncated: image descriptor runs past the end";
            byte iflags = b[pos + 9];
            pos += 10;
            if ((iflags & 0x80) != 0) pos += 3 * (1 << ((iflags & 7) + 1));
            pos += 1; // LZW minimum code size
            return SkipSubBlocks(b, ref pos);
        }
    }

    private static string? SkipSubBlocks(ReadOnlySpan<byte> b, ref int pos)
    {
        while (true)
        {
            if (pos >= b.Length) return $"truncated: data sub-blocks run past the end ({b.Length} bytes)";
            int n = b[pos];
            pos += 1 + n;
            if (n == 0) return null;
        }
    }

    /// <summary>The RIFF size must match the file and every chunk must fit.</summary>
    private static string? CheckWebP(ReadOnlySpan<byte> b)
    {
        long riff = BinaryPrimitives.ReadUInt32LittleEndian(b[4..]) + 8L;
        if (riff > b.Length) return $"truncated: RIFF header declares {riff} bytes, the file has {b.Length}";
        int pos = 12;
        bool image = false;
        while (pos + 8 <= riff)
        {
            var fourcc = Printable(b.Slice(pos, 4));
            long len = BinaryPrimitives.ReadUInt32LittleEndian(b[(pos + 4)..]);
            if (pos + 8 + len > riff) return $"truncated: chunk '{fourcc}' at byte {pos} declares {len} bytes past the end";
            if (fourcc is "VP8 " or "VP8L") image = true;
            pos += 8 + (int)len + (int)(len & 1);
        }
        return image ? null : "no VP8/VP8L image chunk";
    }
}
