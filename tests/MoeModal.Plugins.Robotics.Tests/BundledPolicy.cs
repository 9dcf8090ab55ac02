using System.Text.Json.Nodes;

namespace MoeModal.Plugins.Robotics.Tests;

/// <summary>The bundled robot package (models/robot-multitask) and its recipe references, found from the test's folder upwards.</summary>
public static class BundledPolicy
{
    public static string Directory { get; } = Testing.RepoPaths.Package("robot-multitask");

    public static JsonNode ReadReference(string file) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Directory, "reference", file)))!;

    public static double[] Doubles(JsonNode? array) => [.. array!.AsArray().Select(v => v!.GetValue<double>())];
}
