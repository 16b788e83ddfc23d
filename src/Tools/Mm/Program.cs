using Llama3.Multimodal.Tools.Mm;

return MmCli.Run(args, Console.Out, Console.Error);
