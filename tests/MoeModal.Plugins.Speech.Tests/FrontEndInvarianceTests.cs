using MoeModal.Core.Execution;

namespace MoeModal.Plugins.Speech.Tests;

/// <summary>
/// Properties of the bundled package's front end (v2: relative floor, mean over active frames):
/// digital silence around the speech and the recording level do not change the features of the
/// speech frames, and so cannot change the transcript. Users' files differ in exactly these ways.
/// </summary>
[Trait("Modality", "speech")]
public sealed class FrontEndInvarianceTests : IDisposable
{
    private readonly MoeModel _model = MoeModel.Load(SpeechPackage.Directory, new LoadOptions { IntraOpThreads = 1 });
    private readonly SpeechProcessor _processor;

    public FrontEndInvarianceTests() => _processor = (SpeechProcessor)new SpeechModule().Bind(_model.Info);

    public void Dispose() => _model.Dispose();

    private float[] Speech16k()
    {
        var name = SpeechPackage.Files.First(f => f["sample_rate"]!.GetValue<int>() == 16000)["file"]!.GetValue<string>();
        return _processor.Load(File.ReadAllBytes(Path.Combine(SpeechPackage.ReferenceDir, name))).Samples;
    }

    private float[] Features(float[] samples) => _processor.Features(new Audio(samples, 16000, 1, "test")).Floats!;

    [Fact]
    public void PackageUsesTheLevelIndependentFrontEnd()
    {
        Assert.True(_processor.Metadata.Features.RelFloor > 0);
        Assert.True(double.IsFinite(_processor.Metadata.Features.ActiveDb));
    }

    [Fact]
    public void DigitalSilencePadding_LeavesSpeechFramesUnchanged()
    {
        var speech = Speech16k();
        const int pad = 8000;   // 0.5 s = 50 hops: the padded file's frames 50… are the original frames
        var padded = new float[speech.Length + 2 * pad];
        speech.CopyTo(padded, pad);
        var a = Features(speech);
        var b = Features(padded);
        int mels = _processor.Metadata.Features.NMels, frames = a.Length / mels;
        double max = 0;
        for (int i = 0; i < frames * mels; i++) max = Math.Max(max, Math.Abs(a[i] - b[50 * mels + i]));
        Assert.True(max <= 1e-4, $"padding with 0.5 s of digital silence moved the speech features by {max:E2}");
    }

    [Fact]
    public void RecordingLevel_DoesNotChangeTheFeatures()
    {
        var speech = Speech16k();
        float peak = speech.Max(Math.Abs);
        var quiet = speech.Select(v => v * (0.1f / peak)).ToArray();   // −20 dBFS peak
        var loud = speech.Select(v => v * (0.9f / peak)).ToArray();
        var a = Features(quiet);
        var b = Features(loud);
        double max = a.Select((v, i) => Math.Abs(v - b[i])).Max();
        Assert.True(max <= 1e-3, $"a 19 dB level change moved the features by {max:E2}");
    }
}
