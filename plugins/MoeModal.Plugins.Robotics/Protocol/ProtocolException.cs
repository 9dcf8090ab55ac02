namespace MoeModal.Plugins.Robotics.Protocol;

/// <summary>
/// A peer broke the protocol. <see cref="Code"/> is the error frame's code; <see cref="Fatal"/>
/// says whether the connection must close (framing is lost, or the session never started).
/// </summary>
public sealed class ProtocolException(string code, string message, bool fatal, long? seq = null) : Exception(message)
{
    public string Code { get; } = code;
    public bool Fatal { get; } = fatal;
    public long? Seq { get; } = seq;

    /// <summary>A peer's string fit for a log line or an error message: at most 64 characters, no control characters.</summary>
    public static string Printable(string s)
    {
        var t = s.Length <= 64 ? s : s[..64] + "…";
        return string.Concat(t.Select(c => char.IsControl(c) ? '?' : c));
    }

    /// <summary>For <c>unknown_task</c>: the "task/variant" names the host serves (sent as the error's <c>tasks</c>).</summary>
    public string[]? Tasks { get; init; }
}
