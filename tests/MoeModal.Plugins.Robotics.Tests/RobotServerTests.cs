using System.Diagnostics;
using MoeModal.Plugins.Robotics.Protocol;

namespace MoeModal.Plugins.Robotics.Tests;

[Trait("Modality", "robot")]
public class RobotServerTests
{
    [Fact]
    public async Task Session_HelloObservationsClose()
    {
        await using var f = new ServerFixture();
        using var c = await f.Connect();
        var welcome = await c.Hello();
        Assert.Equal("welcome", welcome.Type);
        Assert.Equal(new float[] { -10 }, ((object?[])welcome.Extra["act_low"]!).Select(v => Convert.ToSingle(v)).ToArray());
        for (int seq = 0; seq < 20; seq++)
        {
            await c.Send(("type", "obs"), ("seq", seq), ("t", seq * 0.01), ("obs", new float[] { 1, 2, 3, 4 }));
            var act = await c.Receive();
            Assert.Equal("act", act!.Type);
            Assert.Equal(seq, act.Seq);
            Assert.Single(act.Action!);
            Assert.False(act.Safe);
            Assert.True(act.Action![0] < 0);       // −(x + Σ w·s·x) for x = 1
        }
        await c.Send(("type", "close"), ("reason", "done"));
        Assert.Equal("close", (await c.Receive())!.Type);
        Assert.Null(await c.Receive());
        Assert.Equal(20, f.Server.Stats.Steps);
    }

    [Theory]
    [InlineData("pogo", "standard", 4, 1, "unknown_task")]
    [InlineData("cartpole", "standard", 5, 1, "bad_hello")]
    public async Task Hello_Wrong_FatalErrorThenClosed(string task, string variant, int obs, int act, string code)
    {
        await using var f = new ServerFixture();
        using var c = await f.Connect();
        await c.Send(("type", "hello"), ("version", 1), ("task", task), ("variant", variant), ("obs_dim", obs), ("act_dim", act));
        var err = await c.Receive();
        Assert.Equal("error", err!.Type);
        Assert.Equal(code, err.Extra["code"]);
        Assert.Equal(true, err.Extra["fatal"]);
        if (code == "unknown_task")
        {
            // Machine-readable list of what the host serves.
            var tasks = Assert.IsType<object?[]>(err.Extra["tasks"]);
            Assert.Contains("cartpole/standard", tasks);
        }
        Assert.Null(await c.Receive());
    }

    [Fact]
    public async Task Hello_WrongVersionOrNotHello_Refused()
    {
        await using var f = new ServerFixture();
        using (var c = await f.Connect())
        {
            await c.Send(("type", "hello"), ("version", 2), ("task", "cartpole"), ("variant", "standard"), ("obs_dim", 4), ("act_dim", 1));
            Assert.Contains("version 2", (string)(await c.Receive())!.Extra["message"]!);
        }
        using (var c = await f.Connect())
        {
            await c.Send(("type", "obs"), ("seq", 0), ("obs", new float[] { 1, 2, 3, 4 }));
            Assert.Equal("bad_hello", (await c.Receive())!.Extra["code"]);
        }
    }

    [Fact]
    public async Task Observation_Bad_RecoverableErrorThenSessionGoesOn()
    {
        await using var f = new ServerFixture();
        using var c = await f.Connect();
        await c.Hello();
        await c.Send(("type", "obs"), ("seq", 0), ("obs", new float[] { 1, 2, 3 }));          // wrong length
        Assert.Equal("bad_observation", (await c.Receive())!.Extra["code"]);
        await c.Send(("type", "obs"), ("seq", 1), ("obs", new float[] { 1, float.NaN, 3, 4 }));
        Assert.Equal("bad_observation", (await c.Receive())!.Extra["code"]);
        await c.Send(("type", "obs"), ("seq", 2), ("obs", new float[] { 1, 2, 3, 4 }));
        Assert.Equal("act", (await c.Receive())!.Type);
        await c.Send(("type", "obs"), ("seq", 2), ("obs", new float[] { 1, 2, 3, 4 }));      // repeated seq
        var err = await c.Receive();
        Assert.Equal("bad_sequence", err!.Extra["code"]);
        Assert.Equal(2L, err.Seq);
        await c.SendRaw(Frames.Framed([0x93, 1, 2, 3]));                                    // garbage map
        Assert.Equal("bad_message", (await c.Receive())!.Extra["code"]);
        await c.Send(("type", "dance"));
        Assert.Equal("bad_message", (await c.Receive())!.Extra["code"]);
        await c.Send(("type", "obs"), ("seq", 3), ("obs", new float[] { 1, 2, 3, 4 }));
        Assert.Equal("act", (await c.Receive())!.Type);
    }

