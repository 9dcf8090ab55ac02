namespace MoeModal.Plugins.Robotics;

/// <summary>Counters the server keeps; read at any time.</summary>
public sealed class RobotServerStats
{
    private long _sessions, _active, _steps, _misses, _errors, _refused;
    public long Sessions => Interlocked.Read(ref _sessions);
    public long Active => Interlocked.Read(ref _active);
    public long Steps => Interlocked.Read(ref _steps);
    public long DeadlineMisses => Interlocked.Read(ref _misses);
    public long Errors => Interlocked.Read(ref _errors);
    public long Refused => Interlocked.Read(ref _refused);
    internal void Opened() { Interlocked.Increment(ref _sessions); Interlocked.Increment(ref _active); }
    internal void Closed() => Interlocked.Decrement(ref _active);
    internal void Step() => Interlocked.Increment(ref _steps);
    internal void Miss() => Interlocked.Increment(ref _misses);
    internal void Error() => Interlocked.Increment(ref _errors);
    internal void Refuse() => Interlocked.Increment(ref _refused);
}
