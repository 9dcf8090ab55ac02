using MoeModal.Core.Packages;

namespace MoeModal.Testing;

/// <summary>Paths of the repository, found from the test's output folder upwards.</summary>
public static class RepoPaths
{
    /// <summary>The folder <paramref name="relative"/> (e.g. "samples/SpeechRecognition/audio") of the repository.</summary>
    public static string Folder(string relative) => FindUp(relative, Directory.Exists);

    /// <summary>The bundled package folder <c>models/<paramref name="name"/></c> (one that has a manifest).</summary>
    public static string Package(string name) =>
        FindUp(Path.Combine("models", name), p => File.Exists(Path.Combine(p, ManifestReader.FileName)));

    private static string FindUp(string relative, Func<string, bool> found)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, relative);
            if (found(p)) return p;
        }
        throw new InvalidOperationException($"{relative} not found above {AppContext.BaseDirectory}");
    }
}
