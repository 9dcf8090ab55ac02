using System.Reflection;
using System.Runtime.Loader;
using MoeModal.Abstractions;

namespace MoeModal.Core.Plugins;

/// <summary>
/// Finds modality plugins in assemblies. Each plugin folder gets its own load context, so a
/// plugin's dependencies do not clash with the host's, while <c>MoeModal.Abstractions</c> is always
/// the host's copy (the shared-types idea of DotNetCorePlugins): the plugin's
/// <see cref="IModalityPlugin"/> is the host's <see cref="IModalityPlugin"/>.
/// </summary>
public static class PluginLoader
{
    /// <summary>Plugins implemented in <paramref name="assembly"/> (public, concrete, parameterless constructor).</summary>
    public static IReadOnlyList<IModalityPlugin> FromAssembly(Assembly assembly)
    {
        var list = new List<IModalityPlugin>();
        Type[] types;
        try
        {
            types = assembly.GetExportedTypes();
        }
        catch (Exception ex) when (ex is ReflectionTypeLoadException or FileNotFoundException or FileLoadException)
        {
            throw new PluginException($"{assembly.GetName().Name}: cannot read its types ({ex.Message})", ex);
        }
        foreach (var t in types)
        {
            if (t.IsAbstract || !typeof(IModalityPlugin).IsAssignableFrom(t)) continue;
            if (t.GetConstructor(Type.EmptyTypes) is null) continue;
            try
            {
                list.Add((IModalityPlugin)Activator.CreateInstance(t)!);
            }
            catch (TargetInvocationException ex)
            {
                throw new PluginException($"{t.FullName}: its constructor failed: {ex.InnerException?.Message}", ex.InnerException);
            }
        }
        return list;
    }

    /// <summary>
    /// Loads every <c>*.dll</c> directly in <paramref name="folder"/> and in its immediate
    /// subfolders (one folder per plugin with its dependencies) and returns the plugins found.
    /// Assemblies that hold no plugin (dependencies) are fine; ones that fail to load are named.
    /// </summary>
    public static IReadOnlyList<IModalityPlugin> FromFolder(string folder)
    {
        if (!Directory.Exists(folder)) throw new PluginException($"{folder}: plugin folder does not exist");
        var plugins = new List<IModalityPlugin>();
        var dirs = new[] { folder }.Concat(Directory.GetDirectories(folder).Order(StringComparer.Ordinal));
        foreach (var dir in dirs)
        {
            var dlls = Directory.GetFiles(dir, "*.dll").Order(StringComparer.Ordinal).ToArray();
            if (dlls.Length == 0) continue;
            var context = new PluginLoadContext(dir);
            foreach (var dll in dlls)
            {
                if (Path.GetFileNameWithoutExtension(dll) == typeof(IModalityPlugin).Assembly.GetName().Name) continue;
                Assembly asm;
                try
                {
                    asm = context.LoadFromAssemblyPath(Path.GetFullPath(dll));
                }
                catch (BadImageFormatException)
                {
                    continue; // a native library beside the plugin
                }
                catch (Exception ex) when (ex is FileLoadException or FileNotFoundException)
                {
                    throw new PluginException($"{dll}: cannot load ({ex.Message})", ex);
                }
                plugins.AddRange(FromAssembly(asm));
            }
        }
        return plugins;
    }

    private sealed class PluginLoadContext(string folder) : AssemblyLoadContext($"moemodal-plugin:{folder}", isCollectible: false)
    {
        private static readonly string Shared = typeof(IModalityPlugin).Assembly.GetName().Name!;

        protected override Assembly? Load(AssemblyName name)
        {
            // The contract is shared with the host; everything the host already has is shared too.
            if (name.Name == Shared) return typeof(IModalityPlugin).Assembly;
            string candidate = Path.Combine(folder, name.Name + ".dll");
            if (File.Exists(candidate)) return LoadFromAssemblyPath(candidate);
            return null; // fall back to the default context (framework, host dependencies)
        }
    }
}
