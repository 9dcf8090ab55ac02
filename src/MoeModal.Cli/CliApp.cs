using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeModal.Abstractions;
using MoeModal.Core;
using MoeModal.Cli.Commands;

namespace MoeModal.Cli;

/// <summary>The moemodal command line. Exit codes: 0 all inputs succeeded, 1 some failed, 2 usage or model error.</summary>
public static class CliApp
{
    public const int Ok = 0, SomeFailed = 1, Fatal = 2;

    public static readonly JsonSerializerOptions JsonLine = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        WriteIndented = false,
    };

    private const string Usage = """
        moemodal — Mixture-of-Experts models from ONNX subgraphs, one shared router

        usage: moemodal COMMAND [options]

          classify [options] PATH...     classify image files or folders (one JSON line per file)
          transcribe [options] PATH...   transcribe Mandarin/English WAV files (one JSON line per file)
          eval --model DIR --data DIR    accuracy and expert load on a Fashion-MNIST IDX folder
          eval [--model DIR] --data F.tsv  mixed error rate and real-time factor on a speech test set
          inspect [--model DIR]          steps, experts, providers, parameters, load time
          bench [--model DIR]            routed MoE layers vs the dense all-experts graph
          serve-robot --listen HOST:PORT serve the robot policy over TCP (docs/robot-protocol.md)

        'moemodal COMMAND --help' shows a command's options.
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            stdout.WriteLine(Usage);
            return args.Length == 0 ? Fatal : Ok;
        }
        var rest = args[1..];
        try
        {
            return args[0] switch
            {
                "classify" => ClassifyCommand.Run(rest, stdout, stderr),
                "eval" => EvalCommand.Run(rest, stdout, stderr),
                "inspect" => InspectCommand.Run(rest, stdout, stderr),
                "bench" => BenchCommand.Run(rest, stdout, stderr),
                "serve-robot" => ServeRobotCommand.Run(rest, stdout, stderr),
                "transcribe" => TranscribeCommand.Run(rest, stdout, stderr),
                _ => throw new UsageException($"unknown command '{args[0]}' (classify, transcribe, eval, inspect, bench, serve-robot)"),
            };
        }
        catch (UsageException ex)
        {
            stderr.WriteLine($"moemodal: {ex.Message}");
            stderr.WriteLine("run 'moemodal --help' for usage");
            return Fatal;
        }
        catch (Exception ex) when (ex is ModelPackageException or PluginException or InputException or InferenceException or RoutingException or IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"moemodal: error: {ex.Message}");
            return Fatal;
        }
    }

    public static string Line(JsonNode node) => node.ToJsonString(JsonLine);

    /// <summary>Prints the help text when --help is among the arguments.</summary>
    public static bool WantsHelp(string[] args, string help, TextWriter stdout)
    {
        if (!args.Contains("--help") && !args.Contains("-h")) return false;
        stdout.WriteLine(help);
        return true;
    }
}
