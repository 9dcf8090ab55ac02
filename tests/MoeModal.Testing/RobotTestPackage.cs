using System.Text.Json.Nodes;

namespace MoeModal.Testing;

/// <summary>
/// A small robot policy package written by code (real ONNX, real router): inputs task int64 [B]
/// and obs float32 [B, 10]; one token per robot made of obs[0..4); a moe step with 4 scale
/// experts (top-2); action = −(token after the moe)[0..2). Two sub-tasks: cartpole/standard
/// (obs 4, act 1) and reacher/standard (obs 10, act 2).
/// </summary>
public sealed class RobotTestPackage : IDisposable
{
    public RobotTestPackage()
    {
        Dir = Path.Combine(Path.GetTempPath(), "moemodal-robot-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Dir);
        new OnnxBuilder()
            .Input("task", OnnxBuilder.Int64, "b").Input("obs", OnnxBuilder.Float, "b", 10)
            .Output("x", OnnxBuilder.Float, "b", 1, 4)
            .InitializerInt64("starts", [0], 1).InitializerInt64("ends", [4], 1).InitializerInt64("axes1", [1], 1)
            .Initializer("zero", [0f])
            .Node("Cast", ["task"], ["tf"], ("to", 1))
            .Node("Mul", ["tf", "zero"], ["tz"])
            .Node("Unsqueeze", ["tz", "axes1"], ["tz2"])
            .Node("Add", ["obs", "tz2"], ["obs2"])
            .Node("Slice", ["obs2", "starts", "ends", "axes1"], ["s"])
            .Node("Unsqueeze", ["s", "axes1"], ["x"])
            .Save(Path.Combine(Dir, "embed.onnx"));
        OnnxBuilder.Linear(4, 4, TestPackage.RandomGate(4, 4, 99), output: "logits").Save(Path.Combine(Dir, "moe/gate.onnx"));
        var experts = new JsonArray();
        for (int e = 0; e < 4; e++)
        {
            OnnxBuilder.ScaleExpert(4, 0.1f * (e + 1)).Save(Path.Combine(Dir, $"moe/expert{e}.onnx"));
            experts.Add(new JsonObject { ["path"] = $"moe/expert{e}.onnx" });
        }
        new OnnxBuilder()
            .Input("x", OnnxBuilder.Float, "b", 1, 4).Output("action", OnnxBuilder.Float, "b", 2)
            .InitializerInt64("starts", [0, 0], 2).InitializerInt64("ends", [1, 2], 2).InitializerInt64("axes", [1, 2], 2)
            .InitializerInt64("shape", [-1, 2], 2).Initializer("neg", [-1f])
            .Node("Slice", ["x", "starts", "ends", "axes"], ["s"])
            .Node("Reshape", ["s", "shape"], ["r"])
            .Node("Mul", ["r", "neg"], ["action"])
            .Save(Path.Combine(Dir, "head.onnx"));

        static JsonObject Task(int id, string task, int obs, int act, float limit) => new()
        {
            ["id"] = id, ["task"] = task, ["variant"] = "standard", ["obs_dim"] = obs, ["act_dim"] = act,
            ["obs_layout"] = new JsonArray([.. Enumerable.Range(0, obs).Select(i => (JsonNode)$"o{i}")]),
            ["act_layout"] = new JsonArray([.. Enumerable.Range(0, act).Select(i => (JsonNode)$"a{i}")]),
            ["act_low"] = new JsonArray([.. Enumerable.Repeat(-limit, act).Select(v => (JsonNode)v)]),
            ["act_high"] = new JsonArray([.. Enumerable.Repeat(limit, act).Select(v => (JsonNode)v)]),
        };

        var manifest = new JsonObject
        {
            ["format"] = "moemodal-package/1",
            ["name"] = "test-robot",
            ["modality"] = "robot",
            ["inputs"] = new JsonArray(
                new JsonObject { ["name"] = "task", ["type"] = "int64", ["shape"] = new JsonArray(-1) },
                new JsonObject { ["name"] = "obs", ["type"] = "float32", ["shape"] = new JsonArray(-1, 10) }),
            ["outputs"] = new JsonArray(new JsonObject { ["name"] = "action", ["type"] = "float32", ["shape"] = new JsonArray(-1, 2) }),
            ["steps"] = new JsonArray(
                new JsonObject { ["kind"] = "onnx", ["name"] = "embed", ["path"] = "embed.onnx",
                    ["inputs"] = new JsonObject { ["task"] = "task", ["obs"] = "obs" }, ["outputs"] = new JsonObject { ["x"] = "x" } },
                new JsonObject { ["kind"] = "moe", ["name"] = "moe", ["input"] = "x", ["residual"] = "x", ["output"] = "y",
                    ["gate"] = new JsonObject { ["path"] = "moe/gate.onnx" }, ["experts"] = experts,
                    ["routing"] = new JsonObject { ["policy"] = "topk_topk_first", ["k"] = 2 } },
                new JsonObject { ["kind"] = "onnx", ["name"] = "head", ["path"] = "head.onnx",
                    ["inputs"] = new JsonObject { ["x"] = "y" }, ["outputs"] = new JsonObject { ["action"] = "action" } }),
            ["metadata"] = new JsonObject
            {
                ["dt"] = 0.01,
                ["tasks"] = new JsonArray(Task(0, "cartpole", 4, 1, 10f), Task(7, "reacher", 10, 2, 2f)),
            },
        };
        File.WriteAllText(Path.Combine(Dir, "moemodal.json"), manifest.ToJsonString());
    }

    public string Dir { get; }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
