using System.Diagnostics;
using Llama3.Multimodal.Tools.Mm;
using Llama3.Multimodal.Vision;
using SkiaSharp;

namespace Llama3.Multimodal.Tools.Tests;

/// <summary>
/// The NuGet packages work for a consumer: pack Text and Vision into a local folder feed, create a fresh console app
/// outside the repository that references them from that feed only, build it (the TorchSharp native fix comes with the
/// Text package), and caption an image with it.
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

    [Fact]
    public void PackedLibrariesCaptionAnImageInAFreshApp()
    {
        string root = RepoRoot();
        string work = Directory.CreateTempSubdirectory("l3mm-pack").FullName;
        string feed = Path.Combine(work, "feed");
        string version = "0.1.0-t" + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff");
        foreach (var proj in new[] { "src/Text/Llama3.Multimodal.Text.csproj", "src/Vision/Llama3.Multimodal.Vision.csproj" })
        {
            var r = Dotnet($"pack {Path.Combine(root, proj)} --no-build -c {Configuration} -o {feed} -p:PackageVersion={version}", root);
            Assert.True(r.Code == 0, r.Out);
        }
        Assert.True(File.Exists(Path.Combine(feed, $"Llama3.Multimodal.Vision.{version}.nupkg")));

        // A model and an image.
        string model = Path.Combine(work, "model");
        var init = new StringWriter();
        Assert.Equal(0, MmCli.Run(new[] { "vision-init", "--config", "tiny-vision", "--seed", "3", "--out", model }, init, init));
        string png = Path.Combine(work, "shape.png");
        using (var bmp = new SKBitmap(80, 60))
        {
            using (var c = new SKCanvas(bmp)) { c.Clear(SKColors.White); using var paint = new SKPaint { Color = SKColors.Blue }; c.DrawRect(10, 10, 30, 30, paint); }
            using var img = SKImage.FromBitmap(bmp);
            File.WriteAllBytes(png, img.Encode(SKEncodedImageFormat.Png, 100).ToArray());
        }

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
            Console.WriteLine("CAPTION:" + vlm.Caption(args[1], "What is in the image?", new GenerationOptions { MaxNewTokens = 6 }));
            """);
        var run = Dotnet($"run -c Release -- {model} {png}", app);
        Assert.True(run.Code == 0, run.Out);
        string line = run.Out.Split('\n').Single(l => l.StartsWith("CAPTION:", StringComparison.Ordinal));

        using var vlm = VisionLanguageModel.FromPretrained(model);
        string expected = vlm.Caption(png, "What is in the image?", new Text.GenerationOptions { MaxNewTokens = 6 });
        Assert.Equal("CAPTION:" + expected, line.TrimEnd('\r'));
    }
}
