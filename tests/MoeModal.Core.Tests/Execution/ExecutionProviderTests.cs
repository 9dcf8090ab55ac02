using MoeModal.Abstractions;
using MoeModal.Core.Execution;
using MoeModal.Core.Packages;
using MoeModal.Testing;

namespace MoeModal.Core.Tests.Execution;

/// <summary>
/// CUDA requests are never silent. On machines without a usable GPU these tests check the
/// fallback and the refusal; the test marked RequiresGpu checks that CUDA really runs.
/// </summary>
public class ExecutionProviderTests
{
    private static bool CudaUsable()
    {
        using var p = new TestPackage();
        using var m = MoeModel.Load(p.Dir, new LoadOptions { ExecutionProvider = ExecutionProviderKind.Cuda });
        return m.Report.CudaFailure is null;
    }

    [Fact]
    public void Load_CudaRequested_EitherRunsOnCudaOrFallsBackAndSaysSo()
    {
        using var p = new TestPackage();
        var log = new List<string>();
        using var model = MoeModel.Load(p.Dir, new LoadOptions { ExecutionProvider = ExecutionProviderKind.Cuda, Log = log.Add });
        Assert.All(model.Report.Subgraphs, s => Assert.Equal(ExecutionProviderKind.Cuda, s.Requested));
        if (model.Report.CudaFailure is null)
        {
            Assert.All(model.Report.Subgraphs, s => Assert.Equal(ExecutionProviderKind.Cuda, s.Actual));
            Assert.Empty(log);
        }
        else
        {
            Assert.All(model.Report.Subgraphs, s =>
            {
                Assert.Equal(ExecutionProviderKind.Cpu, s.Actual);
                Assert.False(string.IsNullOrWhiteSpace(s.FallbackReason));
            });
            var line = Assert.Single(log);
            Assert.Contains("cuda", line);
            Assert.Contains("falling back to CPU", line);
        }
        // Either way it serves.
        var x = Tensor.FromFloats(new float[2 * 3 * 4], 2, 3, 4);
        Assert.Equal(24, model.Run(new Dictionary<string, Tensor> { ["x"] = x }).Tensors["out"].Length);
    }

    [Fact]
    public void Load_CudaRequestedWithoutFallback_FailsWithReasonWhenCudaIsUnusable()
    {
        if (CudaUsable()) return; // covered by the RequiresGpu test
        using var p = new TestPackage();
        var ex = Assert.Throws<ModelPackageException>(() =>
            MoeModel.Load(p.Dir, new LoadOptions { ExecutionProvider = ExecutionProviderKind.Cuda, Fallback = ProviderFallback.Fail }));
        Assert.Contains("cuda", ex.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("pre.onnx", ex.Message);
    }

    [Fact]
    public void Load_PerExpertCuda_OnlyThatExpertFallsBack()
    {
        using var p = new TestPackage(experts: 3);
        p.MoeStep["experts"]![1]!["execution_provider"] = "cuda";
        p.WriteManifest();
        using var model = MoeModel.Load(p.Dir);
        var e1 = model.Report.Subgraphs.Single(s => s.Role == "moe/e1");
        Assert.Equal(ExecutionProviderKind.Cuda, e1.Requested);
        Assert.All(model.Report.Subgraphs.Where(s => s.Role != "moe/e1"), s => Assert.Equal(ExecutionProviderKind.Cpu, s.Requested));
        if (model.Report.CudaFailure is not null) Assert.Single(model.Report.Fallbacks);
    }

    [Fact]
    [Trait("RequiresGpu", "true")]
    public void Load_Cuda_RunsOnGpuAndMatchesCpu()
    {
        using var p = new TestPackage(d: 8, experts: 4);
        using var gpu = MoeModel.Load(p.Dir, new LoadOptions { ExecutionProvider = ExecutionProviderKind.Cuda, Fallback = ProviderFallback.Fail });
        using var cpu = MoeModel.Load(p.Dir);
        var rng = new Random(1);
        var x = Tensor.FromFloats(Enumerable.Range(0, 2 * 5 * 8).Select(_ => (float)rng.NextDouble()).ToArray(), 2, 5, 8);
        var a = gpu.Run(new Dictionary<string, Tensor> { ["x"] = x }).Tensors["out"].Floats!;
        var b = cpu.Run(new Dictionary<string, Tensor> { ["x"] = x }).Tensors["out"].Floats!;
        for (int i = 0; i < a.Length; i++) Assert.Equal(b[i], a[i], 1e-4);
    }
}
