using MessagePack;

namespace MoeModal.Plugins.Robotics.Protocol;

/// <summary>
/// Walks a frame's MessagePack structure before anything interprets it, iteratively (no
/// recursion a hostile frame could exhaust): bounded nesting, bounded map and array sizes, no
/// extension types, exactly one top-level map and nothing after it. The limits tighten
/// MessagePack's own <see cref="MessagePackSecurity.UntrustedData"/> settings, whose
/// collision-resistant comparer keys every map the parser builds from a peer's strings.
/// </summary>
public static class MsgPackGuard
{
    public const int MaxDepth = 8;

    /// <summary>MessagePack's untrusted-data settings with this protocol's nesting limit.</summary>
    public static readonly MessagePackSecurity Security = MessagePackSecurity.UntrustedData.WithMaximumObjectGraphDepth(MaxDepth);

    /// <summary>Key comparer for anything built from a peer's map keys (hash-flooding resistant).</summary>
    public static IEqualityComparer<string> KeyComparer { get; } = Security.GetEqualityComparer<string>();

    public const int MaxMapEntries = 64;
    public const int MaxArrayLength = 1024;

    public static void Check(ReadOnlyMemory<byte> frame)
    {
        var reader = new MessagePackReader(frame);
        try
        {
            if (reader.NextMessagePackType != MessagePackType.Map)
                throw Bad($"a frame must hold one map, not {reader.NextMessagePackType}");
            Span<int> remaining = stackalloc int[MaxDepth + 1];
            int depth = 0;
            remaining[0] = 1;
            while (depth >= 0)
            {
                if (remaining[depth] == 0) { depth--; continue; }
                remaining[depth]--;
                switch (reader.NextMessagePackType)
                {
                    case MessagePackType.Map:
                    {
                        int n = reader.ReadMapHeader();
                        if (n > MaxMapEntries) throw Bad($"a map with {n} entries (limit {MaxMapEntries})");
                        if (++depth > Security.MaximumObjectGraphDepth) throw Bad($"nesting deeper than {MaxDepth} levels (the top-level map is level 1)");
                        remaining[depth] = n * 2;
                        break;
                    }
                    case MessagePackType.Array:
                    {
                        int n = reader.ReadArrayHeader();
                        if (n > MaxArrayLength) throw Bad($"an array of {n} elements (limit {MaxArrayLength})");
                        if (++depth > Security.MaximumObjectGraphDepth) throw Bad($"nesting deeper than {MaxDepth} levels (the top-level map is level 1)");
                        remaining[depth] = n;
                        break;
                    }
                    case MessagePackType.Extension:
                        throw Bad("extension types are not accepted");
                    case MessagePackType.Unknown:
                        throw Bad("an invalid MessagePack type code");
                    default:
                        reader.Skip();
                        break;
                }
            }
            if (!reader.End) throw Bad($"{frame.Length - reader.Consumed} bytes after the message");
        }
        catch (ProtocolException)
        {
            throw;
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or OverflowException or InvalidOperationException or ArgumentException)
        {
            throw Bad($"not valid MessagePack ({ex.Message})");
        }
    }

    private static ProtocolException Bad(string what) => new("bad_message", what, fatal: false);
}