    [Fact]
    public async Task Frame_Oversized_TooLargeAndClosed()
    {
        await using var f = new ServerFixture();
        using var c = await f.Connect();
        await c.Hello();
        await c.SendRaw([0x00, 0x10, 0x00, 0x01]);   // declares 1 MiB + 1
        var err = await c.Receive();
        Assert.Equal("too_large", err!.Extra["code"]);
        Assert.Null(await c.Receive());
    }

    [Fact]
    public async Task Frame_ZeroLength_Closed()
    {
        await using var f = new ServerFixture();
        using var c = await f.Connect();
        await c.SendRaw([0, 0, 0, 0]);
        Assert.Equal("bad_frame", (await c.Receive())!.Extra["code"]);
    }

    [Fact]
    public async Task Frame_SplitAtEveryByte_StillUnderstood()
    {
        await using var f = new ServerFixture();
        using var c = await f.Connect();
        var hello = new MessageWriter().Frame(("type", "hello"), ("version", 1), ("task", "reacher"), ("variant", "standard"), ("obs_dim", 10), ("act_dim", 2)).ToArray();
        await c.SendRaw(hello, chunk: 1);
        Assert.Equal("welcome", (await c.Receive())!.Type);
        var obs = new MessageWriter().Frame(("type", "obs"), ("seq", 0), ("obs", new float[10])).ToArray();
        for (int split = 1; split < obs.Length; split++)
        {
            var frame = new MessageWriter().Frame(("type", "obs"), ("seq", split), ("obs", new float[10])).ToArray();
            await c.SendRaw(frame[..split]);
            await Task.Delay(1);
            await c.SendRaw(frame[split..]);
            var act = await c.Receive();
            Assert.Equal(split, act!.Seq);
        }
    }

    [Fact]
    public async Task Frame_StalledMidway_ClosedAfterTimeout()
    {
        await using var f = new ServerFixture(new RobotServerOptions { FrameTimeout = TimeSpan.FromMilliseconds(300) });
        using var c = await f.Connect();
        await c.Hello();
        await c.SendRaw([0x00, 0x00, 0x00, 0x20, 0x82]);   // 32 bytes announced, 1 sent
        var err = await c.Receive(5000);
        Assert.Equal("timeout", err!.Extra["code"]);
        Assert.Null(await c.Receive());
    }

    [Fact]
    public async Task Frame_StalledInsideHeader_MessageCountsTheHeaderBytes()
    {
        await using var f = new ServerFixture(new RobotServerOptions { FrameTimeout = TimeSpan.FromMilliseconds(300) });
        using var c = await f.Connect();
        await c.Hello();
        await c.SendRaw([0x00, 0x00]);   // half a length prefix
        var err = await c.Receive(5000);
        Assert.Equal("timeout", err!.Extra["code"]);
        Assert.Contains("2 of 4 bytes", (string)err.Extra["message"]!);
        Assert.Null(await c.Receive());
    }

    [Fact]
    public async Task Connection_SilentBeforeHello_ClosedAfterFrameTimeout()
    {
        // No hello within the frame timeout (not the much longer idle timeout): the slot is freed.
        await using var f = new ServerFixture(new RobotServerOptions { FrameTimeout = TimeSpan.FromMilliseconds(300), IdleTimeout = TimeSpan.FromMinutes(5) });
        using var c = await f.Connect();
        var err = await c.Receive(5000);
        Assert.Equal("timeout", err!.Extra["code"]);
        Assert.Null(await c.Receive(5000));
        c.Dispose();   // the host lingers after a fatal error until the peer closes (or 1 s)
        for (int i = 0; i < 100 && f.Server.Stats.Active != 0; i++) await Task.Delay(50);
        Assert.Equal(0, f.Server.Stats.Active);
    }

    [Fact]
    public async Task Connection_IdleAfterHello_ClosedAfterIdleTimeout()
    {
        await using var f = new ServerFixture(new RobotServerOptions { IdleTimeout = TimeSpan.FromMilliseconds(300) });
        using var c = await f.Connect();
        await c.Hello();
        var err = await c.Receive(5000);
        Assert.Equal("timeout", err!.Extra["code"]);
        Assert.Contains("idle", (string)err.Extra["message"]!);
    }

    [Fact]
    public async Task InferenceFailure_SafeActionAndTheSessionGoesOn()
    {
        int calls = 0;
        await using var f = new ServerFixture(new RobotServerOptions { WarmUpRounds = 0 },
            model => inputs => Interlocked.Increment(ref calls) == 1 ? throw new InvalidOperationException("boom") : model.Run(inputs));
        using var c = await f.Connect();
        await c.Hello();
        await c.Send(("type", "obs"), ("seq", 0), ("obs", new float[] { 1, 2, 3, 4 }));
        var first = await c.Receive();
        Assert.Equal("act", first!.Type);
        Assert.True(first.Safe);
        await c.Send(("type", "obs"), ("seq", 1), ("obs", new float[] { 1, 2, 3, 4 }));
        var second = await c.Receive();
        Assert.Equal("act", second!.Type);
        Assert.False(second.Safe);
        Assert.Equal(1, f.Server.Stats.Errors);
    }

