using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace Llama3.Multimodal.Text.Tests;

/// <summary>
/// The text core passes no temporary TorchSharp scalars (see <see cref="Scalars"/>): no implicit number → Scalar
/// conversion, no tensor operator with a number operand, no <c>a + b</c> / <c>add(b)</c> without an explicit alpha —
/// each of those hands libtorch a native scalar that a collection on another thread may free during the call.
/// </summary>
public class ScalarTemporariesTests
{
    [Fact]
    public void TheTextCoreCreatesNoTemporaryScalars()
    {
        string path = typeof(LlamaForCausalLM).Assembly.Location;
        using var fs = File.OpenRead(path);
        using var pe = new PEReader(fs);
        var md = pe.GetMetadataReader();
        var bad = new Dictionary<int, string>();
        foreach (var h in md.MemberReferences)
        {
            var mr = md.GetMemberReference(h);
            if (mr.Parent.Kind != HandleKind.TypeReference) continue;
            string type = md.GetString(md.GetTypeReference((TypeReferenceHandle)mr.Parent).Name), name = md.GetString(mr.Name);
            var sig = md.GetBlobBytes(mr.Signature);
            bool implicitScalar = type == "Scalar" && name == "op_Implicit";
            // Operators of Tensor with an int/long/float/double operand convert it to a temporary Scalar.
            bool numberOperator = type == "Tensor" && name.StartsWith("op_", StringComparison.Ordinal) && sig.Skip(2).Any(b => b is 0x08 or 0x0A or 0x0C or 0x0D);
            // a + b and add(b) pass a temporary alpha = 1 (add(b, alpha) does not).
            bool implicitAlpha = type == "Tensor" && (name == "op_Addition" && !sig.Skip(2).Any(b => b is 0x08 or 0x0A or 0x0C or 0x0D) || (name is "add" or "add_") && sig[1] == 1);
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
        Assert.True(found.Count == 0, "temporary scalars in the text core:\n" + string.Join("\n", found.Distinct()));
    }
}
