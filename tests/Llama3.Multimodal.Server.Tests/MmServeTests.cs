using System.Diagnostics;
using System.Text.RegularExpressions;
using Llama3.Multimodal.Tools.Mm;

namespace Llama3.Multimodal.Server.Tests;

/// <summary><c>mm serve</c> as people start it, and the README's curl examples run against it.</summary>
public class MmServeTests
{
    [Fact]
    public void HelpNamesEveryOption()
    {
        var o = new StringWriter();
        Assert.Equal(0, MmCli.Run(new[] { "serve", "--help" }, o, new StringWriter()));
        foreach (var option in new[] { "--model", "--host", "--port", "--api-key", "--max-queue", "--max-batch", "--context", "--max-body-mb", "--max-media-mb", "--allow-local-media" })
            Assert.Contains(option, o.ToString());
        var err = new StringWriter();
        Assert.Equal(2, MmCli.Run(new[] { "serve", "--host", "0.0.0.0", "--port", "0" }, new StringWriter(), err));
        Assert.Contains("--api-key", err.ToString());
        err = new StringWriter();
        Assert.Equal(2, MmCli.Run(new[] { "serve", "--model", "/no/such/folder", "--port", "0" }, new StringWriter(), err));
        Assert.Contains("/no/such/folder", err.ToString());
    }

    /// <summary>The first bash block of README's "Serving" section, with the lines that start a server left out.</summary>
    static string ReadmeCurlScript()
    {
        string readme = File.ReadAllText(Path.Combine(Repo.Root, "README.md"));
        int section = readme.IndexOf("## Serving", StringComparison.Ordinal);
        Assert.True(section >= 0, "README has no Serving section");
        var block = Regex.Match(readme[section..], "```bash\n(.*?)```", RegexOptions.Singleline);
        Assert.True(block.Success);
        return string.Join("\n", block.Groups[1].Value.Split('\n').Where(l => !l.StartsWith("mm serve", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task ReadmeCurlExamplesRunAgainstMmServe()
    {
        string script = ReadmeCurlScript();
        Assert.Contains("curl", script);
        string mm = Path.Combine(AppContext.BaseDirectory, "mm.dll");
        var psi = new ProcessStartInfo("dotnet", $"\"{mm}\" serve --port 0") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Repo.Root };
        using var server = Process.Start(psi)!;
        var stderr = server.StandardError.ReadToEndAsync();
        try
        {
            string? line;
            string? address = null;
            var readTask = Task.Run(async () =>
            {
                while ((line = await server.StandardOutput.ReadLineAsync()) is not null)
                    if (Regex.Match(line, @"listening on (http://\S+)") is { Success: true } m) return m.Groups[1].Value;
                return null;
            });
            if (await Task.WhenAny(readTask, Task.Delay(TimeSpan.FromMinutes(3))) == readTask) address = await readTask;
            Assert.True(address is not null, "mm serve did not start: " + (server.HasExited ? await stderr : ""));
            var uri = new Uri(address!);
            string body = script.Replace("http://127.0.0.1:8080", $"http://127.0.0.1:{uri.Port}");
            string file = Path.Combine(Llama3.Multimodal.Tests.Shared.TestTemp.NewDir("l3mm-serve"), "readme.sh");
            File.WriteAllText(file, "set -euo pipefail\n" + body);
            var run = new ProcessStartInfo("bash", file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Repo.Root };
            using var sh = Process.Start(run)!;
            var outTask = sh.StandardOutput.ReadToEndAsync();
            var errTask = sh.StandardError.ReadToEndAsync();
            Assert.True(sh.WaitForExit(180_000), "the README examples did not finish");
            string output = await outTask;
            Assert.True(sh.ExitCode == 0, $"exit {sh.ExitCode}: {await errTask}\n{output}");
            Assert.Contains("\"object\":\"list\"", output);
            Assert.Contains("\"id\":\"vision\"", output);
            Assert.Contains("\"content\":\"two large red diamonds\"", output);
            Assert.Contains("\"object\":\"chat.completion.chunk\"", output);
            Assert.Contains("data: [DONE]", output);
            Assert.Contains("{\"text\":\"the triangle moves right then it turns green\"}", output);
            Assert.Contains("\"status\":\"ok\"", output);
        }
        finally
        {
            if (!server.HasExited) server.Kill(true);
            server.WaitForExit(10_000);
        }
    }
}
