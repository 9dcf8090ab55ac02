using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using MoeModal.Core.Packages;

namespace MoeModal.Core.Execution;

/// <summary>
/// Creates <see cref="Subgraph"/> sessions with the requested provider. CUDA is checked by actually
/// creating the session (ONNX Runtime lists compiled-in providers as available even without a GPU);
/// a failure falls back to CPU or fails the load, as <see cref="LoadOptions.Fallback"/> says — never
/// silently.
/// </summary>
internal sealed class SessionFactory(PackagePaths paths, LoadOptions options)
{
    private string? _cudaFailure;

    /// <summary>Why CUDA could not be used in this load, or null when it was not asked for or worked.</summary>
    public string? CudaFailure => _cudaFailure;

    public Subgraph Create(string relativePath, string role, string? step, ExecutionProviderKind requested, int threads)
    {
        string full = paths.Resolve(relativePath, step, role);
        return CreateFromFile(full, relativePath, role, step, requested, threads);
    }

    public Subgraph CreateFromFile(string full, string shownPath, string role, string? step, ExecutionProviderKind requested, int threads)
    {
        var sw = Stopwatch.StartNew();
        requested = options.ExecutionProvider ?? requested;
        long parameters = Inspect(full, shownPath, step);

        string? fallback = null;
        if (requested == ExecutionProviderKind.Cuda)
        {
            if (_cudaFailure is null)
            {
                try
                {
                    var cuda = Open(full, shownPath, step, ExecutionProviderKind.Cuda, threads);
                    return new Subgraph(role, shownPath, cuda, requested, ExecutionProviderKind.Cuda, null, parameters, sw.Elapsed);
                }
                catch (Exception ex) when (ex is OnnxRuntimeException or ModelPackageException or EntryPointNotFoundException or DllNotFoundException)
                {
                    _cudaFailure = DescribeCudaFailure(ex);
                    string msg = $"cuda: cannot run '{shownPath}' on CUDA (device {options.CudaDeviceId}): {_cudaFailure}";
                    if (options.Fallback == ProviderFallback.Fail)
                        throw ModelPackageException.At(shownPath, step, null, msg + " (use --ep cpu, or --ep-fallback cpu to run these subgraphs on the CPU)", ex);
                    options.Log?.Invoke($"warning: {msg}; falling back to CPU for this package's CUDA subgraphs");
                }
            }
            else if (options.Fallback == ProviderFallback.Fail)
            {
                throw ModelPackageException.At(shownPath, step, null, $"cuda unavailable: {_cudaFailure}");
            }
            fallback = _cudaFailure;
        }

        var cpu = Open(full, shownPath, step, ExecutionProviderKind.Cpu, threads);
        return new Subgraph(role, shownPath, cpu, requested, ExecutionProviderKind.Cpu, fallback, parameters, sw.Elapsed);
    }

    private static string DescribeCudaFailure(Exception ex)
    {
        string reason = FirstLine(ex.InnerException?.Message ?? ex.Message);
        string? library = OrtEnvironment.CudaLibraryProblem();
        return library is null
            ? reason
            : $"{reason}: {FirstLine(library)} (ONNX Runtime 1.32's CUDA provider needs an NVIDIA GPU with CUDA 13 and cuDNN 9)";
    }

    private long Inspect(string full, string shownPath, string? step)
    {
        var info = new FileInfo(full);
        if (info.Length > options.MaxOnnxBytes)
            throw ModelPackageException.At(shownPath, step, null, $"ONNX file is {info.Length} bytes, over the {options.MaxOnnxBytes}-byte limit");
        if (info.Length == 0) throw ModelPackageException.At(shownPath, step, null, "ONNX file is empty");
        OnnxModelInfo model;
        try
        {
            model = OnnxModelInfo.Read(File.ReadAllBytes(full));
        }
        catch (Exception ex) when (ex is FormatException or OverflowException)
        {
            throw ModelPackageException.At(shownPath, step, null, $"not a valid ONNX file ({ex.Message})", ex);
        }
        foreach (var location in model.ExternalDataLocations)
            if (!paths.StaysInside(full, location))
                throw ModelPackageException.At(shownPath, step, null, $"external tensor data '{location}' lies outside the package folder");
        return model.Parameters;
    }

    private InferenceSession Open(string full, string shownPath, string? step, ExecutionProviderKind ep, int threads)
    {
        OrtEnvironment.EnsureCreated();
        var so = new SessionOptions();
        try
        {
            so.GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL;
            so.ExecutionMode = ExecutionMode.ORT_SEQUENTIAL;
            so.IntraOpNumThreads = Math.Max(1, threads);
            so.InterOpNumThreads = 1;
            so.LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
            so.AddSessionConfigEntry("session.intra_op.allow_spinning", options.AllowSpinning ? "1" : "0");
            if (ep == ExecutionProviderKind.Cuda) so.AppendExecutionProvider_CUDA(options.CudaDeviceId);
            return new InferenceSession(full, so);
        }
        catch (OnnxRuntimeException ex) when (ep == ExecutionProviderKind.Cpu)
        {
            throw ModelPackageException.At(shownPath, step, null, $"ONNX Runtime cannot load it: {FirstLine(ex.Message)}", ex);
        }
        finally
        {
            // The session keeps what it needs; the options object is ours to release.
            so.Dispose();
        }
    }

    private static string FirstLine(string s)
    {
        int i = s.IndexOf('\n');
        return (i < 0 ? s : s[..i]).Trim();
    }
}
