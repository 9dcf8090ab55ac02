namespace MoeModal.Cli;

/// <summary>The command line is wrong: exit code 2 with the message and a hint.</summary>
public sealed class UsageException(string message) : Exception(message);
