using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;

namespace MoeModal.Plugins.Robotics.Protocol;

/// <summary>
/// Length-prefixed frames: a 4-byte big-endian length, then that many bytes. Reads are bounded by
/// a size cap and by timeouts, so a peer cannot make the host allocate without bound or wait forever.
/// </summary>
public static class Frames
{
    public const int DefaultMaxFrame = 65536;

    /// <summary>
    /// Reads one frame into <paramref name="buffer"/> (grown up to <paramref name="maxFrame"/>) with
    /// blocking socket calls, for a connection served by its own thread: the thread sleeps in the
    /// kernel until bytes arrive (no thread-pool hand-offs on the hot path). Returns the payload
    /// length, or -1 when the peer closed cleanly between frames. <paramref name="idle"/> bounds the
    /// wait for a frame to start, <paramref name="stall"/> the time to complete it once started.
    /// Closing the socket from another thread ends a wait.
    /// </summary>
    public static int Read(Socket socket, Span<byte> header, Func<int, Memory<byte>> buffer, int maxFrame, TimeSpan idle, TimeSpan stall)
    {
        if (!Wait(socket, idle)) throw new ProtocolException("timeout", $"idle for {idle.TotalSeconds:F0} s waiting for a frame", fatal: true);
        int got = socket.Receive(header[..4]);
        if (got == 0) return -1;
        long deadline = Stopwatch.GetTimestamp() + (long)(stall.TotalSeconds * Stopwatch.Frequency);
        if (got < 4) Fill(socket, header[..4], got, deadline, stall, "a frame header");
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (length == 0) throw new ProtocolException("bad_frame", "empty frame (length 0)", fatal: true);
        if (length > maxFrame) throw new ProtocolException("too_large", $"frame of {length} bytes is over the {maxFrame}-byte limit", fatal: true);
        var payload = buffer((int)length)[..(int)length];
        Fill(socket, payload.Span, 0, deadline, stall, $"a {length}-byte frame");
        return (int)length;
    }

    private static void Fill(Socket socket, Span<byte> target, int done, long deadline, TimeSpan stall, string what)
    {
        while (done < target.Length)
        {
            var left = TimeSpan.FromSeconds((deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
            if (left <= TimeSpan.Zero || !Wait(socket, left))
                throw new ProtocolException("timeout", $"stalled in the middle of {what} ({done} of {target.Length} bytes after {stall.TotalSeconds:F0} s)", fatal: true);
            int n = socket.Receive(target[done..]);
            if (n == 0) throw new ProtocolException("bad_frame", $"connection closed in the middle of {what} ({done} of {target.Length} bytes)", fatal: true);
            done += n;
        }
    }

    /// <summary>True when the socket has bytes (or its peer closed) within <paramref name="timeout"/>.</summary>
    private static bool Wait(Socket socket, TimeSpan timeout)
    {
        if (socket.Available > 0) return true;
        long us = (long)Math.Ceiling(timeout.TotalMicroseconds);
        return socket.Poll((int)Math.Clamp(us, 1, int.MaxValue), SelectMode.SelectRead);
    }

    /// <summary>A complete frame: the length prefix, then <paramref name="payload"/>.</summary>
    public static byte[] Framed(ReadOnlySpan<byte> payload)
    {
        var f = new byte[payload.Length + 4];
        WriteHeader(f, payload.Length);
        payload.CopyTo(f.AsSpan(4));
        return f;
    }

    /// <summary>Writes the 4-byte length prefix of a <paramref name="length"/>-byte payload.</summary>
    public static void WriteHeader(Span<byte> destination, int length) =>
        BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)length);
}
