using MoeModal.Core.Execution;

namespace MoeModal.Plugins.Speech.Tests;

/// <summary>The committed held-out utterances (unseen voices, speeds, pitches, half unseen sentences) through the C# host.</summary>
[Trait("Modality", "speech")]
public class SpeechTestSetTests
{
    [Fact]
    public void CommittedTestSet_MixedErrorRate_UnderFivePercent()
    {
        using var model = MoeModel.Load(SpeechPackage.Directory);
        var processor = (SpeechProcessor)new SpeechModule().Bind(model.Info);
        var recognizer = new SpeechRecognizer(processor, inputs => model.Run(inputs));
        string tsv = Path.Combine(SpeechPackage.ReferenceDir, "test.tsv");
        long edits = 0, units = 0;
        int n = 0;
        foreach (var line in File.ReadLines(tsv).Where(l => l.Length > 0))
        {
            var parts = line.Split('\t');
            var reference = parts[1].Split(' ');
            var t = recognizer.Transcribe(File.ReadAllBytes(Path.Combine(SpeechPackage.ReferenceDir, parts[0])));
            edits += CtcDecoder.EditDistance(t.Units, reference);
            units += reference.Length;
            n++;
        }
        Assert.True(n >= 50, $"only {n} utterances");
        double mer = edits / (double)units;
        Assert.True(mer <= 0.05, $"MER {mer:F4} over {n} utterances");
    }
}
