namespace MoeModal.Core.Packages;

/// <summary>Resolves manifest paths and refuses any that leave the package folder.</summary>
public sealed class PackagePaths
{
    private readonly string _rootReal;

    public PackagePaths(string packageDirectory)
    {
        Root = Path.GetFullPath(packageDirectory);
        if (!Directory.Exists(Root)) throw new ModelPackageException($"{packageDirectory}: model package folder does not exist");
        _rootReal = RealPath(Root);
    }

    /// <summary>The package folder, absolute.</summary>
    public string Root { get; }

    /// <summary>
    /// The absolute path of a file named by the manifest. Refuses absolute paths, "..", paths whose
    /// real location (after following symbolic links) lies outside the package, and missing files.
    /// </summary>
    public string Resolve(string relative, string? step, string what)
    {
        if (string.IsNullOrWhiteSpace(relative))
            throw ModelPackageException.At(ManifestReader.FileName, step, null, $"{what} path is empty");
        if (Path.IsPathRooted(relative) || relative.Contains('\\') || relative.Contains(':'))
            throw ModelPackageException.At(ManifestReader.FileName, step, null, $"{what} path '{relative}' must be relative, with '/' separators");
        foreach (var part in relative.Split('/'))
            if (part is ".." or "")
                throw ModelPackageException.At(ManifestReader.FileName, step, null, $"{what} path '{relative}' must stay inside the package (no '..' or empty parts)");

        string full = Path.GetFullPath(Path.Combine(Root, relative));
        if (!File.Exists(full))
            throw ModelPackageException.At(relative, step, null, $"{what} file does not exist in the package");
        string real = RealPath(full);
        if (!IsInside(real, _rootReal))
            throw ModelPackageException.At(relative, step, null, $"{what} resolves to '{real}', outside the package folder");
        return full;
    }

    /// <summary>True when <paramref name="relativeToFile"/>, taken relative to <paramref name="file"/>'s folder, stays inside the package.</summary>
    public bool StaysInside(string file, string relativeToFile)
    {
        if (Path.IsPathRooted(relativeToFile)) return false;
        string full = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, relativeToFile));
        string real = File.Exists(full) || Directory.Exists(full) ? RealPath(full) : full;
        return IsInside(real, _rootReal);
    }

    private static bool IsInside(string path, string root) =>
        path.StartsWith(root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>Follows symbolic links in every component of an existing path.</summary>
    internal static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        string root = Path.GetPathRoot(full)!;
        string current = root;
        var parts = full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < parts.Length; i++)
        {
            string next = Path.Combine(current, parts[i]);
            FileSystemInfo fsi = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            var target = fsi.Exists && fsi.LinkTarget is not null ? fsi.ResolveLinkTarget(returnFinalTarget: true) : null;
            current = target is not null ? RealPath(target.FullName) : next;
        }
        return current;
    }
}
