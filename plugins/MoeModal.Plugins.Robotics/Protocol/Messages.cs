using System.Buffers;
using MessagePack;

namespace MoeModal.Plugins.Robotics.Protocol;

/// <summary>A message from a robot, after <see cref="MsgPackGuard"/> and strict field typing.</summary>
public sealed class RobotMessage
{
    public required string Type { get; init; }
    public int? Version { get; init; }
    public string? Task { get; init; }
    public string? Variant { get; init; }
    public int? ObsDim { get; init; }
    public int? ActDim { get; init; }
    public string? Robot { get; init; }
    public long? Seq { get; init; }
    public double? T { get; init; }
    public float[]? Obs { get; init; }
    public string? Reason { get; init; }
    public float[]? Action { get; init; }
    public bool? Safe { get; init; }

    /// <summary>Fields of the host's replies a robot reads (welcome, act, error, stats).</summary>
    public Dictionary<string, object?> Extra { get; } = [];

    /// <summary>Parses one frame. Throws <see cref="ProtocolException"/> naming the offending key.</summary>
    public static RobotMessage Parse(ReadOnlyMemory<byte> frame)
    {
        MsgPackGuard.Check(frame);
        var r = new MessagePackReader(frame);
        try
        {
            int n = r.ReadMapHeader();
            string? type = null, task = null, variant = null, robot = null, reason = null;
            int? version = null, obsDim = null, actDim = null;
            long? seq = null;
            double? t = null;
            float[]? obs = null, action = null;
            bool? safe = null;
            var seen = new HashSet<string>(MsgPackGuard.KeyComparer);
            var extra = new Dictionary<string, object?>(MsgPackGuard.KeyComparer);
            for (int i = 0; i < n; i++)
            {
                if (r.NextMessagePackType != MessagePackType.String) throw Bad("map keys must be strings");
                string key = r.ReadString()!;
                if (!seen.Add(key)) throw Bad($"key '{ProtocolException.Printable(key)}' appears twice");
                switch (key)
                {
                    case "type": type = Str(ref r, key); break;
                    case "version": version = (int)Int(ref r, key, 0, int.MaxValue); break;
                    case "task": task = Str(ref r, key); break;
                    case "variant": variant = Str(ref r, key); break;
                    case "robot": robot = Str(ref r, key); break;
                    case "reason": reason = Str(ref r, key); break;
                    case "obs_dim": obsDim = (int)Int(ref r, key, 0, MsgPackGuard.MaxArrayLength); break;
                    case "act_dim": actDim = (int)Int(ref r, key, 0, MsgPackGuard.MaxArrayLength); break;
                    case "seq": seq = Int(ref r, key, 0, long.MaxValue); break;
                    case "t": t = Num(ref r, key); break;
                    case "obs": obs = Floats(ref r, key); break;
                    case "action": action = Floats(ref r, key); break;
                    case "safe": safe = r.NextMessagePackType == MessagePackType.Boolean ? r.ReadBoolean() : throw Bad("'safe' must be a boolean"); break;
                    default: extra[key] = Any(ref r); break;
                }
            }
            if (type is null) throw Bad("the map has no 'type'");
            var m = new RobotMessage
            {
                Type = type, Version = version, Task = task, Variant = variant, ObsDim = obsDim, ActDim = actDim,
                Robot = robot, Seq = seq, T = t, Obs = obs, Reason = reason, Action = action, Safe = safe,
            };
            foreach (var (k, v) in extra) m.Extra[k] = v;
            return m;
        }
        catch (ProtocolException ex) when (ex.Seq is null && SeqSoFar(frame) is long s)
        {
            throw new ProtocolException(ex.Code, ex.Message, ex.Fatal, s);
        }
        catch (ProtocolException)
        {
            throw;
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or OverflowException or InvalidOperationException or ArgumentException)
        {
            throw Bad($"not valid MessagePack ({ex.Message})", SeqSoFar(frame));
        }
    }

    /// <summary>
    /// The frame's <c>seq</c> when it can be read although the message as a whole cannot, so an
    /// error about an observation names the observation. Null when there is none or it is unreadable.
    /// </summary>
    private static long? SeqSoFar(ReadOnlyMemory<byte> frame)
    {
        try
        {
            var r = new MessagePackReader(frame);
            int n = r.ReadMapHeader();
            for (int i = 0; i < n; i++)
            {
                if (r.NextMessagePackType != MessagePackType.String) return null;
                string? key = r.ReadString();
                if (key == "seq")
                    return r.NextMessagePackType == MessagePackType.Integer && r.ReadInt64() is >= 0 and var v ? v : null;
                r.Skip();
            }
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or OverflowException or InvalidOperationException or ArgumentException)
        {
        }
        return null;
    }

