using System.Diagnostics;
using System.IO.Compression;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace Llama3.Multimodal.Demo.Tests;

/// <summary>
/// No library package carries the demo: pack every library project under src/, open each .nupkg, read the type
/// definitions of its assemblies (metadata only, nothing loaded) and check that none is a demo type, that no namespace is
/// the demo's, and that no package depends on the demo.
/// </summary>
public class LibraryPackageTests
{
#if DEBUG
    const string Configuration = "Debug";
#else
    const string Configuration = "Release";
#endif

    static readonly string[] Libraries =
    {
        "src/Text/Llama3.Multimodal.Text.csproj", "src/Vision/Llama3.Multimodal.Vision.csproj", "src/Video/Llama3.Multimodal.Video.csproj",
        "src/Speech/Llama3.Multimodal.Speech.csproj", "src/Training/Llama3.Multimodal.Training.csproj", "src/Extensions.AI/Llama3.Multimodal.Extensions.AI.csproj",
        "src/Server/Llama3.Multimodal.Server.csproj",
    };

    static string RepoRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "Llama3.Multimodal.sln"))) d = d.Parent;
        return d?.FullName ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Namespace-qualified names of the types defined in an assembly image.</summary>
    static List<(string Namespace, string Name)> TypesOf(Stream dll)
    {
        using var ms = new MemoryStream();
        dll.CopyTo(ms);
        ms.Position = 0;
        using var pe = new PEReader(ms);
        var md = pe.GetMetadataReader();
        return md.TypeDefinitions.Select(h => md.GetTypeDefinition(h)).Select(t => (md.GetString(t.Namespace), md.GetString(t.Name))).ToList();
    }

    [Fact]
    public async Task NoLibraryPackageContainsADemoType()
    {
        string root = RepoRoot(), feed = Directory.CreateTempSubdirectory("l3mm-nupkg").FullName;
        try
        {
            foreach (var proj in Libraries)
            {
                var psi = new ProcessStartInfo("dotnet", $"pack {Path.Combine(root, proj)} --no-build -c {Configuration} -o {feed} -p:PackageVersion=0.0.0-check -nologo")
                    { WorkingDirectory = root, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
                using var p = Process.Start(psi)!;
                var o = p.StandardOutput.ReadToEndAsync();
                var e = p.StandardError.ReadToEndAsync();
                using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(10));
                await p.WaitForExitAsync(cts.Token);
                Assert.True(p.ExitCode == 0, $"dotnet pack {proj}:\n{await o}{await e}");
            }
            var demoTypes = typeof(DemoData).Assembly.GetTypes()
                .Where(t => t.Namespace?.StartsWith("Llama3.Multimodal.Demo", StringComparison.Ordinal) == true && !t.Name.Contains('<')).Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            Assert.Contains("ImageDataMaker", demoTypes);
            var packages = Directory.GetFiles(feed, "*.nupkg");
            Assert.Equal(Libraries.Length, packages.Length);
            foreach (var pkg in packages)
            {
                using var zip = ZipFile.OpenRead(pkg);
                string nuspec = new StreamReader(zip.Entries.Single(x => x.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open()).ReadToEnd();
                Assert.DoesNotContain("Llama3.Multimodal.Demo", nuspec);
                var dlls = zip.Entries.Where(x => x.FullName.StartsWith("lib/", StringComparison.Ordinal) && x.FullName.EndsWith(".dll", StringComparison.Ordinal)).ToList();
                Assert.NotEmpty(dlls);
                foreach (var dll in dlls)
                {
                    using var s = dll.Open();
                    var types = TypesOf(s);
                    Assert.True(types.Count > 1, $"{pkg}: {dll.FullName} defines no types");
                    var bad = types.Where(t => t.Namespace.StartsWith("Llama3.Multimodal.Demo", StringComparison.Ordinal) || t.Namespace.EndsWith(".Synthetic", StringComparison.Ordinal)
                        || demoTypes.Contains(t.Name)).Select(t => $"{t.Namespace}.{t.Name}").ToList();
                    Assert.True(bad.Count == 0, $"{Path.GetFileName(pkg)} {dll.FullName} holds demo types: {string.Join(", ", bad)}");
                }
            }
        }
        finally { Llama3.Multimodal.Tests.Shared.TestTemp.Delete(feed); }
    }
}
