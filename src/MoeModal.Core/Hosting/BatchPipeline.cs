using System.Text.Json.Nodes;
using MoeModal.Abstractions;
using MoeModal.Core.Execution;

namespace MoeModal.Core.Hosting;

/// <summary>One input to the pipeline: a name for the result line and a way to read its bytes.</summary>
public sealed record PipelineItem(string Name, Func<ReadOnlyMemory<byte>> Read);

/// <summary>One result: either a plugin result or the error that stopped this item.</summary>
public sealed record PipelineResult(string Name, JsonObject? Result, string? Error)
{
    public bool Ok => Error is null;
}

/// <summary>
/// Reads and preprocesses items in parallel, stacks items of equal shape into batches, runs the
/// model once per batch and postprocesses each item. A bad item gives an error result and never
/// stops the others; a batch whose run fails is retried item by item so the failure is pinned on
/// the item that caused it.
/// </summary>
public sealed class BatchPipeline(MoeModel model, IModalityProcessor processor, int batchSize = 64, RunRequest? request = null)
{
    private readonly RunRequest _request = request ?? RunRequest.Default;

    /// <summary>Called after each batch with (done, total-so-far) for progress reporting.</summary>
    public Action<int>? Progress { get; init; }

    public IEnumerable<PipelineResult> Run(IEnumerable<PipelineItem> items)
    {
        int done = 0;
        foreach (var chunk in items.Chunk(Math.Max(1, batchSize)))
        {
            var prepared = new (IReadOnlyDictionary<string, Tensor>? Tensors, string? Error)[chunk.Length];
            Parallel.For(0, chunk.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
            {
                try
                {
                    prepared[i] = (processor.Preprocess(new RawInput(chunk[i].Name, chunk[i].Read())), null);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    prepared[i] = (null, Describe(ex));
                }
            });

            var results = new PipelineResult?[chunk.Length];
            for (int i = 0; i < chunk.Length; i++)
                if (prepared[i].Error is { } err) results[i] = new PipelineResult(chunk[i].Name, null, err);

            // Batch items with identical input shapes, in order.
            var pending = Enumerable.Range(0, chunk.Length).Where(i => results[i] is null).ToList();
            foreach (var group in pending.GroupBy(i => ShapeKey(prepared[i].Tensors!)))
            {
                var idx = group.ToArray();
                try
                {
                    var output = model.Run(Stack(idx.Select(i => prepared[i].Tensors!).ToArray()), _request);
                    for (int j = 0; j < idx.Length; j++)
                        results[idx[j]] = Post(chunk[idx[j]].Name, output, j);
                }
                catch (Exception ex) when (idx.Length > 1 && ex is not OutOfMemoryException)
                {
                    foreach (int i in idx) results[i] = RunOne(chunk[i].Name, prepared[i].Tensors!);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    results[idx[0]] = new PipelineResult(chunk[idx[0]].Name, null, Describe(ex));
                }
            }
            done += chunk.Length;
            Progress?.Invoke(done);
            foreach (var r in results) yield return r!;
        }
    }

    private PipelineResult RunOne(string name, IReadOnlyDictionary<string, Tensor> tensors)
    {
        try
        {
            return Post(name, model.Run(tensors, _request), 0);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return new PipelineResult(name, null, Describe(ex));
        }
    }

    private PipelineResult Post(string name, InferenceOutput output, int item)
    {
        try
        {
            return new PipelineResult(name, processor.Postprocess(output, item), null);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return new PipelineResult(name, null, Describe(ex));
        }
    }

    /// <summary>A message for a result line: the project's own errors as they are, anything else with its type.</summary>
    public static string Describe(Exception ex) => ex switch
    {
        InputException or PluginException or RoutingException or InferenceException or ModelPackageException => ex.Message,
        FileNotFoundException or DirectoryNotFoundException => "no such file",
        UnauthorizedAccessException => "permission denied",
        IOException io => $"cannot read: {io.Message}",
        _ => $"unexpected {ex.GetType().Name}: {ex.Message}",
    };

    private static string ShapeKey(IReadOnlyDictionary<string, Tensor> t) =>
        string.Join(";", t.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + kv.Value.ShapeText));

    /// <summary>Concatenates items (each with batch axis 1) along axis 0.</summary>
    public static Dictionary<string, Tensor> Stack(IReadOnlyList<IReadOnlyDictionary<string, Tensor>> items)
    {
        if (items.Count == 1) return new Dictionary<string, Tensor>(items[0]);
        var result = new Dictionary<string, Tensor>();
        foreach (var name in items[0].Keys)
        {
            var first = items[0][name];
            var shape = first.Shape.ToArray();
            shape[0] = items.Sum(i => i[name].Shape[0]);
            if (first.Kind == TensorKind.Float32)
            {
                var data = new float[items.Sum(i => i[name].Length)];
                int pos = 0;
                foreach (var i in items) { i[name].Floats!.CopyTo(data, pos); pos += i[name].Length; }
                result[name] = Tensor.FromFloats(data, shape);
            }
            else
            {
                var data = new long[items.Sum(i => i[name].Length)];
                int pos = 0;
                foreach (var i in items) { i[name].Int64s!.CopyTo(data, pos); pos += i[name].Length; }
                result[name] = Tensor.FromInt64s(data, shape);
            }
        }
        return result;
    }
}
