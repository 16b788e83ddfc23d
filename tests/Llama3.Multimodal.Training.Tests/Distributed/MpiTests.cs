using System.Diagnostics;
using System.Text.Json;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training.Distributed;
using TorchSharp;

namespace Llama3.Multimodal.Training.Tests.Distributed;

/// <summary>Data-parallel training over MPI with two local ranks (loopback), using Open MPI's mpirun.</summary>
public class MpiTests
{
    static string Worker => Path.Combine(AppContext.BaseDirectory, "Llama3.Multimodal.Training.MpiWorker.dll");

    internal static (int Code, string Out) Run(string file, string args, int timeoutSeconds = 120, bool mpi = true)
    {
        if (mpi && !File.Exists("/usr/bin/mpirun") && !File.Exists("/usr/local/bin/mpirun"))
            Assert.Fail("mpirun not found: install Open MPI (apt-get install openmpi-bin libopenmpi-dev); build/test.sh does this on a fresh machine.");
        var psi = new ProcessStartInfo(mpi ? "mpirun" : "dotnet", mpi ? $"--oversubscribe -np 2 dotnet {file} {args}" : $"{file} {args}")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        // mpirun refuses root unless told; the tests run as root in CI containers.
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        psi.Environment["OMPI_MCA_btl"] = "self,vader,tcp";
        psi.Environment["OMPI_MCA_btl_tcp_if_include"] = "lo";
        psi.Environment["OMPI_MCA_oob_tcp_if_include"] = "lo";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(true);
            Assert.Fail($"{psi.FileName} {psi.Arguments} did not finish within {timeoutSeconds} s");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    static string Temp() => Directory.CreateTempSubdirectory("l3mm-mpi").FullName;

    [Fact]
    public void AllReduceOfKnownTensorsGivesKnownSums()
    {
        string outFile = Path.Combine(Temp(), "ar.json");
        var (code, log) = Run(Worker, $"allreduce {outFile}");
        Assert.True(code == 0, log);
        using var doc = JsonDocument.Parse(File.ReadAllText(outFile));
        Assert.Equal(2, doc.RootElement.GetProperty("world").GetInt32());
        Assert.Equal(3f, doc.RootElement.GetProperty("first").GetSingle());
        Assert.Equal(3f, doc.RootElement.GetProperty("last").GetSingle());
        Assert.Equal(3.0, doc.RootElement.GetProperty("scalar").GetDouble());
        Assert.Equal(new float[] { 0, 1, 2, 3, 4 }, doc.RootElement.GetProperty("bcast").EnumerateArray().Select(e => e.GetSingle()));
    }

    [Fact]
    public void TwoRanksWithBatchBEqualOneProcessWithBatch2B()
    {
        string two = Temp(), one = Temp();
        var r2 = Run(Worker, $"train {two} 6 4");
        Assert.True(r2.Code == 0, r2.Out);
        var r1 = Run(Worker, $"train {one} 6 4", mpi: false);
        Assert.True(r1.Code == 0, r1.Out);
        using var a = LlamaForCausalLM.FromPretrained(one);
        using var b = LlamaForCausalLM.FromPretrained(two);
        var pb = b.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in a.named_parameters())
        {
            float diff = (p - pb[name]).abs().max().item<float>();
            Assert.True(diff < 1e-4f, $"{name}: {diff}");
        }
        // And training really moved the weights away from the broadcast start.
        using var start = LlamaForCausalLM.Create(a.Config).InitializeWeights(100);
        Assert.True((start.model.norm.weight - a.model.norm.weight).abs().max().item<float>() > 1e-3f);
    }

