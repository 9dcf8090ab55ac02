using System.Text.Json.Nodes;
using MoeModal.Core.Execution;
using MoeModal.Core.Packages;
using MoeModal.Testing;

namespace MoeModal.Core.Tests.Packages;

public class ManifestTests
{
    private static ModelPackageException LoadFails(TestPackage p)
    {
        p.WriteManifest();
        return Assert.Throws<ModelPackageException>(() => MoeModel.Load(p.Dir).Dispose());
    }

    [Fact]
    public void Load_ValidTestPackage_Succeeds()
    {
        using var p = new TestPackage();
        using var model = MoeModel.Load(p.Dir);
        Assert.Equal("test-linear-moe", model.Manifest.Name);
        Assert.Equal("moe", Assert.Single(model.MoeSteps).Name);
    }

    [Fact]
    public void Load_MissingFolderOrManifest_SaysSo()
    {
        var ex = Assert.Throws<ModelPackageException>(() => MoeModel.Load("/nonexistent/package"));
        Assert.Contains("does not exist", ex.Message);
        using var p = new TestPackage();
        File.Delete(p.PathOf("moemodal.json"));
        ex = Assert.Throws<ModelPackageException>(() => MoeModel.Load(p.Dir));
        Assert.Contains("moemodal.json", ex.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("{")]
    [InlineData("[1,2,3]")]
    [InlineData("{\"format\": 3}")]
    [InlineData("{\"format\": \"moemodal-package/9\"}")]
    public void Parse_Garbage_ClearError(string json)
    {
        var ex = Assert.Throws<ModelPackageException>(() => ManifestReader.Parse(json, "x/moemodal.json"));
        Assert.StartsWith("x/moemodal.json:", ex.Message);
    }

    [Fact]
    public void Parse_DeeplyNestedJson_Refused()
    {
        string json = new string('[', 10000) + new string(']', 10000);
        Assert.Throws<ModelPackageException>(() => ManifestReader.Parse(json));
    }

    [Fact]
    public void Load_UnknownTopLevelKey_NamesIt()
    {
        using var p = new TestPackage();
        p.Manifest["colour"] = "blue";
        Assert.Contains("unknown key 'colour'", LoadFails(p).Message);
    }

    [Fact]
    public void Load_UnknownRoutingOption_NamesIt()
    {
        using var p = new TestPackage();
        p.Routing["capacity"] = 1.0;
        var ex = LoadFails(p);
        Assert.Contains("unknown key 'capacity'", ex.Message);
        Assert.Contains("routing", ex.Message);
    }

    [Theory]
    [InlineData("policy", "\"switch\"", "not a routing policy")]
    [InlineData("group", "\"galaxy\"", "not a routing group")]
    [InlineData("k", "7", "routing.k = 7")]
    [InlineData("k", "2.5", "must be an integer")]
    [InlineData("capacity_factor", "\"big\"", "finite number")]
    [InlineData("batch_prioritized", "1", "true or false")]
    public void Load_BadRouting_ClearError(string key, string value, string expected)
    {
        using var p = new TestPackage();
        p.Routing[key] = JsonNode.Parse(value);
        var ex = LoadFails(p);
        Assert.Contains(expected, ex.Message);
        Assert.Contains("moe", ex.Message);
    }

    [Fact]
    public void Load_UnknownStepKind_And_Provider_Named()
    {
        using var p = new TestPackage();
        p.Manifest["steps"]![0]!["kind"] = "tflite";
        Assert.Contains("'tflite' is not a step kind", LoadFails(p).Message);
        p.Manifest["steps"]![0]!["kind"] = "onnx";
        p.Manifest["execution_provider"] = "tpu";
        Assert.Contains("'tpu' is not an execution provider", LoadFails(p).Message);
    }

    [Fact]
    public void Load_DuplicateStepNames_Refused()
    {
        using var p = new TestPackage();
        p.Manifest["steps"]![2]!["name"] = "pre";
        Assert.Contains("two steps are named 'pre'", LoadFails(p).Message);
    }

    [Theory]
    [InlineData("../outside.onnx", "stay inside")]
    [InlineData("/etc/passwd", "must be relative")]
    [InlineData("moe/../pre.onnx", "stay inside")]
    [InlineData("missing.onnx", "does not exist")]
    [InlineData("", "empty")]
    public void Load_BadPaths_Refused(string path, string expected)
    {
        using var p = new TestPackage();
        p.Manifest["steps"]![0]!["path"] = path;
        var ex = LoadFails(p);
        Assert.Contains(expected, ex.Message);
        Assert.Contains("step 'pre'", ex.Message);
    }

    [Fact]
    public void Load_SymlinkLeavingPackage_Refused()
    {
        using var p = new TestPackage();
        string outside = Path.Combine(Path.GetTempPath(), "moemodal-outside-" + Guid.NewGuid().ToString("N") + ".onnx");
        File.Copy(p.PathOf("pre.onnx"), outside);
        try
        {
            File.CreateSymbolicLink(p.PathOf("link.onnx"), outside);
            p.Manifest["steps"]![0]!["path"] = "link.onnx";
            Assert.Contains("outside the package", LoadFails(p).Message);
        }
        finally
        {
            File.Delete(outside);
        }
    }

    [Fact]
    public void Load_ExternalDataOutsidePackage_Refused()
    {
        using var p = new TestPackage();
        OnnxBuilder.ScaleExpert(4, 1) // valid graph plus an initializer whose data is "../../../etc/passwd"
            .ExternalInitializer("stolen", "../../../etc/passwd", 4)
            .Save(p.PathOf("moe/expert1.onnx"));
        var ex = LoadFails(p);
        Assert.Contains("external tensor data", ex.Message);
        Assert.Contains("moe/expert1.onnx", ex.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(37)]
    public void Load_CorruptOnnx_NamesTheFile(int length)
    {
        using var p = new TestPackage();
        var junk = new byte[length];
        new Random(length).NextBytes(junk);
        File.WriteAllBytes(p.PathOf("moe/expert2.onnx"), junk);
        var ex = LoadFails(p);
        Assert.Contains("moe/expert2.onnx", ex.Message);
    }

    [Fact]
    public void Load_TruncatedOnnx_NamesTheFile()
    {
        using var p = new TestPackage();
        var bytes = File.ReadAllBytes(p.PathOf("moe/gate.onnx"));
        File.WriteAllBytes(p.PathOf("moe/gate.onnx"), bytes[..(bytes.Length / 2)]);
        Assert.Contains("moe/gate.onnx", LoadFails(p).Message);
    }

    [Fact]
    public void Load_UnboundSubgraphInput_NamesTensor()
    {
        using var p = new TestPackage();
        p.Manifest["steps"]![0]!["inputs"] = new JsonObject { ["input0"] = "x" };
        var ex = LoadFails(p);
        Assert.Contains("pre.onnx", ex.Message);
        Assert.Contains("'x'", ex.Message);
        Assert.Contains("not bound", ex.Message);
    }

    [Fact]
    public void Load_ReadsUnknownTensor_NamesIt()
    {
        using var p = new TestPackage();
        p.Manifest["steps"]![2]!["inputs"] = new JsonObject { ["x"] = "nowhere" };
        var ex = LoadFails(p);
        Assert.Contains("tensor 'nowhere'", ex.Message);
        Assert.Contains("step 'post'", ex.Message);
    }

    [Fact]
    public void Load_TensorWrittenTwice_Refused()
    {
        using var p = new TestPackage();
        p.MoeStep["output"] = "h";
        Assert.Contains("written twice", LoadFails(p).Message);
    }

    [Fact]
    public void Load_OutputNeverWritten_Refused()
    {
        using var p = new TestPackage();
        p.Manifest["outputs"]![0]!["name"] = "logits";
        Assert.Contains("tensor 'logits'", LoadFails(p).Message);
    }

    [Fact]
    public void Load_TypeMismatch_NamesStepAndTensor()
    {
        using var p = new TestPackage();
        p.Manifest["inputs"]![0]!["type"] = "int64";
        var ex = LoadFails(p);
        Assert.Contains("step 'pre'", ex.Message);
        Assert.Contains("tensor 'x'", ex.Message);
        Assert.Contains("float32", ex.Message);
    }

    [Fact]
    public void Load_RankMismatch_NamesStepAndTensor()
    {
        using var p = new TestPackage();
        p.Manifest["inputs"]![0]!["shape"] = new JsonArray(-1, 4);
        var ex = LoadFails(p);
        Assert.Contains("tensor 'x'", ex.Message);
        Assert.Contains("shape", ex.Message);
    }

    [Fact]
    public void Load_StaticDimensionMismatch_Refused()
    {
        using var p = new TestPackage(d: 4);
        p.Manifest["inputs"]![0]!["shape"] = new JsonArray(-1, -1, 5);
        Assert.Contains("[?,?,4]", LoadFails(p).Message);
    }

    [Fact]
    public void Load_GateExpertCountMismatch_Refused()
    {
        using var p = new TestPackage(experts: 4);
        ((JsonArray)p.MoeStep["experts"]!).RemoveAt(3);
        var ex = LoadFails(p);
        Assert.Contains("gate produces 4 logits", ex.Message);
        Assert.Contains("3 experts", ex.Message);
    }

    [Fact]
    public void Load_ExpertsDisagreeOnDimensions_Refused()
    {
        using var p = new TestPackage(d: 4);
        OnnxBuilder.Linear(4, 3, new float[12]).Save(p.PathOf("moe/expert2.onnx"));
        var ex = LoadFails(p);
        Assert.Contains("moe/expert2.onnx", ex.Message);
        Assert.Contains("agree on D and D_out", ex.Message);
    }

    [Fact]
    public void Load_ExpertWithTwoInputs_Refused()
    {
        using var p = new TestPackage(d: 4);
        new OnnxBuilder()
            .Input("a", OnnxBuilder.Float, "n", 4).Input("b", OnnxBuilder.Float, "n", 4)
            .Output("y", OnnxBuilder.Float, "n", 4).Node("Add", ["a", "b"], ["y"])
            .Save(p.PathOf("moe/expert0.onnx"));
        Assert.Contains("one input", LoadFails(p).Message);
    }

    [Fact]
    public void Load_ResidualShapeMismatch_Refused()
    {
        using var p = new TestPackage(d: 4);
        p.Manifest["inputs"] = new JsonArray(
            new JsonObject { ["name"] = "x", ["type"] = "float32", ["shape"] = new JsonArray(-1, -1, 4) },
            new JsonObject { ["name"] = "r", ["type"] = "float32", ["shape"] = new JsonArray(-1, 4) });
        p.MoeStep["residual"] = "r";
        Assert.Contains("residual", LoadFails(p).Message);
    }

    [Fact]
    public void Load_OversizedManifest_Refused()
    {
        using var p = new TestPackage();
        p.Manifest["metadata"] = new JsonObject { ["blob"] = new string('a', ManifestReader.MaxManifestBytes + 10) };
        Assert.Contains("limit", LoadFails(p).Message);
    }

    [Fact]
    public void Load_OnnxFileOverLimit_Refused()
    {
        using var p = new TestPackage();
        var ex = Assert.Throws<ModelPackageException>(() => MoeModel.Load(p.Dir, new LoadOptions { MaxOnnxBytes = 16 }));
        Assert.Contains("byte limit", ex.Message);
    }
}
