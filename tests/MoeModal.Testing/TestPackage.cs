using System.Text.Json.Nodes;

namespace MoeModal.Testing;

/// <summary>
/// A small model package written to a temporary folder by code: input x [b, t, D] → Identity →
/// moe (gate = x·G, expert e = (e+1)·x, residual = its input) → Identity → out. Tests edit
/// <see cref="Manifest"/> or overwrite files to make it hostile, then call <see cref="WriteManifest"/>.
/// </summary>
public sealed class TestPackage : IDisposable
{
    public TestPackage(int d = 4, int experts = 4, float[]? gate = null, string policy = "topk_softmax_first",
        int k = 2, double capacityFactor = 0, bool bpr = true, string group = "item")
    {
        D = d;
        Experts = experts;
        Dir = Path.Combine(Path.GetTempPath(), "moemodal-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Dir);
        Gate = gate ?? RandomGate(d, experts, 1234);

        OnnxBuilder.Identity3(d).Save(Path.Combine(Dir, "pre.onnx"));
        OnnxBuilder.Identity3(d).Save(Path.Combine(Dir, "post.onnx"));
        OnnxBuilder.Linear(d, experts, Gate, output: "logits").Save(Path.Combine(Dir, "moe/gate.onnx"));
        var expertList = new JsonArray();
        for (int e = 0; e < experts; e++)
        {
            OnnxBuilder.ScaleExpert(d, e + 1).Save(Path.Combine(Dir, $"moe/expert{e}.onnx"));
            expertList.Add(new JsonObject { ["name"] = $"e{e}", ["path"] = $"moe/expert{e}.onnx" });
        }

        Manifest = new JsonObject
        {
            ["format"] = "moemodal-package/1",
            ["name"] = "test-linear-moe",
            ["modality"] = "test",
            ["execution_provider"] = "cpu",
            ["inputs"] = new JsonArray(new JsonObject { ["name"] = "x", ["type"] = "float32", ["shape"] = new JsonArray(-1, -1, d) }),
            ["outputs"] = new JsonArray(new JsonObject { ["name"] = "out", ["type"] = "float32", ["shape"] = new JsonArray(-1, -1, d) }),
            ["steps"] = new JsonArray(
                new JsonObject
                {
                    ["kind"] = "onnx", ["name"] = "pre", ["path"] = "pre.onnx",
                    ["inputs"] = new JsonObject { ["x"] = "x" }, ["outputs"] = new JsonObject { ["y"] = "h" },
                },
                new JsonObject
                {
                    ["kind"] = "moe", ["name"] = "moe", ["input"] = "h", ["residual"] = "h", ["output"] = "m",
                    ["gate"] = new JsonObject { ["path"] = "moe/gate.onnx" },
                    ["experts"] = expertList,
                    ["routing"] = new JsonObject
                    {
                        ["policy"] = policy, ["k"] = k, ["renormalize"] = false,
                        ["capacity_factor"] = capacityFactor, ["batch_prioritized"] = bpr, ["group"] = group,
                    },
                },
                new JsonObject
                {
                    ["kind"] = "onnx", ["name"] = "post", ["path"] = "post.onnx",
                    ["inputs"] = new JsonObject { ["x"] = "m" }, ["outputs"] = new JsonObject { ["y"] = "out" },
                }),
            ["metadata"] = new JsonObject { ["note"] = "made by MoeModal.Testing" },
        };
        WriteManifest();
    }

    public string Dir { get; }
    public int D { get; }
    public int Experts { get; }

    /// <summary>Gate weights [D, E] row-major.</summary>
    public float[] Gate { get; }

    public JsonObject Manifest { get; }

    public JsonObject MoeStep => Manifest["steps"]![1]!.AsObject();
    public JsonObject Routing => MoeStep["routing"]!.AsObject();

    public void WriteManifest() =>
        File.WriteAllText(Path.Combine(Dir, "moemodal.json"), Manifest.ToJsonString(new() { WriteIndented = true }));

    public string PathOf(string relative) => Path.Combine(Dir, relative);

    public static float[] RandomGate(int d, int e, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, d * e).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
