using System.Text.Json.Nodes;
using MoeModal.Abstractions;
using MoeModal.Core.Execution;
using MoeModal.Core.Hosting;
using MoeModal.Core.Plugins;
using MoeModal.Testing;

namespace MoeModal.Core.Tests.Plugins;

/// <summary>
/// The contract from outside: MoeModal.TestPlugin is a separate project that references only
/// MoeModal.Abstractions; these tests copy its build output to a plugin folder and load it.
/// </summary>
public class PluginLoaderTests
{
    private static string PluginBuild()
    {
        // tests/MoeModal.Core.Tests/bin/<config>/<tfm>/ → tests/MoeModal.TestPlugin/bin/<config>/<tfm>/
        var here = new DirectoryInfo(AppContext.BaseDirectory);
        string tfm = here.Name, config = here.Parent!.Name;
        string dir = Path.GetFullPath(Path.Combine(here.FullName, "..", "..", "..", "..", "MoeModal.TestPlugin", "bin", config, tfm));
        Assert.True(File.Exists(Path.Combine(dir, "MoeModal.TestPlugin.dll")), $"test plugin not built at {dir}");
        return dir;
    }

    private static string PluginFolder()
    {
        string folder = Path.Combine(Path.GetTempPath(), "moemodal-plugins-" + Guid.NewGuid().ToString("N")[..8]);
        string sub = Path.Combine(folder, "sum");
        Directory.CreateDirectory(sub);
        foreach (var f in Directory.GetFiles(PluginBuild()))
            File.Copy(f, Path.Combine(sub, Path.GetFileName(f)));
        return folder;
    }

    [Fact]
    public void FromFolder_FindsTheThirdPartyPluginWithSharedContractTypes()
    {
        var plugin = Assert.Single(PluginLoader.FromFolder(PluginFolder()));
        Assert.Equal("test", plugin.Modality);
        // The plugin's IModalityPlugin is the host's: no copy of the contract was loaded.
        Assert.Same(typeof(IModalityPlugin).Assembly, plugin.GetType().GetInterfaces().Single(i => i.Name == nameof(IModalityPlugin)).Assembly);
        Assert.NotEqual(System.Runtime.Loader.AssemblyLoadContext.Default, System.Runtime.Loader.AssemblyLoadContext.GetLoadContext(plugin.GetType().Assembly));
    }

    [Fact]
    public void ThirdPartyPlugin_PreprocessesRunsAndPostprocessesEndToEnd()
    {
        var plugin = PluginLoader.FromFolder(PluginFolder()).Single();
        using var p = new TestPackage(d: 4, experts: 4);
        using var model = MoeModel.Load(p.Dir);
        var processor = plugin.Bind(model.Info);
        var tokens = new float[] { 1, 2, 3, 4, 0.5f, 0.5f, 0.5f, 0.5f };
        var bytes = new byte[tokens.Length * 4];
        Buffer.BlockCopy(tokens, 0, bytes, 0, bytes.Length);
        var results = new BatchPipeline(model, processor).Run([
            new PipelineItem("good", () => bytes),
            new PipelineItem("bad", () => new byte[5]),
        ]).ToList();
        Assert.True(results[0].Ok);
        Assert.True(results[0].Result!["sum"]!.GetValue<double>() > tokens.Sum());
        Assert.Equal(4, results[0].Result!["routed_tokens"]!.GetValue<int>()); // 2 tokens × k=2
        Assert.False(results[1].Ok);
        Assert.Contains("not a whole number", results[1].Error);
    }

    [Fact]
    public void ThirdPartyPlugin_ReplacesAnExpertWithoutReexporting()
    {
        var plugin = PluginLoader.FromFolder(PluginFolder()).Single();
        // Route every token to expert 0 only (k = 1).
        var gate = new float[4 * 4];
        for (int i = 0; i < 4; i++) gate[i * 4] = 5f;
        using var p = new TestPackage(d: 4, experts: 4, gate: gate, k: 1);
        p.Manifest["metadata"] = new JsonObject { ["allow_test_plugin_experts"] = true };
        p.WriteManifest();
        using var plain = MoeModel.Load(p.Dir);
        var extra = plugin.ContributeExperts(plain.Info).ToList();
        Assert.Single(extra);
        using var patched = MoeModel.Load(p.Dir, new LoadOptions { ExtraExperts = extra });
        var x = Tensor.FromFloats([1, 1, 1, 1], 1, 1, 4);
        float before = plain.Run(new Dictionary<string, Tensor> { ["x"] = x }).Tensors["out"].Floats![0];
        float after = patched.Run(new Dictionary<string, Tensor> { ["x"] = x }).Tensors["out"].Floats![0];
        // out = x + w·scale·x with w = softmax weight of expert 0; scale 1 before, 10 after.
        float w = before - 1f;
        Assert.Equal(1f + 10f * w, after, 1e-4);
        Assert.Contains(patched.Report.Subgraphs, s => s.Role == "moe/e0" && s.Path.EndsWith("expert_x10.onnx"));
    }

    [Fact]
    public void CommittedPluginExpert_IsWhatTheOnnxBuilderWrites()
    {
        var committed = File.ReadAllBytes(Path.Combine(PluginBuild(), "expert_x10.onnx"));
        Assert.Equal(OnnxBuilder.ScaleExpert(4, 10).Build(), committed);
    }

    [Fact]
    public void FromFolder_MissingFolder_ClearError()
    {
        var ex = Assert.Throws<PluginException>(() => PluginLoader.FromFolder("/no/such/plugins"));
        Assert.Contains("does not exist", ex.Message);
    }

    [Fact]
    public void FromFolder_GarbageDll_IsSkippedAsNative()
    {
        string folder = Path.Combine(Path.GetTempPath(), "moemodal-plugins-junk-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "junk.dll"), [1, 2, 3, 4]);
        Assert.Empty(PluginLoader.FromFolder(folder));
    }
}
