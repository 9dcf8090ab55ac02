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

    /// <summary>For <c>unknown_task</c>: the "task/variant" names the host serves (sent as the error's <c>tasks</c>).</summary>
    public string[]? Tasks { get; init; }
}
