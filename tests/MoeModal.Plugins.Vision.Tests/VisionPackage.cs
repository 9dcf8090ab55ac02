using MoeModal.Abstractions;
using MoeModal.Core.Packages;

namespace MoeModal.Plugins.Vision.Tests;

/// <summary>The bundled vision package, found from the test's folder up to the repository root.</summary>
public static class VisionPackage
{
    public static string Directory { get; } = Find();

    private static string Find()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "models", "vision-fmnist");
            if (File.Exists(Path.Combine(p, ManifestReader.FileName))) return p;
        }
        throw new InvalidOperationException("models/vision-fmnist not found above " + AppContext.BaseDirectory);
    }

    public static PackageInfo Info()
    {
        var m = ManifestReader.ReadFile(Path.Combine(Directory, ManifestReader.FileName));
        return new PackageInfo(m.Name, m.Modality, Directory, m.Inputs, m.Outputs, m.Metadata, []);
    }
}
