using System.Text.Json.Nodes;

namespace MoeModal.Plugins.Speech.Tests;

/// <summary>The bundled speech package and its recipe references, found from the test's folder upwards.</summary>
public static class SpeechPackage
{
    public static string Directory { get; } = Testing.RepoPaths.Package("speech-codeswitch");

    public static string ReferenceDir => Path.Combine(Directory, "reference");

    public static JsonNode Reference { get; } = JsonNode.Parse(File.ReadAllText(Path.Combine(ReferenceDir, "reference.json")))!;

    public static IEnumerable<JsonNode> Files => Reference["files"]!.AsArray().Select(f => f!);

    public static double[] Flat(JsonNode? rows) => [.. rows!.AsArray().SelectMany(r => r!.AsArray().Select(v => v!.GetValue<double>()))];
}
