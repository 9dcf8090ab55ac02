using System.Globalization;

namespace MoeModal.Cli;

/// <summary>
/// A small strict parser: "--name value", "--name=value", flags, positionals, "--" ends options.
/// Unknown options are usage errors that name the option.
/// </summary>
public sealed class Args
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public List<string> Positionals { get; } = [];

    public static Args Parse(IEnumerable<string> args, IReadOnlyCollection<string> valueOptions, IReadOnlyCollection<string> flagOptions)
    {
        var a = new Args();
        bool options = true;
        using var e = args.GetEnumerator();
        while (e.MoveNext())
        {
            string s = e.Current;
            if (options && s == "--") { options = false; continue; }
            if (options && s.StartsWith("--", StringComparison.Ordinal))
            {
                string name = s;
                string? value = null;
                int eq = s.IndexOf('=');
                if (eq > 0) { name = s[..eq]; value = s[(eq + 1)..]; }
                if (flagOptions.Contains(name))
                {
                    if (value is not null) throw new UsageException($"{name} takes no value");
                    a._flags.Add(name);
                }
                else if (valueOptions.Contains(name))
                {
                    if (value is null)
                    {
                        if (!e.MoveNext()) throw new UsageException($"{name} needs a value");
                        value = e.Current;
                    }
                    if (a._values.ContainsKey(name)) throw new UsageException($"{name} is given twice");
                    a._values[name] = value;
                }
                else
                {
                    throw new UsageException($"unknown option '{name}'");
                }
                continue;
            }
            a.Positionals.Add(s);
        }
        return a;
    }

    public bool Flag(string name) => _flags.Contains(name);

    public string? Value(string name) => _values.GetValueOrDefault(name);

    public int? Int(string name, int min = int.MinValue, int max = int.MaxValue)
    {
        if (Value(name) is not { } v) return null;
        if (!int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int r) || r < min || r > max)
            throw new UsageException($"{name} must be an integer between {min} and {max}, got '{v}'");
        return r;
    }

    public double? Double(string name)
    {
        if (Value(name) is not { } v) return null;
        if (!double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double r) || !double.IsFinite(r))
            throw new UsageException($"{name} must be a number, got '{v}'");
        return r;
    }
}
