using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace Llama3.Multimodal.Tests.Shared;

/// <summary>
/// Finds the call sites of an assembly that hand libtorch a temporary TorchSharp scalar (see
/// <c>Llama3.Multimodal.Text.Scalars</c>): an implicit number → Scalar conversion, a tensor operator with a number
/// operand, or <c>a + b</c> / <c>add(b)</c> without an explicit alpha. Each of those creates a native scalar that nothing
/// keeps alive during the call, so a collection started by another thread may free it while libtorch reads it.
/// </summary>
internal static class ScalarTemporaries
{
    /// <summary>"Type.Method calls Member" for every such call site in <paramref name="assembly"/> (empty when clean).</summary>
    public static IReadOnlyList<string> Find(Assembly assembly)
    {
        using var fs = File.OpenRead(assembly.Location);
        using var pe = new PEReader(fs);
        var md = pe.GetMetadataReader();
        var bad = new Dictionary<int, string>();
        foreach (var h in md.MemberReferences)
        {
            var mr = md.GetMemberReference(h);
            if (mr.Parent.Kind != HandleKind.TypeReference) continue;
            string type = md.GetString(md.GetTypeReference((TypeReferenceHandle)mr.Parent).Name), name = md.GetString(mr.Name);
            var sig = md.GetBlobBytes(mr.Signature);
            bool numberOperand = sig.Skip(2).Any(b => b is 0x08 or 0x0A or 0x0C or 0x0D);   // int32, int64, float32, float64
            bool implicitScalar = type == "Scalar" && name == "op_Implicit";
            bool numberOperator = type == "Tensor" && name.StartsWith("op_", StringComparison.Ordinal) && numberOperand;
            bool implicitAlpha = type == "Tensor" && (name == "op_Addition" && !numberOperand || (name is "add" or "add_") && sig[1] == 1);
            if (implicitScalar || numberOperator || implicitAlpha) bad[MetadataTokens.GetToken(h)] = $"{type}.{name}";
        }
        var found = new List<string>();
        foreach (var th in md.TypeDefinitions)
        {
            var td = md.GetTypeDefinition(th);
            foreach (var mh in td.GetMethods())
            {
                var m = md.GetMethodDefinition(mh);
                if (m.RelativeVirtualAddress == 0) continue;
                var il = pe.GetMethodBody(m.RelativeVirtualAddress).GetILBytes()!;
                for (int i = 0; i + 4 < il.Length; i++)
                    if (il[i] is 0x28 or 0x6F && bad.TryGetValue(BitConverter.ToInt32(il, i + 1), out var what))
                        found.Add($"{md.GetString(td.Name)}.{md.GetString(m.Name)} calls {what}");
            }
        }
        return found.Distinct().ToList();
    }
}
