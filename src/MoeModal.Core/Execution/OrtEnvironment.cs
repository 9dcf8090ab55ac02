using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace MoeModal.Core.Execution;

/// <summary>
/// The process-wide ONNX Runtime environment. ONNX Runtime's own log is kept to fatal errors:
/// every failure reaches the caller as an exception with MoeModal's message instead.
/// </summary>
internal static class OrtEnvironment
{
    private static readonly Lazy<OrtEnv> Env = new(() =>
    {
        var options = new EnvironmentCreationOptions
        {
            logId = "moemodal",
            logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL,
        };
        return OrtEnv.CreateInstanceWithOptions(ref options);
    });

    public static void EnsureCreated() => _ = Env.Value;

    /// <summary>
    /// Why the CUDA provider library cannot load, in the dynamic loader's words (which shared
    /// library is missing), or null when it loads.
    /// </summary>
    public static string? CudaLibraryProblem()
    {
        string dir = AppContext.BaseDirectory;
        string[] candidates =
        [
            Path.Combine(dir, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", "libonnxruntime_providers_cuda.so"),
            Path.Combine(dir, "runtimes", "linux-x64", "native", "libonnxruntime_providers_cuda.so"),
            Path.Combine(dir, "libonnxruntime_providers_cuda.so"),
            Path.Combine(dir, "runtimes", "win-x64", "native", "onnxruntime_providers_cuda.dll"),
            Path.Combine(dir, "onnxruntime_providers_cuda.dll"),
        ];
        var path = candidates.FirstOrDefault(File.Exists);
        if (path is null) return "the CUDA provider library (onnxruntime_providers_cuda) is not beside the program";
        try
        {
            NativeLibrary.Free(NativeLibrary.Load(path));
            return null;
        }
        catch (DllNotFoundException ex)
        {
            // .NET puts the dynamic loader's own words (which dependency is missing, e.g.
            // libcublasLt.so.13) on the message's last line.
            var lines = ex.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            return lines.Length > 1 ? lines[^1] : ex.Message;
        }
        catch (BadImageFormatException ex)
        {
            return ex.Message;
        }
    }
}
