namespace MoeModal.Cli.Tests;

public class UsageTests
{
    [Fact]
    public void NoArguments_PrintsUsage_Exit2()
    {
        var r = Cli.Run();
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("usage: moemodal", r.Stdout);
    }

    [Fact]
    public void Help_Exit0()
    {
        Assert.Equal(0, Cli.Run("--help").ExitCode);
        foreach (var cmd in new[] { "classify", "eval", "inspect", "bench" })
        {
            var r = Cli.Run(cmd, "--help");
            Assert.Equal(0, r.ExitCode);
            Assert.Contains($"usage: moemodal {cmd}", r.Stdout);
        }
    }

    [Theory]
    [InlineData(new[] { "frobnicate" }, "unknown command 'frobnicate'")]
    [InlineData(new[] { "classify" }, "at least one file")]
    [InlineData(new[] { "classify", "--colour", "x.png" }, "unknown option '--colour'")]
    [InlineData(new[] { "classify", "--ep", "tpu", "x.png" }, "'tpu' is not an execution provider")]
    [InlineData(new[] { "classify", "--top-k", "zero", "x.png" }, "--top-k must be an integer")]
    [InlineData(new[] { "classify", "--capacity-factor", "NaN", "x.png" }, "--capacity-factor must be a number")]
    [InlineData(new[] { "classify", "--ep-fallback", "maybe", "x.png" }, "--ep-fallback must be cpu or fail")]
    [InlineData(new[] { "classify", "--model" }, "--model needs a value")]
    [InlineData(new[] { "eval", "--model", "m" }, "eval needs --data")]
    [InlineData(new[] { "bench", "--batches", "0" }, "--batches")]
    [InlineData(new[] { "inspect", "stray" }, "no positional arguments")]
    public void BadCommandLine_Exit2WithMessage(string[] args, string expected)
    {
        var r = Cli.Run(args);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void MissingModel_Exit2NamesTheFolder()
    {
        var r = Cli.Run("classify", "--model", "/no/such/model", "x.png");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("/no/such/model", r.Stderr);
    }

    [Fact]
    public void BrokenModel_Exit2NamesTheProblem()
    {
        using var p = new MoeModal.Testing.TestPackage();
        p.Routing["policy"] = "magic";
        p.WriteManifest();
        var r = Cli.Run("inspect", "--model", p.Dir);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("'magic' is not a routing policy", r.Stderr);
    }

    [Fact]
    public void WrongModality_Exit2()
    {
        using var p = new MoeModal.Testing.TestPackage();
        var r = Cli.Run("classify", "--model", p.Dir, "x.png");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("needs a vision package", r.Stderr);
    }
}