    [Fact]
    public async Task ErrorFlood_ClosedAfterLimit()
    {
        await using var f = new ServerFixture(new RobotServerOptions { MaxConsecutiveErrors = 3 });
        using var c = await f.Connect();
        await c.Hello();
        for (int i = 0; i < 3; i++)
        {
            await c.Send(("type", "nonsense"));
            Assert.Equal(false, (await c.Receive())!.Extra["fatal"]);
        }
        await c.Send(("type", "nonsense"));
        Assert.Equal(true, (await c.Receive())!.Extra["fatal"]);
        Assert.Null(await c.Receive());
    }

    [Fact]
    public async Task SlowInference_SafeActionAndCountedMiss()
    {
        // Wide margins (50 ms deadline, 3 s inference): the test checks the mechanism, not the machine's speed.
        await using var f = new ServerFixture(new RobotServerOptions { Deadline = TimeSpan.FromMilliseconds(50), WarmUpRounds = 0 },
            model => inputs => { Thread.Sleep(3000); return model.Run(inputs); });
        using var c = await f.Connect();
        await c.Hello();
        var sw = Stopwatch.StartNew();
        await c.Send(("type", "obs"), ("seq", 0), ("obs", new float[] { 1, 2, 3, 4 }));
        var act = await c.Receive();
        Assert.True(act!.Safe);
        Assert.Equal(new float[] { 0 }, act.Action!);
        Assert.True(sw.ElapsedMilliseconds < 2500, $"the safe action came after {sw.ElapsedMilliseconds} ms");
        // The host counts a reply once it has been sent, so the counter can trail the frame by a moment.
        for (int i = 0; i < 100 && f.Server.Stats.DeadlineMisses == 0; i++) await Task.Delay(20);
        Assert.Equal(1, f.Server.Stats.DeadlineMisses);
    }

    [Fact]
    public async Task HostileClients_DoNotDisturbAGoodRobot()
    {
        // The deadline is wide (2 s) so that a loaded test machine cannot turn this into a timing test:
        // what is checked is that the good robot keeps getting real actions, in order, and is never
        // closed. Latency under attack is measured with the sample against serve-robot (README).
        await using var f = new ServerFixture(new RobotServerOptions { FrameTimeout = TimeSpan.FromMilliseconds(500), Deadline = TimeSpan.FromSeconds(2) });
        using var good = await f.Connect();
        await good.Hello();
        var rng = new Random(3);
        var attackers = Enumerable.Range(0, 8).Select(async i =>
        {
            using var bad = await f.Connect();
            try
            {
                switch (i % 4)
                {
                    case 0: var junk = new byte[4096]; rng.NextBytes(junk); await bad.SendRaw(junk); break;
                    case 1: await bad.SendRaw([0x7f, 0xff, 0xff, 0xff]); break;
                    case 2:
                        var nested = new List<byte> { 0x81, 0xa1, (byte)'x' };
                        nested.AddRange(Enumerable.Repeat((byte)0x91, 60_000));
                        nested.Add(0xc0);
                        await bad.Hello();
                        await bad.SendRaw(Frames.Framed([.. nested]));
                        break;
                    case 3: await bad.SendRaw([0x00, 0x00, 0x01, 0x00, 0x83, 0xa4]); break;   // stall
                }
                while (await bad.Receive(2000) is not null) { }
            }
            catch (Exception ex) when (ex is IOException or ProtocolException)
            {
                // The host closed the attacker or stopped answering it (recoverable errors leave it open).
            }
        }).ToArray();
        for (int seq = 0; seq < 200; seq++)
        {
            await good.Send(("type", "obs"), ("seq", seq), ("obs", new float[] { 0.1f, 0.2f, 0.3f, 0.4f }));
            var act = await good.Receive();
            Assert.Equal("act", act!.Type);
            Assert.Equal(seq, act.Seq);
            Assert.False(act.Safe);
        }
        await Task.WhenAll(attackers);
        Assert.Equal(0, f.Server.Stats.DeadlineMisses);
    }

    [Fact]
    public async Task TooManyConnections_Refused()
    {
        await using var f = new ServerFixture(new RobotServerOptions { MaxConnections = 1 });
        using var first = await f.Connect();
        await first.Hello();
        using var second = await f.Connect();
        var err = await second.Receive();
        Assert.Equal("busy", err!.Extra["code"]);
    }
}
