using System.Text.Json.Nodes;
using MoeModal.Core.Packages;

namespace MoeModal.Plugins.Robotics.Tests;

/// <summary>The bundled robot package (models/robot-multitask) and its recipe references, found from the test's folder upwards.</summary>
public static class BundledPolicy
{
    public static string Directory { get; } = Find();

    public static JsonNode ReadReference(string file) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Directory, "reference", file)))!;

    public static double[] Doubles(JsonNode? array) => [.. array!.AsArray().Select(v => v!.GetValue<double>())];

    private static string Find()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "models", "robot-multitask");
            if (File.Exists(Path.Combine(p, ManifestReader.FileName))) return p;
        }
        throw new InvalidOperationException("models/robot-multitask not found above " + AppContext.BaseDirectory);
    }
}
