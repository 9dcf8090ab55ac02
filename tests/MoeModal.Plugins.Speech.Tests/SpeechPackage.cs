using System.Text.Json.Nodes;
using MoeModal.Core.Packages;

namespace MoeModal.Plugins.Speech.Tests;

/// <summary>The bundled speech package and its recipe references, found from the test's folder upwards.</summary>
public static class SpeechPackage
{
    public static string Directory { get; } = Find();

    public static string ReferenceDir => Path.Combine(Directory, "reference");

    public static JsonNode Reference { get; } = JsonNode.Parse(File.ReadAllText(Path.Combine(ReferenceDir, "reference.json")))!;

    public static IEnumerable<JsonNode> Files => Reference["files"]!.AsArray().Select(f => f!);

    public static double[] Flat(JsonNode? rows) => [.. rows!.AsArray().SelectMany(r => r!.AsArray().Select(v => v!.GetValue<double>()))];

    private static string Find()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "models", "speech-codeswitch");
            if (File.Exists(Path.Combine(p, ManifestReader.FileName))) return p;
        }
        throw new InvalidOperationException("models/speech-codeswitch not found above " + AppContext.BaseDirectory);
    }
}
