// Transcribe (or translate) an audio file with a speech model.
//   dotnet run --project samples/Transcribe -- MODEL_DIR audio.wav [target-language]
using Llama3.Multimodal.Speech;
using static TorchSharp.torch;

if (args.Length < 2) { Console.Error.WriteLine("usage: Transcribe MODEL_DIR AUDIO [TARGET_LANGUAGE]"); return 2; }
using var model = SpeechLanguageModel.FromPretrained(args[0], CPU, ScalarType.Float32);
SpeechResult r = args.Length > 2 ? model.Translate(args[1], args[2]) : model.Transcribe(args[1]);
Console.WriteLine(r.Text);
Console.Error.WriteLine($"{r.AudioSeconds:F1} s of audio in {r.TotalSeconds:F2} s (real-time factor {r.TotalSeconds / Math.Max(r.AudioSeconds, 1e-9):F3})");
return 0;
