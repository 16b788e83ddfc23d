using Llama3.Multimodal.Tools.Mm;

Llama3.Multimodal.Text.CpuRuntime.Configure();
return MmCli.Run(args, Console.Out, Console.Error);
