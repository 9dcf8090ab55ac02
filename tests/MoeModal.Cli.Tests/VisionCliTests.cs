using System.Buffers.Binary;
using MoeModal.Plugins.Vision.Tests;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;

namespace MoeModal.Cli.Tests;

/// <summary>The real command line on the bundled V-MoE package and real image files.</summary>
[Trait("Modality", "vision")]
public class VisionCliTests
{
    private static string Samples { get; } = Testing.RepoPaths.Folder(Path.Combine("samples", "ImageClassification", "images"));

    [Fact]
    public void Classify_BundledSampleFolder_OneLinePerFileExit0()
    {
        var r = Cli.Run("classify", Samples);
        Assert.Equal(0, r.ExitCode);
        var lines = r.Lines;
        Assert.Equal(Directory.GetFiles(Samples).Length, lines.Count);
        foreach (var l in lines)
        {
            Assert.InRange(l["score"]!.GetValue<double>(), 0.0, 1.0);
            Assert.Equal(3, l["top"]!.AsArray().Count);
            Assert.Equal(l["label"]!.GetValue<string>(), l["top"]![0]!["label"]!.GetValue<string>());
        }
    }

    [Fact]
    public void Classify_MixOfGoodAndBroken_ErrorLinesExit1OthersClassified()
    {
        string dir = Cli.TempDir();
        using var img = ImageFixtures.Pattern(28, 28);
        var png = ImageFixtures.Encode(img, new PngEncoder());
        File.WriteAllBytes(Path.Combine(dir, "a_good.png"), png);
        File.WriteAllBytes(Path.Combine(dir, "b_empty.png"), []);
        File.WriteAllBytes(Path.Combine(dir, "c_truncated.png"), png[..(png.Length / 2)]);
        File.WriteAllText(Path.Combine(dir, "d_text.jpg"), "not an image");
        File.WriteAllBytes(Path.Combine(dir, "e_bomb.png"), ImageFixtures.PngDeclaring(20_000, 20_000));
        File.WriteAllBytes(Path.Combine(dir, "f_good.jpg"), ImageFixtures.Encode(img, new JpegEncoder()));
        var r = Cli.Run("classify", dir, Path.Combine(dir, "missing.png"));
        Assert.Equal(1, r.ExitCode);
        var lines = r.Lines;
        Assert.Equal(7, lines.Count);
        Assert.Equal(["a_good.png", "b_empty.png", "c_truncated.png", "d_text.jpg", "e_bomb.png", "f_good.jpg", "missing.png"],
            lines.Select(l => Path.GetFileName(l["file"]!.GetValue<string>())));
        Assert.True(lines[0].ContainsKey("label"));
        Assert.Contains("empty", lines[1]["error"]!.GetValue<string>());
        Assert.Contains("truncated", lines[2]["error"]!.GetValue<string>());
        Assert.Contains("not a supported image", lines[3]["error"]!.GetValue<string>());
        Assert.Contains("budget", lines[4]["error"]!.GetValue<string>());
        Assert.True(lines[5].ContainsKey("label"));
        Assert.Contains("no such file", lines[6]["error"]!.GetValue<string>());
    }

    [Fact]
    public void Classify_Explain_ListsTheExpertOfEveryPatch()
    {
        var file = Directory.GetFiles(Samples, "*.png").First();
        var r = Cli.Run("classify", "--explain", file);
        Assert.Equal(0, r.ExitCode);
        var experts = r.Lines.Single()["experts"]!.AsObject();
        Assert.Equal(["moe1", "moe3"], experts.Select(kv => kv.Key));
        Assert.All(experts, kv => Assert.Equal(49, kv.Value!.AsArray().Count));
        Assert.All(experts, kv => Assert.All(kv.Value!.AsArray(), e => Assert.InRange(e!.GetValue<int>(), 0, 7)));
    }

    [Fact]
    public void Classify_TopKAndCapacityOverrides_Apply()
    {
        var file = Directory.GetFiles(Samples, "*.png").First();
        var r = Cli.Run("classify", "--top-k", "1", "--capacity-factor", "0.5", "--explain", file);
        Assert.Equal(0, r.ExitCode);
        // Capacity ceil(1·49·0.5/8) = 4 per expert: at most 32 of 49 patches keep an expert.
        var kept = r.Lines.Single()["experts"]!["moe1"]!.AsArray().Count(e => e!.GetValue<int>() >= 0);
        Assert.InRange(kept, 1, 32);
        Assert.Equal(2, Cli.Run("classify", "--top-k", "9", file).ExitCode);
    }

