using System.Buffers.Binary;
using System.IO.Compression;
using MoeModal.Abstractions;

namespace MoeModal.Plugins.Vision;

/// <summary>
/// An MNIST-style IDX dataset (Fashion-MNIST): images (magic 0x803, uint8 [n, rows, cols]) and
/// labels (magic 0x801, uint8 [n]), gzipped or not.
/// </summary>
public sealed record IdxDataset(byte[] Images, byte[] Labels, int Count, int Rows, int Cols)
{
    /// <summary>At most this many images are read (stops a hostile header from allocating without bound).</summary>
    public const int MaxCount = 10_000_000;

    public ReadOnlySpan<byte> Image(int i) => Images.AsSpan(i * Rows * Cols, Rows * Cols);

    /// <summary>
    /// Reads the <paramref name="split"/> ("t10k" or "train") files from <paramref name="folder"/>:
    /// <c>{split}-images-idx3-ubyte[.gz]</c> and <c>{split}-labels-idx1-ubyte[.gz]</c>.
    /// </summary>
    public static IdxDataset Load(string folder, string split = "t10k")
    {
        if (!Directory.Exists(folder)) throw new InputException($"{folder}: data folder does not exist");
        string images = Find(folder, $"{split}-images-idx3-ubyte");
        string labels = Find(folder, $"{split}-labels-idx1-ubyte");
        var (img, n, dims) = Read(images, 0x803, 3);
        var (lab, m, _) = Read(labels, 0x801, 1);
        if (n != m) throw new InputException($"{folder}: {n} images but {m} labels");
        return new IdxDataset(img, lab, n, dims[1], dims[2]);
    }

    private static string Find(string folder, string stem)
    {
        foreach (var name in new[] { stem, stem + ".gz" })
        {
            string p = Path.Combine(folder, name);
            if (File.Exists(p)) return p;
        }
        throw new InputException($"{folder}: no {stem} or {stem}.gz");
    }

    private static (byte[] Data, int Count, int[] Dims) Read(string path, int magic, int rank)
    {
        using var file = File.OpenRead(path);
        using Stream s = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file;
        var header = new byte[4 + 4 * rank];
        try
        {
            s.ReadExactly(header);
        }
        catch (EndOfStreamException)
        {
            throw new InputException($"{path}: truncated IDX header");
        }
        catch (InvalidDataException ex)
        {
            throw new InputException($"{path}: not valid gzip ({ex.Message})");
        }
        int got = BinaryPrimitives.ReadInt32BigEndian(header);
        if (got != magic) throw new InputException($"{path}: IDX magic 0x{got:x} is not 0x{magic:x}");
        var dims = new int[rank];
        long total = 1;
        for (int i = 0; i < rank; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4 + 4 * i));
            if (dims[i] <= 0) throw new InputException($"{path}: dimension {i} is {dims[i]}");
            total *= dims[i];
        }
        if (dims[0] > MaxCount || total > int.MaxValue / 2)
            throw new InputException($"{path}: declares {total} bytes of data, over the limit");
        var data = new byte[total];
        try
        {
            s.ReadExactly(data);
        }
        catch (EndOfStreamException)
        {
            throw new InputException($"{path}: truncated: header declares {total} data bytes");
        }
        catch (InvalidDataException ex)
        {
            throw new InputException($"{path}: corrupt gzip ({ex.Message})");
        }
        return (data, dims[0], dims);
    }
}
