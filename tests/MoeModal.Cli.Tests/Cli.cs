using System.Text.Json.Nodes;

namespace MoeModal.Cli.Tests;

/// <summary>Runs the real command line in-process and captures what it prints.</summary>
public static class Cli
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public List<JsonObject> Lines => [.. Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject())];
        public JsonObject Last => JsonNode.Parse(Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1])!.AsObject();
    }

    public static Result Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = CliApp.Run(args, o, e);
        return new Result(code, o.ToString(), e.ToString());
    }

    public static string TempDir()
    {
        string d = Path.Combine(Path.GetTempPath(), "moemodal-cli-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(d);
        return d;
    }
}
