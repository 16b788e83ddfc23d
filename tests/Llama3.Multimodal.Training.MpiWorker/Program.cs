// Worker for the distributed tests. Modes:
//   allreduce OUT          every rank contributes rank+1; rank 0 writes the sums it received
//   train OUT STEPS B      each rank trains a tiny decoder on its B rows of a fixed 2B-row batch (world 2) or all rows (world 1)
//   die                    rank 1 exits at once; the others enter a collective and must not hang
//   engine OUT DEVICE MODE rank 0 writes the engine Collectives.ForDevice picks (or its error) and what it logged
//   recipe NAME CONFIG OUT [resume] runs the trainer of recipe NAME on CONFIG (over its defaults) on every rank
using System.Text.Json;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training.Distributed;
using TorchSharp;
using static TorchSharp.torch;

using var c = Collectives.FromEnvironment();
if (c is MpiCollectives mpi) mpi.Timeout = TimeSpan.FromSeconds(20);
switch (args[0])
{
    case "engine":
    {
        var notes = new List<string>();
        string result;
        try
        {
            var e = Collectives.ForDevice(c, args[2], args[3], notes.Add);
            result = e.Name;
        }
        catch (DistributedException ex) { result = "error: " + ex.Message; }
        if (c.Rank == 0) File.WriteAllText(args[1], JsonSerializer.Serialize(new { engine = result, notes }));
        c.Barrier();
        break;
    }
    case "allreduce":
    {
        var t = full(new long[] { 1000 }, (float)(c.Rank + 1));
        c.AllReduceSum(t);
        double s = c.AllReduceSum(c.Rank + 1.0);
        var b = c.Rank == 0 ? arange(5, dtype: ScalarType.Float32) : zeros(5);
        c.Broadcast(b, 0);
        c.Barrier();
        if (c.Rank == 0)
            File.WriteAllText(args[1], JsonSerializer.Serialize(new { world = c.WorldSize, engine = c.Name, first = t[0].item<float>(), last = t[999].item<float>(), scalar = s, bcast = b.data<float>().ToArray() }));
        else if (!b.equal(arange(5, dtype: ScalarType.Float32)).all().item<bool>()) Environment.Exit(5);
        break;
    }
    case "train":
    {
        int steps = int.Parse(args[2]), perRank = int.Parse(args[3]);
        var cfg = new LlamaConfig { HiddenSize = 32, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, IntermediateSize = 64, VocabSize = 97, MaxPositionEmbeddings = 64, RopeTheta = 10000 };
        // Different seeds per rank: the broadcast must make the starting weights equal.
        using var model = LlamaForCausalLM.Create(cfg).InitializeWeights(100 + c.Rank);
        var ps = model.parameters().ToList();
        DataParallel.BroadcastParameters(ps, c);
        var gen = new Generator(7, CPU);
        var all = randint(0, 97, new long[] { 2 * perRank, 12 }, generator: gen);
        var mine = c.WorldSize == 1 ? all : all.narrow(0, c.Rank * perRank, perRank);
        using var opt = optim.AdamW(ps, lr: 1e-2, beta1: 0.9, beta2: 0.95, weight_decay: 0.1);
        for (int s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var logits = model.Forward(mine.narrow(1, 0, 11));
            var loss = nn.functional.cross_entropy(logits.reshape(-1, 97), mine.narrow(1, 1, 11).reshape(-1));
            loss.backward();
            DataParallel.AverageGradients(ps, c);
            opt.step();
        }
        if (c.Rank == 0) model.Save(args[1]);
        break;
    }
    case "recipe":
    {
        using var rec = Llama3.Multimodal.Training.RecipeRegistry.Create(args[1]);
        var cfg = Llama3.Multimodal.Training.ConfigLoader.Load(rec.DefaultConfig(), args[2], Array.Empty<string>());
        using var t = new Llama3.Multimodal.Training.Trainer(Llama3.Multimodal.Training.RecipeRegistry.Create(args[1]), cfg, args[3],
            new Llama3.Multimodal.Training.TrainerOptions { Collectives = c, Progress = null, Plot = false, TensorBoard = false });
        t.Run(resume: args.Length > 4 && args[4] == "resume");
        break;
    }
    case "die":
    {
        if (c.Rank == 1) Environment.Exit(9);
        Thread.Sleep(500);
        c.AllReduceSum(ones(4));
        break;
    }
}
