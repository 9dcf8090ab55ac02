using MoeModal.Abstractions;
using MoeModal.Core.Packages;

namespace MoeModal.Plugins.Vision.Tests;

/// <summary>The bundled vision package, found from the test's folder up to the repository root.</summary>
public static class VisionPackage
{
    public static string Directory { get; } = Testing.RepoPaths.Package("vision-fmnist");

    public static PackageInfo Info()
    {
        var m = ManifestReader.ReadFile(Path.Combine(Directory, ManifestReader.FileName));
        return new PackageInfo(m.Name, m.Modality, Directory, m.Inputs, m.Outputs, m.Metadata, []);
    }
}
