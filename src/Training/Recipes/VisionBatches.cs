using Llama3.Multimodal.Vision;
using TorchSharp;

namespace Llama3.Multimodal.Training;

/// <summary>Collation shared by the image post-training recipes (<c>vision-sft</c>, <c>vision-reward</c>, <c>vision-dpo</c>).</summary>
internal static class VisionBatches
{
    /// <summary>
    /// Pads the rows to a common length (≤ <paramref name="seqLen"/>) into <c>input_ids</c> (and <c>labels</c> when the rows
    /// have them), packs each row's images into <c>pixel_values</c>, <c>aspect_ratio_ids</c> and <c>aspect_ratio_mask</c>,
    /// and sets <c>last</c> [rows] to each row's last kept position. Disposes the processed images.
    /// </summary>
    public static MicroBatch Collate(VisionLanguageModel model, ITrainingTokenizer tok, IReadOnlyList<(long[] Ids, long[]? Labels, IReadOnlyList<ProcessedImage> Images)> rows,
        int seqLen, DataCursor end, long lossElements, long samples = -1)
    {
        var ids = Padding.Rows(rows.Select(r => r.Ids).ToList(), tok.PadId, seqLen, out int len);
        var b = new MicroBatch
        {
            Tokens = rows.Sum(r => (long)Math.Min(len, r.Ids.Length)), Samples = samples >= 0 ? samples : rows.Count, LossElements = lossElements, End = end,
        };
        b.Tensors["input_ids"] = ids;
        if (rows.All(r => r.Labels is not null)) b.Tensors["labels"] = Padding.Rows(rows.Select(r => r.Labels!).ToList(), -100, seqLen, out _);
        b.Tensors["last"] = torch.tensor(rows.Select(r => (long)Math.Min(len, r.Ids.Length) - 1).ToArray());
        using (var batch = model.Preprocessor.Pack(rows.Select(r => r.Images).ToList()))
        {
            b.Tensors["pixel_values"] = batch.PixelValues.clone();
            b.Tensors["aspect_ratio_ids"] = batch.AspectRatioIds.clone();
            b.Tensors["aspect_ratio_mask"] = batch.AspectRatioMask.clone();
        }
        foreach (var p in rows.SelectMany(r => r.Images).Distinct()) p.Dispose();
        return b;
    }
}
