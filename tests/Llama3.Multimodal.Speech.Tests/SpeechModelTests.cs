using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech.Tests;

public class SpeechModelTests
{
    static readonly Lazy<SpeechLanguageModel> Tiny = new(() => SpeechLanguageModel.Create("tiny-speech", CPU, ScalarType.Float32, seed: 5));

    [Fact]
    public void FromTextModelKeepsTheDecoderAndDrawsTheSpeechModuleAsCreateDoes()
    {
        var preset = SpeechPresets.Get("tiny-speech");
        using var text = LlamaForCausalLM.Create(preset.Text, CPU, ScalarType.Float32).InitializeWeights(11);
        using var m = SpeechLanguageModel.FromTextModel(text, preset, seed: 5);
        using var ids = torch.tensor(new long[] { 128000, 791, 3363, 374 }).unsqueeze(0);
        using (var a = text.Forward(ids)) using (var b = m.language_model.Forward(ids))
            Assert.True(a.equal(b).all().item<bool>(), "the decoder computes what the text model does");
        // the speech module is the one SpeechModel.ForTextModel builds and Create draws for the same seed
        using var module = SpeechModel.ForTextModel(text, preset, seed: 5);
        var created = Tiny.Value.speech_model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in module.named_parameters())
        {
            Assert.True(p.equal(created[name]).all().item<bool>(), name);
            Assert.True(p.equal(m.speech_model.get_parameter(name)!).all().item<bool>(), name);
        }
        // the adapter writes the decoder's width
        var narrow = preset.ForTextModel(preset.Text with { HiddenSize = 32, NumHeads = 2, NumKvHeads = 2 });
        Assert.Equal((32, 96), (narrow.Adapter.OutputDim, narrow.Adapter.InputDim));
        Assert.Same(preset.Encoder, narrow.Encoder);
    }

    [Fact]
    public void PromptEnclosesTheSpeechSpanInReservedTokens()
    {
        var m = Tiny.Value;
        Assert.Equal(128018, m.SpeechStartId);
        Assert.Equal(128019, m.SpeechEndId);
        var p = m.BuildPrompt(SpeechLanguageModel.AsrPrompt("English"), 7);
        Assert.Equal(m.SpeechStartId, p.Ids[p.SpeechOffset - 1]);
        Assert.Equal(m.SpeechEndId, p.Ids[p.SpeechOffset + 7]);
        Assert.Equal(1, p.Ids.Count(i => i == m.SpeechStartId));
        string text = m.Tokenizer.Decode(p.Ids);
        Assert.StartsWith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nRepeat after me in English:<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n<|reserved_special_token_10|>", text);
        Assert.EndsWith("<|reserved_special_token_11|><|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", text);
        Assert.Equal("Translate the following sentence into French:", SpeechLanguageModel.AstPrompt("French"));
    }

    [Fact]
    public void ACancelledRunStopsAtTheNextDecodeStepOrEncoderLayerAndCountsItsTokens()
    {
        var m = Tiny.Value;
        var samples = Enumerable.Range(0, 16000).Select(i => 0.3f * MathF.Sin(i * 0.05f)).ToArray();
        var options = new GenerationOptions { MaxNewTokens = 20, StopTokens = Array.Empty<int>() };
        var full = m.Run(samples, SpeechLanguageModel.AsrPrompt("English"), options);
        Assert.Equal(20, full.GeneratedTokens);
        Assert.Equal(m.BuildPrompt("Repeat after me in English:", (int)m.speech_model.OutputFrames(100)).Ids.Count, full.PromptTokens);

        // Cancelled at the third token: no fourth one is generated and the run ends with the cancellation.
        using var cts = new CancellationTokenSource();
        var seen = new List<int>();
        Assert.ThrowsAny<OperationCanceledException>(() => m.Run(samples, SpeechLanguageModel.AsrPrompt("English"), options, id =>
        {
            seen.Add(id);
            if (seen.Count == 3) cts.Cancel();
        }, cts.Token));
        Assert.Equal(3, seen.Count);

        // Set before the run, it stops the encoder before its first layer: nothing is generated.
        seen.Clear();
        Assert.ThrowsAny<OperationCanceledException>(() => m.Run(samples, "x", options, seen.Add, cts.Token));
        Assert.Empty(seen);
        using var scope = NewDisposeScope();
        var feats = torch.randn(1, 40, 80);
        Assert.ThrowsAny<OperationCanceledException>(() => m.speech_model.Forward(feats, torch.tensor(new long[] { 40 }), cts.Token));
    }

    [Fact]
    public void SpliceReplacesExactlyTheSpeechPositions()
    {
        using var _ = NewDisposeScope();
        var m = Tiny.Value;
        var p = m.BuildPrompt(SpeechLanguageModel.AstPrompt("German"), 5);
        var speech = torch.randn(1, 5, 64);
        using var noGrad = torch.no_grad();
        var emb = m.SpliceSpeech(p, speech);
        var plain = m.language_model.Embed(torch.tensor(p.Ids.Select(i => (long)i).ToArray()).unsqueeze(0));
        Assert.Equal(plain.shape, emb.shape);
        Assert.True(emb.narrow(1, p.SpeechOffset, 5).Same(speech));
        Assert.True(emb.narrow(1, 0, p.SpeechOffset).Same(plain.narrow(1, 0, p.SpeechOffset)));
        long after = p.SpeechOffset + 5;
        Assert.True(emb.narrow(1, after, p.Ids.Count - after).Same(plain.narrow(1, after, p.Ids.Count - after)));
        Assert.Throws<ArgumentException>(() => m.SpliceSpeech(p, torch.randn(1, 4, 64)));
        // The decoder reads the spliced speech: different speech, different next-token logits.
        var l1 = m.language_model.ForwardEmbeddings(emb);
        var l2 = m.language_model.ForwardEmbeddings(m.SpliceSpeech(p, speech * -1));
        Assert.False(l1.narrow(1, after, 1).allclose(l2.narrow(1, after, 1)));
    }

    [Fact]
    public void TranscribeRunsOnRealSpeechAndReportsTiming()
    {
        var m = Tiny.Value;
        var r = m.Transcribe(TestAudio.SharedSpeech, "English", new GenerationOptions { MaxNewTokens = 6 });
        Assert.InRange(r.AudioSeconds, 2.0, 10.0);
        Assert.Single(r.Segments);
        Assert.InRange(r.GeneratedTokens, 1, 6);
        Assert.True(r.LoadSeconds > 0 && r.FeatureSeconds > 0 && r.EncoderSeconds > 0 && r.PrefillSeconds > 0);
        Assert.True(r.TotalSeconds >= r.LoadSeconds + r.FeatureSeconds + r.EncoderSeconds);
        Assert.NotNull(r.Text);
    }

    [Fact]
    public void SaveAndFromPretrainedRoundTrip()
    {
        using var _ = NewDisposeScope();
        var m = Tiny.Value;
        using (torch.no_grad()) { m.speech_model.encoder.feature_norm.mean.fill_(0.25); m.speech_model.encoder.feature_norm.var.fill_(2.0); }
        string dir = TestAudio.TempDir();
        m.Save(dir);
        using var back = SpeechLanguageModel.FromPretrained(dir, CPU, ScalarType.Float32);
        var keys = back.named_parameters().Select(p => p.name).ToList();
        Assert.Contains("speech_model.encoder.layers.1.conv.depthwise_conv.weight", keys);
        Assert.Contains("speech_model.encoder.feature_norm.mean", keys);
        Assert.Contains("speech_model.adapter.output_proj.weight", keys);
        Assert.Contains("language_model.model.layers.0.self_attn.q_proj.weight", keys);
        var audio = AudioLoader.Load(TestAudio.SharedSpeech)[..16000];
        Assert.True(m.EncodeSpeech(audio).Same(back.EncodeSpeech(audio)));
        Assert.Equal(0.25f, back.speech_model.encoder.feature_norm.mean[3].item<float>());
        var opts = new GenerationOptions { MaxNewTokens = 4 };
        string wav = TestAudio.WriteWav(dir, "clip.wav", audio, 16000);
        Assert.Equal(m.Transcribe(wav, options: opts).Text, back.Transcribe(wav, options: opts).Text);
        using (torch.no_grad()) { m.speech_model.encoder.feature_norm.Reset(); }

        // Strict config and strict keys.
        string cfg = File.ReadAllText(Path.Combine(dir, "config.json"));
        File.WriteAllText(Path.Combine(dir, "config.json"), cfg.Replace("\"num_layers\"", "\"num_layerz\""));
        var e = Assert.Throws<ConfigException>(() => SpeechLanguageModel.FromPretrained(dir));
        Assert.Contains("num_layerz", e.Message);
    }

    [Fact]
    public void LongAudioIsSplitIntoSegmentsOfAtMostSixtySeconds()
    {
        var samples = new float[16000 * 130 + 7];
        var segs = AudioLoader.Segments(samples);
        Assert.Equal(3, segs.Count);
        Assert.All(segs, s => Assert.True(s.Length <= 16000 * 60));
        Assert.Equal(samples.Length, segs.Sum(s => s.Length));
        Assert.Single(AudioLoader.Segments(new float[16000 * 60]));
    }

    [Fact]
    public void UnknownPresetAndMismatchedWidthsAreConfigErrors()
    {
        Assert.Contains("tiny-speech", Assert.Throws<ConfigException>(() => SpeechPresets.Get("huge")).Message);
        var c = SpeechPresets.Get("tiny-speech");
        var bad = c with { Adapter = c.Adapter with { OutputDim = 65 } };
        Assert.Contains("output_dim 65", Assert.Throws<ConfigException>(() => bad.Validate()).Message);
    }

    [Fact]
    public void Bf16ModelEncodesSpeech()
    {
        using var _ = NewDisposeScope();
        using var m = SpeechLanguageModel.Create("tiny-speech", CPU, ScalarType.BFloat16, seed: 5);
        Assert.Equal(ScalarType.Float32, m.speech_model.encoder.feature_norm.mean.dtype);
        var e = m.EncodeSpeech(AudioLoader.Load(TestAudio.SharedSpeech)[..16000]);
        Assert.Equal(ScalarType.BFloat16, e.dtype);
        Assert.Equal(new long[] { 1, 13, 64 }, e.shape);                 // 100 frames → 25 → 13
        Assert.True(e.to(ScalarType.Float32).isfinite().all().item<bool>());
        var f32 = Tiny.Value.EncodeSpeech(AudioLoader.Load(TestAudio.SharedSpeech)[..16000]);
        Assert.True(e.to(ScalarType.Float32).allclose(f32, rtol: 0.1, atol: 0.1));
    }
}
