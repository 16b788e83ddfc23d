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
        foreach (var option in new[] { "--model", "--host", "--port", "--api-key", "--max-queue", "--max-batch", "--context", "--max-body-mb", "--max-media-mb", "--allow-local-media", "--quantize", "--keep-embeddings" })
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
            Assert.Contains("\"content\":\"a yellow triangle turns orange then it turns yellow\"", output);
            Assert.Contains("\"object\":\"chat.completion.chunk\"", output);
            Assert.Contains("data: [DONE]", output);
            Assert.Contains("{\"text\":\"the triangle moves right then it turns green\",\"usage\":{\"type\":\"tokens\"", output);
            Assert.Contains("\"status\":\"ok\"", output);
        }
        finally
        {
            if (!server.HasExited) server.Kill(true);
            server.WaitForExit(10_000);
        }
    }
}

/// <summary>Model folders of each kind are detected from their config and served under the folder name.</summary>
public class ModelFolderTests
{
    [Fact]
    public async Task AModelLoadedWithQ8WeightsServesTheSameCaption()
    {
        var model = ServedModel.Load(Repo.Demo("vision"), new Llama3.Multimodal.Text.LoadOptions { Quantize = Llama3.Multimodal.Text.WeightQuantization.Q8 }, maxBatch: 2);
        await using var server = await OpenAIServer.StartAsync(new[] { model }, new OpenAIServerOptions { Port = 0 }, ownsModels: true);
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        string json = $$$"""{"model":"vision","max_tokens":24,"temperature":0,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"{{{ServerFixture.DataUrl(Repo.Image(2))}}}"}}]}]}""";
        var r = await http.PostAsync("v1/chat/completions", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, body);
        Assert.Contains("\"content\":\"two large red diamonds\"", body);
    }

    [Fact]
    public async Task EachKindIsDetectedLoadedAndServed()
    {
        Assert.Equal(ServedModelKind.Vision, ServedModel.Detect(Repo.Demo("vision")));
        Assert.Equal(ServedModelKind.Speech, ServedModel.Detect(Repo.Demo("speech")));
        Assert.Equal(ServedModelKind.Video, ServedModel.Detect(Repo.Demo("video")));
        Assert.Equal(ServedModelKind.Vision, ServedModel.Detect(Repo.Demo("vision-instruct")));
        Assert.Equal(ServedModelKind.Text, ServedModel.Detect(Repo.Demo("text-instruct")));
        // `mm serve` without --model serves the instruction-following image model first.
        Assert.Equal("vision-instruct", Path.GetFileName(Llama3.Multimodal.Tools.Mm.Commands.ServeCommand.DemoModels()[0]));
        string text = Path.Combine(Llama3.Multimodal.Tests.Shared.TestTemp.NewDir("l3mm-serve"), "my-text");
        Assert.Equal(0, MmCli.Run(new[] { "init", "--config", "tiny", "--seed", "3", "--out", text }, new StringWriter(), new StringWriter()));
        Assert.Equal(ServedModelKind.Text, ServedModel.Detect(text));
        string notModel = Llama3.Multimodal.Tests.Shared.TestTemp.NewDir("l3mm-serve");
        File.WriteAllText(Path.Combine(notModel, "config.json"), """{"model_type":"bert"}""");
        var e = Assert.Throws<Llama3.Multimodal.Text.ConfigException>(() => ServedModel.Detect(notModel));
        Assert.Contains("bert", e.Message);

        var models = new[] { ServedModel.Load(text, maxBatch: 2), ServedModel.Load(Repo.Demo("video"), maxBatch: 2) };
        await using var server = await OpenAIServer.StartAsync(models, new OpenAIServerOptions { Port = 0 }, ownsModels: true);
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        Assert.Equal(new[] { "my-text", "video" }, server.Models.Select(m => m.Id));
        async Task<(int, string)> Post(string json)
        {
            var r = await http.PostAsync("v1/chat/completions", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
            return ((int)r.StatusCode, await r.Content.ReadAsStringAsync());
        }
        var (s1, b1) = await Post("""{"model":"my-text","messages":[{"role":"user","content":"Hi"}],"max_tokens":3,"temperature":0}""");
        Assert.True(s1 == 200, b1);
        var (s2, b2) = await Post($$$"""{"model":"video","max_tokens":8,"temperature":0,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"{{{ServerFixture.DataUrl(Repo.Image(2))}}}"}}]}]}""");
        Assert.True(s2 == 200, b2);
        var (s3, _) = await Post("""{"model":"video","max_tokens":3,"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}}]}]}""");
        Assert.Equal(400, s3);
    }
}
