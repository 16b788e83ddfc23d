using System.CommandLine;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Tools.Mm.Commands;

/// <summary>The sampling options every generating command shares: --max-new-tokens, --temperature, --top-p, --top-k, --seed, --num-beams.</summary>
internal sealed record GenerationCliOptions(Option<int> MaxNew, Option<double> Temperature, Option<double> TopP, Option<int> TopK, Option<long> Seed, Option<int> Beams)
{
    public static GenerationCliOptions Create() => new(
        new Option<int>("--max-new-tokens") { Description = "most tokens to generate", DefaultValueFactory = _ => 128 },
        new Option<double>("--temperature") { Description = "0 = greedy", DefaultValueFactory = _ => 0.0 },
        new Option<double>("--top-p") { Description = "nucleus sampling threshold (1 = off)", DefaultValueFactory = _ => 1.0 },
        new Option<int>("--top-k") { Description = "keep the k most likely tokens (0 = off)", DefaultValueFactory = _ => 0 },
        new Option<long>("--seed") { Description = "sampling seed", DefaultValueFactory = _ => 0 },
        new Option<int>("--num-beams") { Description = "beam search width (1 = off; needs temperature 0; the text appears when the search ends)", DefaultValueFactory = _ => 1 });

    public void AddTo(Command c) { c.Options.Add(MaxNew); c.Options.Add(Temperature); c.Options.Add(TopP); c.Options.Add(TopK); c.Options.Add(Seed); c.Options.Add(Beams); }

    public GenerationOptions Read(ParseResult p) => new GenerationOptions
    {
        MaxNewTokens = p.GetValue(MaxNew), Temperature = p.GetValue(Temperature), TopP = p.GetValue(TopP), TopK = p.GetValue(TopK), Seed = p.GetValue(Seed), NumBeams = p.GetValue(Beams),
    }.Validate();
}