    [Fact]
    public void Classify_CudaRequested_SaysWhatHappened()
    {
        var file = Directory.GetFiles(Samples, "*.png").First();
        var r = Cli.Run("classify", "--ep", "cuda", file);
        Assert.Equal(0, r.ExitCode);
        Assert.Single(r.Lines);
        if (!r.Stderr.Contains("falling back to CPU")) return; // a machine with a working GPU
        Assert.Contains("cuda", r.Stderr);
        var strict = Cli.Run("classify", "--ep", "cuda", "--ep-fallback", "fail", file);
        Assert.Equal(2, strict.ExitCode);
        Assert.Contains("cuda", strict.Stderr);
    }

    [Fact]
    public void Eval_IdxFolder_AccuracyAndExpertLoad()
    {
        // The recipe's 64 reference test images as a gzip-free IDX folder.
        var reference = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(VisionPackage.Directory, "reference", "reference.json")))!;
        var images = reference["images_u8"]!.AsArray().SelectMany(a => a!.AsArray().Select(v => (byte)v!.GetValue<int>())).ToArray();
        var labels = reference["labels"]!.AsArray().Select(v => (byte)v!.GetValue<int>()).ToArray();
        string dir = Cli.TempDir();
        WriteIdx(Path.Combine(dir, "t10k-images-idx3-ubyte"), 0x803, [labels.Length, 28, 28], images);
        WriteIdx(Path.Combine(dir, "t10k-labels-idx1-ubyte"), 0x801, [labels.Length], labels);
        var r = Cli.Run("eval", "--model", VisionPackage.Directory, "--data", dir);
        Assert.Equal(0, r.ExitCode);
        var last = r.Last;
        Assert.Equal(64, last["n"]!.GetValue<int>());
        Assert.InRange(last["accuracy"]!.GetValue<double>(), 0.8, 1.0);
        var load = last["expert_load"]!["moe1"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        Assert.Equal(8, load.Length);
        Assert.Equal(1.0, load.Sum(), 3);
        Assert.Equal(0.0, last["dropped_fraction"]!.GetValue<double>());
        Assert.Contains("eval: 64/64", r.Stderr);

        var capped = Cli.Run("eval", "--model", VisionPackage.Directory, "--data", dir, "--capacity-factor", "1.0").Last;
        Assert.True(capped["dropped_fraction"]!.GetValue<double>() > 0);
    }

    [Fact]
    public void Eval_BrokenIdx_Exit2WithReason()
    {
        string dir = Cli.TempDir();
        File.WriteAllBytes(Path.Combine(dir, "t10k-images-idx3-ubyte"), [0, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 28, 0, 0, 0, 28]);
        File.WriteAllBytes(Path.Combine(dir, "t10k-labels-idx1-ubyte"), [0, 0, 8, 1, 0, 0, 0, 1, 3]);
        var r = Cli.Run("eval", "--model", VisionPackage.Directory, "--data", dir);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("t10k-images-idx3-ubyte", r.Stderr);
    }

    [Fact]
    public void Inspect_Json_ListsSubgraphsProvidersAndParameters()
    {
        var r = Cli.Run("inspect", "--model", VisionPackage.Directory, "--json");
        Assert.Equal(0, r.ExitCode);
        var o = r.Last;
        Assert.Equal(21, o["subgraphs"]!.AsArray().Count);
        Assert.True(o["parameters"]!.GetValue<long>() > o["active_parameters_per_token"]!.GetValue<long>());
        Assert.Equal(2, o["moe_steps"]!.AsArray().Count);
        Assert.Contains("moe1/e7", Cli.Run("inspect", "--model", VisionPackage.Directory).Stdout);
    }

    [Fact]
    public void Bench_OneRun_ReportsBothSidesAndASpeedup()
    {
        var r = Cli.Run("bench", "--model", VisionPackage.Directory, "--batches", "1,8", "--seconds", "0.05");
        Assert.Equal(0, r.ExitCode);
        var o = r.Last;
        Assert.True(o["sparse_vs_dense_speedup"]!.GetValue<double>() > 0);
        Assert.True(o["batch_8"]!["moe_sparse_ms"]!.GetValue<double>() > 0);
        Assert.True(o["batch_1"]!["model_dense_ms"]!.GetValue<double>() > 0);
        // Routed and dense compute the same function.
        Assert.True(o["max_abs_diff"]!.GetValue<double>() < 1e-3);
    }

    private static void WriteIdx(string path, int magic, int[] dims, byte[] data)
    {
        using var f = File.Create(path);
        var header = new byte[4 + 4 * dims.Length];
        BinaryPrimitives.WriteInt32BigEndian(header, magic);
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * i), dims[i]);
        f.Write(header);
        f.Write(data);
    }
}
