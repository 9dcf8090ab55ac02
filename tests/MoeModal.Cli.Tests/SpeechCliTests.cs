namespace MoeModal.Cli.Tests;

/// <summary>The real command line on the bundled speech package and the sample's WAV files.</summary>
[Trait("Modality", "speech")]
public class SpeechCliTests
{
    private static string Audio { get; } = Testing.RepoPaths.Folder(Path.Combine("samples", "SpeechRecognition", "audio"));

    // The repository's package: the copy beside the CLI's binary has no reference folder.
    private static string TestTsv { get; } = Path.Combine(Testing.RepoPaths.Folder(Path.Combine("models", "speech-codeswitch", "reference")), "test.tsv");

    [Fact]
    public void Transcribe_SampleFolder_OneLinePerWavExit0_OtherFilesSkipped()
    {
        var r = Cli.Run("transcribe", Audio);
        Assert.Equal(0, r.ExitCode);
        var wavs = Directory.GetFiles(Audio, "*.wav");
        Assert.Equal(wavs.Length, r.Lines.Count);
        Assert.Contains("skipped", r.Stderr);          // transcripts.tsv
        Assert.Contains("transcripts.tsv", r.Stderr);
        var references = File.ReadLines(Path.Combine(Audio, "transcripts.tsv")).Select(l => l.Split('\t'))
            .ToDictionary(p => p[0], p => p[1].Split(' '));
        int edits = 0, units = 0;
        foreach (var l in r.Lines)
        {
            var got = l["units"]!.AsArray().Select(u => u!.GetValue<string>()).ToArray();
            var reference = references[Path.GetFileName(l["file"]!.GetValue<string>())];
            edits += Plugins.Speech.CtcDecoder.EditDistance(got, reference);
            units += reference.Length;
            Assert.True(l["rtf"]!.GetValue<double>() > 0);
            Assert.NotEmpty(l["languages"]!.AsArray());
            foreach (var span in l["languages"]!.AsArray())
                Assert.Contains(span!["lang"]!.GetValue<string>(), new[] { "zh", "en" });
        }
        // Eight held-out-voice files in eight storage formats; the model should get nearly all units.
        Assert.True(edits <= units / 10, $"{edits} unit errors in {units}");
    }

    [Fact]
    public void Transcribe_MixOfGoodAndBroken_ErrorLinesExit1OthersTranscribed()
    {
        string dir = Cli.TempDir();
        var good = File.ReadAllBytes(Directory.GetFiles(Audio, "*.wav").Order(StringComparer.Ordinal).First());
        File.WriteAllBytes(Path.Combine(dir, "a_good.wav"), good);
        File.WriteAllBytes(Path.Combine(dir, "b_empty.wav"), []);
        File.WriteAllBytes(Path.Combine(dir, "c_truncated.wav"), good[..30]);
        File.WriteAllText(Path.Combine(dir, "d_text.wav"), "not audio at all, just text");
        var adpcm = (byte[])good.Clone();
        adpcm[20] = 2;   // format tag 2 = MS ADPCM
        File.WriteAllBytes(Path.Combine(dir, "e_adpcm.wav"), adpcm);
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "skipped: not a .wav");
        var r = Cli.Run("transcribe", dir, Path.Combine(dir, "missing.wav"));
        Assert.Equal(1, r.ExitCode);
        var lines = r.Lines;
        Assert.Equal(["a_good.wav", "b_empty.wav", "c_truncated.wav", "d_text.wav", "e_adpcm.wav", "missing.wav"],
            lines.Select(l => Path.GetFileName(l["file"]!.GetValue<string>())));
        Assert.True(lines[0].ContainsKey("text"));
        Assert.Contains("empty", lines[1]["error"]!.GetValue<string>());
        Assert.Contains("fmt", lines[2]["error"]!.GetValue<string>());
        Assert.Contains("not a WAV", lines[3]["error"]!.GetValue<string>());
        Assert.Contains("not supported", lines[4]["error"]!.GetValue<string>());
        Assert.Contains("no such file", lines[5]["error"]!.GetValue<string>());
    }

    [Fact]
    public void Eval_CommittedTestSet_MerAndRtf()
    {
        var r = Cli.Run("eval", "--data", TestTsv, "--limit", "20");
        Assert.Equal(0, r.ExitCode);
        var last = r.Last;
        Assert.Equal(20, last["n"]!.GetValue<int>());
        Assert.Equal(0, last["failed"]!.GetValue<int>());
        Assert.InRange(last["mer"]!.GetValue<double>(), 0.0, 0.1);
        Assert.True(last["rtf"]!.GetValue<double>() > 0);
    }

    [Fact]
    public void Eval_MissingWav_CountsAsDeletionsExit1()
    {
        string dir = Cli.TempDir();
        string tsv = Path.Combine(dir, "t.tsv");
        var first = File.ReadLines(TestTsv).First().Split('\t');
        File.Copy(Path.Combine(Path.GetDirectoryName(TestTsv)!, first[0]), Path.Combine(dir, "ok.wav"));
        File.WriteAllLines(tsv, [$"ok.wav\t{first[1]}", "gone.wav\ta b c d"]);
        var r = Cli.Run("eval", "--data", tsv);
        Assert.Equal(1, r.ExitCode);
        var last = r.Last;
        Assert.Equal(1, last["failed"]!.GetValue<int>());
        Assert.True(last["mer"]!.GetValue<double>() >= 4.0 / (4 + first[1].Split(' ').Length) - 1e-9);
    }
}
