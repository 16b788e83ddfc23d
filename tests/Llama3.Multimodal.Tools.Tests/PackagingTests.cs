using System.Diagnostics;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Tools.Tests;

/// <summary>
/// The NuGet packages work for a consumer: pack Text and Vision into a local folder feed, create a fresh console app
/// outside the repository that references them from that feed only, build it (the TorchSharp native fix comes with the
/// Text package), and caption a shipped sample image with the shipped demo model.
/// </summary>
public class PackagingTests
{
#if DEBUG
    const string Configuration = "Debug";
#else
    const string Configuration = "Release";
#endif

    static string RepoRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "Llama3.Multimodal.sln"))) d = d.Parent;
        return d?.FullName ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }

    static (int Code, string Out) Dotnet(string args, string cwd, int timeoutSeconds = 600)
    {
        var psi = new ProcessStartInfo("dotnet", args) { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        // Not inside the repository's build: a consumer's environment.
        psi.Environment.Remove("MSBuildExtensionsPath");
        psi.Environment.Remove("MSBUILD_EXE_PATH");
        psi.Environment.Remove("MSBuildSDKsPath");
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000)) { p.Kill(true); Assert.Fail($"dotnet {args} timed out"); }
        return (p.ExitCode, o.Result + e.Result);
    }

    static string? GitHead(string root)
    {
        try
        {
            var psi = new ProcessStartInfo("git", "rev-parse HEAD") { WorkingDirectory = root, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var p = Process.Start(psi)!;
            string o = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 && o.Length == 40 ? o : null;
        }
        catch (System.ComponentModel.Win32Exception) { return null; }   // no git installed
    }

    [Fact]
    public void PackedLibrariesCaptionAnImageInAFreshApp()
    {
        string work = Directory.CreateTempSubdirectory("l3mm-pack").FullName;   // about 1.4 GB of restored packages
        try { PackAndCaptionInAFreshApp(work); }
        finally { Llama3.Multimodal.Tests.Shared.TestTemp.Delete(work); }
    }

    void PackAndCaptionInAFreshApp(string work)
    {
        string root = RepoRoot();
        string feed = Path.Combine(work, "feed");
        string version = "0.1.0-t" + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff");
        foreach (var proj in new[] { "src/Text/Llama3.Multimodal.Text.csproj", "src/Vision/Llama3.Multimodal.Vision.csproj" })
        {
            var r = Dotnet($"pack {Path.Combine(root, proj)} --no-build -c {Configuration} -o {feed} -p:PackageVersion={version}", root);
            Assert.True(r.Code == 0, r.Out);
        }
        Assert.True(File.Exists(Path.Combine(feed, $"Llama3.Multimodal.Vision.{version}.nupkg")));
        Assert.True(File.Exists(Path.Combine(feed, $"Llama3.Multimodal.Vision.{version}.snupkg")));
        // Package metadata: licence expression, readme, dependencies, and the commit packed (when built from a git clone).
        using (var zip = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, $"Llama3.Multimodal.Vision.{version}.nupkg")))
        {
            var entry = zip.GetEntry("Llama3.Multimodal.Vision.nuspec")!;
            string nuspec = new StreamReader(entry.Open()).ReadToEnd();
            Assert.Contains("<license type=\"expression\">MIT</license>", nuspec);
            Assert.Contains("<readme>README.md</readme>", nuspec);
            Assert.Contains($"<dependency id=\"Llama3.Multimodal.Text\" version=\"{version}\"", nuspec);
            var git = GitHead(root);
            if (git is not null) Assert.Contains($"commit=\"{git}\"", nuspec);
        }
        using (var zip = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, $"Llama3.Multimodal.Text.{version}.nupkg")))
        {
            string nuspec = new StreamReader(zip.GetEntry("Llama3.Multimodal.Text.nuspec")!.Open()).ReadToEnd();
            Assert.Contains("<dependency id=\"TorchSharp\" version=\"0.107.0\"", nuspec);   // the plain package: apps pick the native bundle
            Assert.DoesNotContain("TorchSharp-cpu", nuspec);
            Assert.NotNull(zip.GetEntry("buildTransitive/Llama3.Multimodal.Text.targets"));  // the libstdc++ fix travels with it
        }

        // The shipped demo model and one of the shipped sample images.
        string model = Path.Combine(root, "assets", "models", "demo", "vision");
        string png = Path.Combine(root, "assets", "demo", "images", "000002.png");

        string app = Path.Combine(work, "app");
        Directory.CreateDirectory(app);
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(app, "app.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <NoWarn>NU1603</NoWarn>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Llama3.Multimodal.Vision" Version="{version}" />
                <PackageReference Include="TorchSharp-cpu" Version="0.107.0" />
                <PackageReference Include="SkiaSharp.NativeAssets.Linux.NoDependencies" Version="3.119.4" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using Llama3.Multimodal.Text;
            using Llama3.Multimodal.Vision;
            using static TorchSharp.torch;
            Console.Error.WriteLine(DeviceSpec.Backend());
            using var vlm = VisionLanguageModel.FromPretrained(args[0], CPU, ScalarType.Float32);
            Console.WriteLine("CAPTION:" + vlm.Caption(args[1], options: new GenerationOptions { MaxNewTokens = 24 }));
            """);
        var run = Dotnet($"run -c Release -- {model} {png}", app);
        Assert.True(run.Code == 0, run.Out);
        string line = run.Out.Split('\n').Single(l => l.StartsWith("CAPTION:", StringComparison.Ordinal));

        using var vlm = VisionLanguageModel.FromPretrained(model);
        string expected = vlm.Caption(png, options: new Text.GenerationOptions { MaxNewTokens = 24 });
        Assert.False(string.IsNullOrWhiteSpace(expected));
        Assert.Equal("CAPTION:" + expected, line.TrimEnd('\r'));
    }

    [Fact]
    public void ToolPackagesInstallAndRun()
    {
        string root = RepoRoot();
        string work = Directory.CreateTempSubdirectory("l3mm-tools").FullName;
        try
        {
            string feed = Path.Combine(work, "feed"), tools = Path.Combine(work, "tools");
            string version = "0.1.0-t" + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff");
            foreach (var (proj, id) in new[] { ("src/Tools/Mm/Llama3.Multimodal.Tools.Mm.csproj", "Llama3.Multimodal.Tools.Mm"),
                                               ("src/Tools/MmTrain/Llama3.Multimodal.Tools.MmTrain.csproj", "Llama3.Multimodal.Tools.MmTrain") })
            {
                var pack = Dotnet($"pack {Path.Combine(root, proj)} --no-build -c {Configuration} -o {feed} -p:PackageVersion={version}", root);
                Assert.True(pack.Code == 0, pack.Out);
                var install = Dotnet($"tool install --tool-path {tools} --add-source {feed} {id} --version {version}", work);
                Assert.True(install.Code == 0, install.Out);
            }
            (int Code, string Out) Tool(string name, string args)
            {
                var psi = new ProcessStartInfo(Path.Combine(tools, name), args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                using var p = Process.Start(psi)!;
                var o = p.StandardOutput.ReadToEndAsync();
                var e = p.StandardError.ReadToEndAsync();
                if (!p.WaitForExit(300_000)) { p.Kill(true); Assert.Fail($"{name} {args} timed out"); }
                return (p.ExitCode, o.Result + e.Result);
            }
            // The installed tools load libtorch (with the native fix) and run real commands.
            string model = Path.Combine(work, "tiny");
            var init = Tool("mm", $"init --config tiny --seed 2 --out {model}");
            Assert.True(init.Code == 0, init.Out);
            var gen = Tool("mm", $"generate --model {model} --prompt Hello --max-new-tokens 3");
            Assert.True(gen.Code == 0, gen.Out);
            var caption = Tool("mm", $"generate --model {Path.Combine(root, "assets", "models", "demo", "vision")} --image {Path.Combine(root, "assets", "demo", "images", "000002.png")} --prompt \"\" --max-new-tokens 24");
            Assert.True(caption.Code == 0, caption.Out);
            Assert.Matches(@"\b(circle|square|triangle|diamond|star|cross|word|number)", caption.Out);   // a caption of the demo grammar
            var help = Tool("mm-train", "--help");
            Assert.True(help.Code == 0, help.Out);
            Assert.Contains("vision-stage2", help.Out);
        }
        finally { try { Directory.Delete(work, true); } catch (IOException) { } }
    }
}
