// Transcribe (or translate) an audio file with a speech model: the shipped demo model, or another with --model DIR.
//   dotnet run --project samples/Transcribe -- [--model DIR] audio.wav [target-language]
using Llama3.Multimodal.Speech;
using static TorchSharp.torch;

return SampleArgs.Run(() =>
{
    var (modelDir, rest) = SampleArgs.Parse(args, "speech");
    if (rest.Count < 1) { Console.Error.WriteLine("usage: Transcribe [--model DIR] AUDIO [TARGET_LANGUAGE]"); return 2; }
    using var model = SpeechLanguageModel.FromPretrained(modelDir, CPU, ScalarType.Float32);
    SpeechResult r = rest.Count > 1 ? model.Translate(rest[0], rest[1]) : model.Transcribe(rest[0]);
    Console.WriteLine(r.Text);
    Console.Error.WriteLine($"{r.AudioSeconds:F1} s of audio in {r.TotalSeconds:F2} s (real-time factor {r.TotalSeconds / Math.Max(r.AudioSeconds, 1e-9):F3})");
    return 0;
});
