using MoeModal.Core.Hosting;

namespace MoeModal.Cli;

/// <summary>Turns command-line paths into pipeline items: files as given, folders recursively.</summary>
public static class InputFiles
{
    /// <summary>
    /// Every path becomes items in order: a file is itself; a folder gives its non-hidden files,
    /// recursively, sorted, without following symbolic links to folders (no loops). A missing
    /// path becomes an item whose read fails, so it gets its own error line. With
    /// <paramref name="folderExtensions"/>, a folder gives only files with one of those extensions
    /// (case-insensitive) and <paramref name="skipped"/> hears of the others; files named on the
    /// command line are always taken.
    /// </summary>
    public static IEnumerable<PipelineItem> Enumerate(IEnumerable<string> paths, long maxBytes,
        IReadOnlyCollection<string>? folderExtensions = null, Action<string>? skipped = null)
    {
        foreach (var p in paths)
        {
            if (Directory.Exists(p))
            {
                foreach (var f in Walk(p))
                {
                    if (folderExtensions is null || folderExtensions.Any(x => f.EndsWith(x, StringComparison.OrdinalIgnoreCase)))
                        yield return Item(f, maxBytes);
                    else
                        skipped?.Invoke(f);
                }
            }
            else
            {
                yield return Item(p, maxBytes);
            }
        }
    }

    private static IEnumerable<string> Walk(string dir)
    {
        var info = new DirectoryInfo(dir);
        IEnumerable<FileSystemInfo> entries;
        try
        {
            entries = info.EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal).ToArray();
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            yield break;
        }
        foreach (var e in entries)
        {
            if (e.Name.StartsWith('.')) continue;
            if (e is DirectoryInfo d)
            {
                if (d.LinkTarget is not null) continue;
                foreach (var f in Walk(d.FullName)) yield return f;
            }
            else
            {
                yield return Path.Combine(dir, e.Name);
            }
        }
    }

    private static PipelineItem Item(string path, long maxBytes) => new(path, () => ReadCapped(path, maxBytes));

    /// <summary>Reads at most <paramref name="maxBytes"/> (+1 to detect more), so /dev/zero or a huge file cannot exhaust memory.</summary>
    public static ReadOnlyMemory<byte> ReadCapped(string path, long maxBytes)
    {
        if (Directory.Exists(path)) throw new IOException("is a folder");
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        if (fs.CanSeek && fs.Length > maxBytes)
            throw new MoeModal.Abstractions.InputException($"file is {fs.Length} bytes, over the {maxBytes}-byte limit");
        var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = fs.Read(chunk, 0, chunk.Length)) > 0)
        {
            buffer.Write(chunk, 0, n);
            if (buffer.Length > maxBytes)
                throw new MoeModal.Abstractions.InputException($"file is over the {maxBytes}-byte limit");
        }
        return buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
    }
}
