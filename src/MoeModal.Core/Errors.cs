namespace MoeModal.Core;

/// <summary>
/// A model package cannot be loaded or used. The message names the file, the step and the tensor
/// involved wherever they are known.
/// </summary>
public class ModelPackageException : Exception
{
    public ModelPackageException(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>Builds "file: step 'x': tensor 'y': what" with the parts that are known.</summary>
    public static ModelPackageException At(string? file, string? step, string? tensor, string what, Exception? inner = null)
    {
        var parts = new List<string>(4);
        if (!string.IsNullOrEmpty(file)) parts.Add(file);
        if (!string.IsNullOrEmpty(step)) parts.Add($"step '{step}'");
        if (!string.IsNullOrEmpty(tensor)) parts.Add($"tensor '{tensor}'");
        parts.Add(what);
        return new ModelPackageException(string.Join(": ", parts), inner);
    }
}

/// <summary>The router refused its input (for example a gate row holding NaN or infinity).</summary>
public class RoutingException(string message) : Exception(message);

/// <summary>A run failed inside ONNX Runtime or on tensors that do not fit the package.</summary>
public class InferenceException(string message, Exception? inner = null) : Exception(message, inner);
