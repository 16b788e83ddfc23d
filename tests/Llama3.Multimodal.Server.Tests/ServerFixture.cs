using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Server.Tests;

/// <summary>The repository's shipped files (demo models and media).</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, "assets", "models", "demo"))) return d.FullName;
        throw new DirectoryNotFoundException("assets/models/demo not found above the test binaries.");
    }

    public static string Demo(string name) => Path.Combine(Root, "assets", "models", "demo", name);
    public static string Image(int i) => Path.Combine(Root, "assets", "demo", "images", $"{i:000000}.png");
    public static string Wav(int i) => Path.Combine(Root, "assets", "demo", "speech", $"{i:000000}.wav");
    public static string Mp4(int i) => Path.Combine(Root, "assets", "demo", "videos", $"{i:000000}.mp4");
}

/// <summary>
/// One server for the tests of a class: a tiny random text model ("tiny"), the shipped demo vision model ("vision"), the
/// shipped demo speech model ("speech") and the shipped demo video model ("video"), on a free loopback port.
/// </summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public OpenAIServer Server { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public VisionLanguageModel Vision { get; private set; } = null!;
    public SpeechLanguageModel Speech { get; private set; } = null!;
    public VideoLanguageModel Video { get; private set; } = null!;
    public LlamaForCausalLM Text { get; } = ContinuousBatcherTests.NewTiny();

    public async Task InitializeAsync()
    {
        Vision = VisionLanguageModel.FromPretrained(Repo.Demo("vision"));
        Speech = SpeechLanguageModel.FromPretrained(Repo.Demo("speech"));
        Video = VideoLanguageModel.FromPretrained(Repo.Demo("video"));
        var models = new List<ServedModel>
        {
            ServedModel.FromText("tiny", Text, maxBatch: 4),
            ServedModel.FromVision("vision", Vision, maxBatch: 4),
            ServedModel.FromSpeech("speech", Speech, maxBatch: 4),
            ServedModel.FromVideo("video", Video, maxBatch: 4),
        };
        Server = await OpenAIServer.StartAsync(models, new OpenAIServerOptions { Port = 0, MaxQueue = 64, MaxBatch = 4, MaxBodyBytes = 4 << 20 }, ownsModels: true);
        Http = new HttpClient { BaseAddress = Server.BaseAddress, Timeout = TimeSpan.FromSeconds(120) };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        Vision.Dispose();
        Speech.Dispose();
        Video.Dispose();
        Text.Dispose();
    }

    public async Task<(int Status, JsonElement Body, HttpResponseMessage Response)> PostJson(string path, string json)
    {
        var r = await Http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        string text = await r.Content.ReadAsStringAsync();
        return ((int)r.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone(), r);
    }

    public static string DataUrl(string path) => "data:image/png;base64," + Convert.ToBase64String(File.ReadAllBytes(path));

    /// <summary>A clip made by ffmpeg (its test pattern, <paramref name="seconds"/> long) in a fresh temporary folder.</summary>
    public static string Clip(double seconds = 1)
    {
        string dir = Llama3.Multimodal.Tests.Shared.TestTemp.NewDir("l3mm-server-tests");
        string clip = Path.Combine(dir, "clip.mp4");
        var psi = new System.Diagnostics.ProcessStartInfo("ffmpeg",
            $"-v error -y -f lavfi -i testsrc=size=96x64:rate=8 -t {seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)} -pix_fmt yuv420p {clip}") { UseShellExecute = false };
        using var p = System.Diagnostics.Process.Start(psi)!;
        p.WaitForExit();
        if (p.ExitCode != 0 || !File.Exists(clip)) throw new InvalidOperationException($"ffmpeg could not make {clip}.");
        return clip;
    }
}
