using MoeModal.Abstractions;
using MoeModal.Core.Execution;
using MoeModal.Core.Hosting;
using MoeModal.Plugins.Speech;

namespace MoeModal.Cli.Speech;

/// <summary>One file's outcome: a transcription or the error that stopped it.</summary>
public sealed record SpeechResult(string Name, Transcription? Result, string? Error);

/// <summary>Transcribes files in parallel (one utterance per model call, single-threaded each), results in input order.</summary>
public static class SpeechFiles
{
    public static SpeechRecognizer Recognizer(MoeModel model, IModalityProcessor processor)
    {
        var request = new RunRequest { TraceTokens = true };
        return new SpeechRecognizer((SpeechProcessor)processor, inputs => model.Run(inputs, request));
    }

    public static IEnumerable<SpeechResult> Transcribe(SpeechRecognizer recognizer, IEnumerable<PipelineItem> items, int parallel)
    {
        foreach (var chunk in items.Chunk(Math.Max(1, parallel) * 4))
        {
            var results = new SpeechResult[chunk.Length];
            Parallel.For(0, chunk.Length, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallel) }, i =>
            {
                try
                {
                    results[i] = new SpeechResult(chunk[i].Name, recognizer.Transcribe(chunk[i].Read().Span), null);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    results[i] = new SpeechResult(chunk[i].Name, null, BatchPipeline.Describe(ex));
                }
            });
            foreach (var r in results) yield return r;
        }
    }
}
