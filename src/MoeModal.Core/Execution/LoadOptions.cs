using MoeModal.Abstractions;
using MoeModal.Core.Packages;

namespace MoeModal.Core.Execution;

/// <summary>What to do when a subgraph asks for CUDA and CUDA cannot be used.</summary>
public enum ProviderFallback
{
    /// <summary>Run that subgraph on CPU, say so through <see cref="LoadOptions.Log"/> and in the load report.</summary>
    Cpu,

    /// <summary>Fail the load with the reason CUDA could not be used.</summary>
    Fail,
}

/// <summary>Immutable options for loading a package. Defaults are safe for untrusted packages.</summary>
public sealed record LoadOptions
{
    /// <summary>Overrides every subgraph's provider (package, step and expert level).</summary>
    public ExecutionProviderKind? ExecutionProvider { get; init; }

    public ProviderFallback Fallback { get; init; } = ProviderFallback.Cpu;

    public int CudaDeviceId { get; init; }

    /// <summary>Overrides k of every top-k moe step.</summary>
    public int? TopK { get; init; }

    /// <summary>Overrides the capacity factor of every moe step (≤ 0: dropless).</summary>
    public double? CapacityFactor { get; init; }

    /// <summary>Threads ONNX Runtime uses inside one dense subgraph (trunks, gates, heads).</summary>
    public int IntraOpThreads { get; init; } = Environment.ProcessorCount;

    /// <summary>Experts of one moe step that run at once; each expert session then uses one thread.</summary>
    public int ExpertParallelism { get; init; } = Environment.ProcessorCount;

    /// <summary>
    /// Let ONNX Runtime's pool threads spin between runs. Off by default: a package has many small
    /// sessions on few cores, and threads spinning after one session's run steal the cores the
    /// next session needs (measured: batch-1 latency 30× worse with spinning on 2 cores).
    /// </summary>
    public bool AllowSpinning { get; init; }

    /// <summary>ONNX files larger than this are refused (stops a package from exhausting memory at load).</summary>
    public long MaxOnnxBytes { get; init; } = 1L << 30;

    /// <summary>Experts and gates that plugins add or replace.</summary>
    public IReadOnlyList<ExpertContribution> ExtraExperts { get; init; } = [];

    /// <summary>Receives one line per notable load event (CUDA fallbacks). The CLI prints these on stderr.</summary>
    public Action<string>? Log { get; init; }
}
