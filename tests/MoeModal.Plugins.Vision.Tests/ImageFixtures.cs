using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;

namespace MoeModal.Plugins.Vision.Tests;

/// <summary>Test images made by code: a known pattern encoded in every format and variant the plugin claims.</summary>
public static class ImageFixtures
{
    /// <summary>A w×h gray pattern: a bright square in the upper-left quarter on black, with a gradient.</summary>
    public static Image<Rgba32> Pattern(int w = 40, int h = 40, bool color = false, bool alpha = false)
    {
        var img = new Image<Rgba32>(w, h);
        img.ProcessPixelRows(acc =>
        {
            for (int y = 0; y < h; y++)
            {
                var row = acc.GetRowSpan(y);
                for (int x = 0; x < w; x++)
                {
                    byte v = (byte)(x < w / 2 && y < h / 2 ? 230 : (x * 100 / Math.Max(1, w - 1)));
                    row[x] = color
                        ? new Rgba32(v, (byte)(v / 2), (byte)(255 - v), alpha ? (byte)(x * 255 / Math.Max(1, w - 1)) : (byte)255)
                        : new Rgba32(v, v, v, alpha ? (byte)(y * 255 / Math.Max(1, h - 1)) : (byte)255);
                }
            }
        });
        return img;
    }

    public static byte[] Encode(Image img, IImageEncoder encoder)
    {
        using var ms = new MemoryStream();
        img.Save(ms, encoder);
        return ms.ToArray();
    }

    public static IEnumerable<(string Name, byte[] Bytes)> AllVariants(int w = 40, int h = 40)
    {
        using var gray = Pattern(w, h);
        using var color = Pattern(w, h, color: true);
        using var alpha = Pattern(w, h, color: true, alpha: true);
        using var grayAlpha = Pattern(w, h, alpha: true);
        yield return ("png-gray8", Encode(gray, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8 }));
        yield return ("png-gray16", Encode(gray, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit16 }));
        yield return ("png-rgb8", Encode(color, new PngEncoder { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit8 }));
        yield return ("png-rgb16", Encode(color, new PngEncoder { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit16 }));
        yield return ("png-palette", Encode(color, new PngEncoder { ColorType = PngColorType.Palette, BitDepth = PngBitDepth.Bit8 }));
        yield return ("png-rgba", Encode(alpha, new PngEncoder { ColorType = PngColorType.RgbWithAlpha }));
        yield return ("png-gray-alpha", Encode(grayAlpha, new PngEncoder { ColorType = PngColorType.GrayscaleWithAlpha }));
        yield return ("jpeg-rgb", Encode(color, new JpegEncoder { Quality = 95, ColorType = JpegColorType.YCbCrRatio444 }));
        yield return ("jpeg-gray", Encode(gray, new JpegEncoder { Quality = 95, ColorType = JpegColorType.Luminance }));
        yield return ("bmp-24", Encode(color, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 }));
        yield return ("bmp-8", Encode(gray, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel8 }));
        yield return ("bmp-32", Encode(alpha, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel32 }));
        yield return ("gif", Encode(color, new GifEncoder()));
        yield return ("webp-lossless", Encode(color, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }));
        yield return ("webp-lossy", Encode(color, new WebpEncoder { FileFormat = WebpFileFormatType.Lossy, Quality = 90 }));
    }

    /// <summary>A JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6).</summary>
    public static byte[] JpegWithOrientation(Image<Rgba32> img, ushort orientation)
    {
        using var copy = img.Clone();
        copy.Metadata.ExifProfile = new ExifProfile();
        copy.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);
        return Encode(copy, new JpegEncoder { Quality = 95 });
    }

    /// <summary>A structurally complete PNG whose header declares <paramref name="w"/>×<paramref name="h"/> pixels (a decompression bomb).</summary>
    public static byte[] PngDeclaring(int w, int h)
    {
        using var ms = new MemoryStream();
        ms.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 0; // gray
        Chunk(ms, "IHDR", ihdr);
        // A zlib stream of a few zero rows: nothing like w·h bytes.
        using (var z = new MemoryStream())
        {
            using (var zs = new System.IO.Compression.ZLibStream(z, System.IO.Compression.CompressionLevel.SmallestSize, leaveOpen: true))
                zs.Write(new byte[Math.Min(1 << 20, (long)(w + 1) * 4)]);
            Chunk(ms, "IDAT", z.ToArray());
        }
        Chunk(ms, "IEND", []);
        return ms.ToArray();
    }

    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var len = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        var typeBytes = System.Text.Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        var crc = Crc32([.. typeBytes, .. data]);
        var c = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(c, crc);
        s.Write(c);
    }
}
