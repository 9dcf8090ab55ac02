using MoeModal.Plugins.Robotics.Protocol;

namespace MoeModal.Plugins.Robotics.Tests;

[Trait("Modality", "robot")]
public class MsgPackGuardTests
{
    private static ProtocolException Refused(byte[] frame) => Assert.Throws<ProtocolException>(() => RobotMessage.Parse(frame));

    [Fact]
    public void Parse_Hello_ReadsEveryField()
    {
        var frame = new MessageWriter().Frame(("type", "hello"), ("version", 1), ("task", "cartpole"), ("variant", "standard"),
            ("obs_dim", 4), ("act_dim", 1), ("robot", "r1"));
        var m = RobotMessage.Parse(frame[4..]);
        Assert.Equal("hello", m.Type);
        Assert.Equal(1, m.Version);
        Assert.Equal("cartpole", m.Task);
        Assert.Equal(4, m.ObsDim);
        Assert.Equal("r1", m.Robot);
    }

    [Fact]
    public void Parse_ObsWithIntegersAndDoubles_Accepted()
    {
        // [0x83] map3: type obs, seq 7, obs [1 (int), 2.5 (float64), -3 (negative fixint)]
        byte[] frame = [0x83, 0xa4, .. "type"u8, 0xa3, .. "obs"u8, 0xa3, .. "seq"u8, 0x07, 0xa3, .. "obs"u8, 0x93, 0x01, 0xcb, .. BitConverter.GetBytes(2.5).Reverse(), 0xfd];
        var m = RobotMessage.Parse(frame);
        Assert.Equal(7, m.Seq);
        Assert.Equal([1f, 2.5f, -3f], m.Obs!);
    }

    [Fact]
    public void Parse_DeeplyNested_RefusedWithoutRecursion()
    {
        var frame = new List<byte> { 0x81, 0xa1, (byte)'x' };
        for (int i = 0; i < 60_000; i++) frame.Add(0x91);   // 60 000 nested one-element arrays
        frame.Add(0xc0);
        var ex = Refused([.. frame]);
        Assert.Contains("nesting deeper", ex.Message);
        Assert.False(ex.Fatal);
    }

    [Fact]
    public void Parse_HugeMap_Refused()
    {
        var frame = new List<byte> { 0xde, 0x10, 0x00 };      // map16 with 4096 entries
        for (int i = 0; i < 4096; i++) { frame.Add(0xa2); frame.Add((byte)(i >> 8)); frame.Add((byte)i); frame.Add(0x00); }
        Assert.Contains("4096 entries", Refused([.. frame]).Message);
    }

    [Fact]
    public void Parse_CollidingKeys_RefusedAsDuplicates()
    {
        byte[] frame = [0x82, 0xa4, .. "type"u8, 0xa3, .. "obs"u8, 0xa4, .. "type"u8, 0xa3, .. "act"u8];
        Assert.Contains("appears twice", Refused(frame).Message);
    }

    [Fact]
    public void Parse_ArrayClaimingMoreElementsThanBytes_Refused()
    {
        byte[] frame = [0x81, 0xa3, .. "obs"u8, 0xdd, 0x7f, 0xff, 0xff, 0xff];   // array32 of 2^31 − 1
        Refused(frame);
    }

    [Theory]
    [InlineData(new byte[] { 0x93, 0x01, 0x02, 0x03 })]              // array, not map
    [InlineData(new byte[] { 0xc1 })]                                // never-used type code
    [InlineData(new byte[] { 0x81, 0xa1 })]                          // truncated
    [InlineData(new byte[] { 0x80, 0x00 })]                          // trailing bytes
    [InlineData(new byte[] { 0x81, 0xa1, 0x78, 0xd4, 0x01, 0x02 })]  // ext type
    [InlineData(new byte[] { 0x81, 0x01, 0x02 })]                    // integer key
    [InlineData(new byte[] { 0x80 })]                                // no type
    public void Parse_Garbage_BadMessageNotFatal(byte[] frame)
    {
        var ex = Refused(frame);
        Assert.Equal("bad_message", ex.Code);
        Assert.False(ex.Fatal);
    }

    [Theory]
    [InlineData("seq", "\"x\"", "'seq' must be an integer")]
    [InlineData("obs", "\"x\"", "'obs' must be an array")]
    [InlineData("version", "-1", "out of range")]
    public void Parse_WrongFieldTypes_NameTheKey(string key, string json, string expected)
    {
        object value = json switch { "\"x\"" => "x", _ => long.Parse(json) };
        var frame = new MessageWriter().Frame(("type", "obs"), (key, value));
        Assert.Contains(expected, Refused(frame[4..].ToArray()).Message);
    }

    [Fact]
    public void Parse_RandomBytes_NeverThrowsAnythingElse()
    {
        var rng = new Random(7);
        for (int i = 0; i < 5000; i++)
        {
            var b = new byte[rng.Next(1, 64)];
            rng.NextBytes(b);
            try
            {
                RobotMessage.Parse(b);
            }
            catch (ProtocolException)
            {
            }
        }
    }

    [Fact]
    public void Parse_SeqBeyondInt64_OutOfRangeNotOverflow()
    {
        // "seq": uint64 2^63 (cf 80 00 …) is valid MessagePack but not a valid sequence number.
        byte[] frame = [0x82, 0xa4, .. "type"u8, 0xa3, .. "obs"u8, 0xa3, .. "seq"u8, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0];
        var ex = Refused(frame);
        Assert.Equal("bad_message", ex.Code);
        Assert.Contains("'seq' is out of range", ex.Message);
        Assert.DoesNotContain("overflow", ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Parse_ObservationBeyondFloat32_NamedAndCarriesSeq()
    {
        var frame = new MessageWriter().Frame(("type", "obs"), ("seq", 41L), ("obs", new float[] { 0 })).ToArray()[4..];
        // Patch the float32 element (ca + 4 bytes) into a float64 1e300 (cb + 8 bytes).
        int at = Array.LastIndexOf(frame, (byte)0xca);
        byte[] big = [0xcb, .. BitConverter.GetBytes(1e300).Reverse()];
        byte[] patched = [.. frame[..at], .. big];
        var ex = Refused(patched);
        Assert.Contains("'obs[0]' = 1E+300 is outside the float32 range", ex.Message);
        Assert.Equal(41L, ex.Seq);
    }

    [Fact]
    public void Parse_BadElementAfterSeq_ErrorNamesTheObservation()
    {
        byte[] frame = [0x83, 0xa4, .. "type"u8, 0xa3, .. "obs"u8, 0xa3, .. "seq"u8, 0x07, 0xa3, .. "obs"u8, 0x91, 0xa1, (byte)'x'];
        var ex = Refused(frame);
        Assert.Equal("bad_message", ex.Code);
        Assert.Contains("'obs[0]' must be a number", ex.Message);
        Assert.Equal(7L, ex.Seq);
    }
}