    [Fact]
    public void ARankThatDiesEndsTheJobInsteadOfHanging()
    {
        var sw = Stopwatch.StartNew();
        var (code, log) = Run(Worker, "die", timeoutSeconds: 90);
        Assert.NotEqual(0, code);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"took {sw.Elapsed}");
        Assert.Contains("exit", log, StringComparison.OrdinalIgnoreCase);
    }

    static string MmTrain => Path.Combine(AppContext.BaseDirectory, "mm-train.dll");

    static string DemoData()
    {
        string dir = Temp();
        Llama3.Multimodal.Demo.SyntheticText.Write(dir, 1, documents: 2000, dialogs: 400, pairs: 400);
        return dir;
    }

    static string Train(string data, string outDir, int steps, bool mpi, bool resume = false, bool zero1 = false)
    {
        var (code, log) = Run(MmTrain, $"text-pretrain --config {Path.Combine(data, "text-pretrain.json")} --out {outDir} --max-steps {steps} --threads 1 --set train.eval_every=0 --set train.save_every=2" + (resume ? " --resume" : "") + (zero1 ? " --zero1" : ""), mpi: mpi);
        Assert.True(code == 0, log);
        return log;
    }

    static void AssertSameWeights(string a, string b)
    {
        using var ra = CheckpointReader.Open(a);
        using var rb = CheckpointReader.Open(b);
        Assert.Equal(ra.Keys.OrderBy(k => k), rb.Keys.OrderBy(k => k));
        foreach (var k in ra.Keys)
        {
            using var x = ra.Read(k);
            using var y = rb.Read(k);
            float diff = (x - y).abs().max().item<float>();
            Assert.True(diff < 1e-5f, $"{k}: {diff}");
        }
    }

    [Fact]
    public void MmTrainWithTwoRanksEqualsOneProcessAndResumesAcrossWorldSizes()
    {
        string data = DemoData();
        string one = Temp(), two = Temp(), twoThenOne = Temp(), oneThenTwo = Temp();
        Train(data, one, 4, mpi: false);
        string log = Train(data, two, 4, mpi: true);
        Assert.Contains("2 rank(s)", log);
        string step4 = Path.Combine("checkpoints", "step-00000004");
        AssertSameWeights(Path.Combine(one, step4), Path.Combine(two, step4));
        // Only rank 0 writes: one metrics line per step.
        var lines = File.ReadLines(Path.Combine(two, "metrics.jsonl")).Where(l => l.Contains("\"loss\"")).Select(l => JsonDocument.Parse(l)).ToList();
        Assert.Equal(4, lines.Count);
        // Each step reports the gradient all-reduce: its time and the bytes of gradients reduced (every trained weight, f32).
        using (var m = LlamaForCausalLM.FromPretrained(Path.Combine(one, step4)))
            Assert.All(lines, l => Assert.Equal(m.parameters().Sum(p => p.numel()) * 4, l.RootElement.GetProperty("allreduce_bytes").GetInt64()));
        Assert.All(lines, l => Assert.True(l.RootElement.GetProperty("allreduce_s").GetDouble() > 0));

        Train(data, twoThenOne, 2, mpi: true);
        Assert.Contains("resumed from", Train(data, twoThenOne, 4, mpi: false, resume: true));
        AssertSameWeights(Path.Combine(one, step4), Path.Combine(twoThenOne, step4));
        Train(data, oneThenTwo, 2, mpi: false);
        Assert.Contains("resumed from", Train(data, oneThenTwo, 4, mpi: true, resume: true));
        AssertSameWeights(Path.Combine(one, step4), Path.Combine(oneThenTwo, step4));
    }

    [Fact]
    public void Zero1ShardsTheOptimizerStateWithoutChangingTheResult()
    {
        string data = DemoData();
        string one = Temp(), sharded = Temp(), resumed = Temp();
        Train(data, one, 4, mpi: false);
        string log = Train(data, sharded, 4, mpi: true, zero1: true);
        Assert.Matches(@"ZeRO-1: rank 0 keeps AdamW moments for \d+ of \d+", log);
        string step4 = Path.Combine("checkpoints", "step-00000004");
        AssertSameWeights(Path.Combine(one, step4), Path.Combine(sharded, step4));
        // The checkpoint still holds the full optimizer state, equal to the unsharded run's.
        using (var a = SafeTensorsFile.Open(Path.Combine(one, step4, "optimizer.safetensors")))
        using (var b = SafeTensorsFile.Open(Path.Combine(sharded, step4, "optimizer.safetensors")))
        {
            Assert.Equal(a.Entries.Keys.OrderBy(k => k), b.Entries.Keys.OrderBy(k => k));
            foreach (var k in a.Entries.Keys)
            {
                using var x = a.Read(k);
                using var y = b.Read(k);
                Assert.True((x - y).abs().max().item<float>() < 1e-6f, k);
            }
        }
        // A sharded run's checkpoint resumes in one process.
        Train(data, resumed, 2, mpi: true, zero1: true);
        Train(data, resumed, 4, mpi: false, resume: true);
        AssertSameWeights(Path.Combine(one, step4), Path.Combine(resumed, step4));
    }

    [Fact]
    public void ShardsAreDisjointAndCoverEverything()
    {
        var s0 = DataParallel.Shard(10, 0, 3).ToList();
        var s1 = DataParallel.Shard(10, 1, 3).ToList();
        var s2 = DataParallel.Shard(10, 2, 3).ToList();
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), s0.Concat(s1).Concat(s2).OrderBy(x => x));
        Assert.Empty(s0.Intersect(s1));
        Assert.Equal(1, Collectives.LaunchedWorldSize() == 1 ? 1 : 0);
    }

    [Fact]
    public void EngineChoiceKeepsMpiForCpuAndExplainsWhyNcclIsNotUsed()
    {
        string Engine(string device, string mode)
        {
            string file = Path.Combine(Temp(), "engine.json");
            var (code, output) = Run(Worker, $"engine {file} {device} {mode}");
            Assert.True(code == 0, output);
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            var notes = doc.RootElement.GetProperty("notes").EnumerateArray().Select(n => n.GetString());
            return doc.RootElement.GetProperty("engine").GetString() + " | " + string.Join(" | ", notes);
        }
        // CPU training: MPI, whatever the mode allows.
        Assert.StartsWith("MPI (Open MPI) | ", Engine("cpu", "auto"));
        Assert.StartsWith("MPI (Open MPI) | ", Engine("cpu", "mpi"));
        // A CUDA device on a build without CUDA: auto falls back to MPI and says why; nccl refuses with the reason.
        Assert.Equal("MPI (Open MPI) | NCCL not used (CUDA is not available to libtorch); CUDA tensors are reduced over MPI through host memory.", Engine("cuda:0", "auto"));
        Assert.StartsWith("error: collectives 'nccl': CUDA is not available to libtorch.", Engine("cuda:0", "nccl"));
        Assert.StartsWith("error: collectives 'nccl' needs a CUDA device", Engine("cpu", "nccl"));
    }

    [Fact]
    public void EngineChoiceInOneProcessIsTheProcessItself()
    {
        using var single = new SingleProcess();
        Assert.Same(single, Collectives.ForDevice(single, "cuda:0", "auto"));
        Assert.Same(single, Collectives.ForDevice(single, "cpu", "mpi"));
        var e = Assert.Throws<DistributedException>(() => Collectives.ForDevice(single, "cpu", "gloo"));
        Assert.Contains("'gloo'", e.Message);
        Assert.Contains("auto, mpi, nccl", e.Message);
        Assert.Throws<DistributedException>(() => Collectives.ForDevice(single, "cuda:0", "nccl"));
    }
}
