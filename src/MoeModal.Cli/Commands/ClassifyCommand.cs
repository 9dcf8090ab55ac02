using System.Text.Json.Nodes;
using MoeModal.Core.Execution;
using MoeModal.Core.Hosting;
using MoeModal.Plugins.Vision;

namespace MoeModal.Cli.Commands;

/// <summary>moemodal classify: one JSON line per image file, in input order.</summary>
public static class ClassifyCommand
{
    public const string DefaultPackage = "vision-fmnist";

    private static readonly string Help = $"""
        usage: moemodal classify [options] PATH...

        Classifies image files (PNG, JPEG, BMP, GIF, WebP); folders are searched recursively.
        Prints one JSON object per file: {"{"}"file", "label", "index", "score", "top"{"}"} or {"{"}"file", "error"{"}"}.
        Exit code: 0 all files classified, 1 some failed (the others are still classified), 2 usage or model error.

        {string.Format(ModelOptions.Help, DefaultPackage)}
          --batch N                images per model call (default 64)
          --explain                add, per MoE layer, the top-1 expert of every patch
          --max-pixels N           refuse images larger than N pixels (default {VisionOptions.Default.MaxPixels})
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (CliApp.WantsHelp(args, Help, stdout)) return CliApp.Ok;
        var a = Args.Parse(args, [.. ModelOptions.Values, "--batch", "--max-pixels"], ["--explain"]);
        if (a.Positionals.Count == 0) throw new UsageException("classify needs at least one file or folder");
        int batch = a.Int("--batch", 1, 4096) ?? 64;
        long maxPixels = a.Int("--max-pixels", 1) ?? VisionOptions.Default.MaxPixels;

        var options = VisionOptions.Default with { MaxPixels = maxPixels };
        var (model, processor, _) = ModelOptions.Load(a, DefaultPackage, "vision", stderr, [new VisionModule(options)]);
        using (model)
        {
            var pipeline = new BatchPipeline(model, processor, batch, new RunRequest { TraceTokens = a.Flag("--explain") });
            int failed = 0;
            foreach (var r in pipeline.Run(InputFiles.Enumerate(a.Positionals, options.MaxFileBytes)))
            {
                var line = new JsonObject { ["file"] = r.Name };
                if (r.Ok)
                {
                    foreach (var (k, v) in r.Result!) line[k] = v?.DeepClone();
                }
                else
                {
                    line["error"] = r.Error;
                    failed++;
                }
                stdout.WriteLine(CliApp.Line(line));
            }
            return failed == 0 ? CliApp.Ok : CliApp.SomeFailed;
        }
    }
}