    private static ProtocolException Bad(string what, long? seq) => new("bad_message", what, fatal: false, seq);

    private static ProtocolException Bad(string what) => new("bad_message", what, fatal: false);

    private static string Str(ref MessagePackReader r, string key) =>
        r.NextMessagePackType == MessagePackType.String ? r.ReadString()! : throw Bad($"'{key}' must be a string, not {r.NextMessagePackType}");

    private static long Int(ref MessagePackReader r, string key, long min, long max)
    {
        if (r.NextMessagePackType != MessagePackType.Integer) throw Bad($"'{key}' must be an integer, not {r.NextMessagePackType}");
        long v;
        try
        {
            v = r.ReadInt64();
        }
        catch (OverflowException)
        {
            throw Bad($"'{key}' is out of range ({min} … {max})");
        }
        if (v < min || v > max) throw Bad($"'{key}' = {v} is out of range ({min} … {max})");
        return v;
    }

    private static double Num(ref MessagePackReader r, string key) => r.NextMessagePackType switch
    {
        MessagePackType.Float => r.ReadDouble(),
        MessagePackType.Integer => r.ReadInt64(),
        var other => throw Bad($"'{key}' must be a number, not {other}"),
    };

    private static float[] Floats(ref MessagePackReader r, string key)
    {
        if (r.NextMessagePackType != MessagePackType.Array) throw Bad($"'{key}' must be an array of numbers, not {r.NextMessagePackType}");
        int n = r.ReadArrayHeader();
        var a = new float[n];
        for (int i = 0; i < n; i++)
        {
            double v = Num(ref r, $"{key}[{i}]");
            // NaN and infinities pass here and are refused with the observation's own error;
            // finite values that float32 cannot hold are refused here rather than becoming infinite.
            if (double.IsFinite(v) && Math.Abs(v) > float.MaxValue) throw Bad($"'{key}[{i}]' = {v:R} is outside the float32 range");
            a[i] = (float)v;
        }
        return a;
    }

    private static object? Any(ref MessagePackReader r)
    {
        switch (r.NextMessagePackType)
        {
            case MessagePackType.Integer: return r.ReadInt64();
            case MessagePackType.Float: return r.ReadDouble();
            case MessagePackType.String: return r.ReadString();
            case MessagePackType.Boolean: return r.ReadBoolean();
            case MessagePackType.Nil: r.ReadNil(); return null;
            case MessagePackType.Array:
            {
                int n = r.ReadArrayHeader();
                var list = new object?[n];
                for (int i = 0; i < n; i++) list[i] = Any(ref r);
                return list;
            }
            default: r.Skip(); return null;   // depth already bounded by the guard
        }
    }
}

/// <summary>Writes MessagePack maps for frames, with the length prefix reserved up front.</summary>
public sealed class MessageWriter
{
    private readonly ArrayBufferWriter<byte> _buffer = new(256);

    /// <summary>Encodes a map of <paramref name="entries"/> into a complete frame (prefix + payload).</summary>
    public ReadOnlyMemory<byte> Frame(params (string Key, object? Value)[] entries)
    {
        _buffer.Clear();
        _buffer.Advance(4);
        var w = new MessagePackWriter(_buffer);
        w.WriteMapHeader(entries.Length);
        foreach (var (k, v) in entries)
        {
            w.Write(k);
            WriteValue(ref w, v);
        }
        w.Flush();
        var frame = _buffer.WrittenMemory;
        Frames.WriteHeader(_buffer.GetSpanAt0(), frame.Length - 4);
        return frame;
    }

    private static void WriteValue(ref MessagePackWriter w, object? v)
    {
        switch (v)
        {
            case null: w.WriteNil(); break;
            case string s: w.Write(s); break;
            case bool b: w.Write(b); break;
            case int i: w.Write(i); break;
            case long l: w.Write(l); break;
            case double d: w.Write(d); break;
            case float f: w.Write(f); break;
            case float[] fs:
                w.WriteArrayHeader(fs.Length);
                foreach (var f in fs) w.Write(f);
                break;
            case string[] ss:
                w.WriteArrayHeader(ss.Length);
                foreach (var s in ss) w.Write(s);
                break;
            default: throw new ArgumentException($"cannot encode {v.GetType().Name}");
        }
    }
}

internal static class BufferWriterExtensions
{
    /// <summary>The written region from its start (used to fill in the reserved length prefix).</summary>
    public static Span<byte> GetSpanAt0(this ArrayBufferWriter<byte> w) =>
        System.Runtime.InteropServices.MemoryMarshal.AsMemory(w.WrittenMemory).Span;
}
