using System.Text.Json;
using System.Text.Json.Nodes;

namespace MoeModal.Core.Packages;

/// <summary>
/// Reads one JSON object strictly: every key must be consumed, wrong types and unknown keys fail
/// with a message that names the manifest file and the JSON path.
/// </summary>
internal sealed class JsonObjectReader
{
    private readonly JsonObject _obj;
    private readonly string _file;
    private readonly string _path;
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);

    public JsonObjectReader(JsonNode? node, string file, string path)
    {
        _file = file;
        _path = path;
        _obj = node as JsonObject ?? throw Error($"{path} must be a JSON object");
    }

    public string Path => _path;

    /// <summary>A reader for a nested node of the same file.</summary>
    public JsonObjectReader Child(JsonNode? node, string path) => new(node, _file, path);

    public ModelPackageException Error(string what) => new($"{_file}: {what}");

    public bool Has(string key) => _obj.ContainsKey(key);

    private JsonNode? Take(string key)
    {
        _seen.Add(key);
        return _obj[key];
    }

    public string RequiredString(string key) =>
        OptionalString(key) ?? throw Error($"{_path}.{key} is required (a string)");

    public string? OptionalString(string key)
    {
        var n = Take(key);
        if (n is null) return null;
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.String) return v.GetValue<string>();
        throw Error($"{_path}.{key} must be a string");
    }

    public bool OptionalBool(string key, bool fallback)
    {
        var n = Take(key);
        if (n is null) return fallback;
        if (n is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False) return v.GetValue<bool>();
        throw Error($"{_path}.{key} must be true or false");
    }

    public double OptionalNumber(string key, double fallback)
    {
        var n = Take(key);
        if (n is null) return fallback;
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d) && double.IsFinite(d)) return d;
        throw Error($"{_path}.{key} must be a finite number");
    }

    public int OptionalInt(string key, int fallback)
    {
        var n = Take(key);
        if (n is null) return fallback;
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d)
            && d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue) return (int)d;
        throw Error($"{_path}.{key} must be an integer");
    }

    public JsonArray RequiredArray(string key) =>
        OptionalArray(key) ?? throw Error($"{_path}.{key} is required (an array)");

    public JsonArray? OptionalArray(string key)
    {
        var n = Take(key);
        if (n is null) return null;
        return n as JsonArray ?? throw Error($"{_path}.{key} must be an array");
    }

    public JsonObjectReader RequiredObject(string key) =>
        OptionalObject(key) ?? throw Error($"{_path}.{key} is required (an object)");

    public JsonObjectReader? OptionalObject(string key)
    {
        var n = Take(key);
        return n is null ? null : new JsonObjectReader(n, _file, $"{_path}.{key}");
    }

    /// <summary>The raw object under <paramref name="key"/>, unchecked (plugin metadata).</summary>
    public JsonObject? OptionalRawObject(string key)
    {
        var n = Take(key);
        if (n is null) return null;
        return n as JsonObject ?? throw Error($"{_path}.{key} must be an object");
    }

    /// <summary>A string → string map such as an ONNX step's input bindings.</summary>
    public IReadOnlyDictionary<string, string> RequiredStringMap(string key)
    {
        var r = RequiredObject(key);
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in r._obj)
        {
            r._seen.Add(k);
            if (v is JsonValue jv && jv.GetValueKind() == JsonValueKind.String) map[k] = jv.GetValue<string>();
            else throw Error($"{r._path}.{k} must be a string (a package tensor name)");
        }
        return map;
    }

    /// <summary>Fails naming the first key that nothing consumed.</summary>
    public void EnsureNoUnknownKeys()
    {
        foreach (var (k, _) in _obj)
            if (!_seen.Contains(k))
                throw Error($"unknown key '{k}' in {_path}");
    }
}
