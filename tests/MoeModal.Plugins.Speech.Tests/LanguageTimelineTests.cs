namespace MoeModal.Plugins.Speech.Tests;

/// <summary>The run smoothing behind the language timeline.</summary>
[Trait("Modality", "speech")]
public class LanguageTimelineTests
{
    [Fact]
    public void ShortRuns_AbsorbedByTheLongerNeighbour()
    {
        //            zh zh zh zh en zh zh zh en en en en
        int[] label = [0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1];
        var runs = LanguageTimeline.Smooth(label);
        Assert.Equal([(0, 0, 8), (1, 8, 12)], runs);
    }

    [Fact]
    public void SilenceBetweenLanguages_KeptAsNeither()
    {
        int[] label = [0, 0, 0, -1, -1, -1, -1, 1, 1, 1];
        Assert.Equal([(0, 0, 3), (-1, 3, 7), (1, 7, 10)], LanguageTimeline.Smooth(label));
    }

    [Fact]
    public void InputShorterThanMinRun_NamesNoLanguage()
    {
        Assert.Empty(LanguageTimeline.Smooth([1]));
        Assert.Empty(LanguageTimeline.Smooth([0, 0]));
        Assert.Empty(LanguageTimeline.Smooth([]));
    }
}
