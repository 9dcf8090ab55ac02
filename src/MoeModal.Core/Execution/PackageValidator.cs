using Microsoft.ML.OnnxRuntime;
using MoeModal.Abstractions;
using MoeModal.Core.Packages;

namespace MoeModal.Core.Execution;

/// <summary>
/// Checks, step by step, that every tensor a step reads exists with a compatible type and shape,
/// against the ONNX metadata of the sessions just created. Errors name file, step and tensor.
/// </summary>
internal sealed class PackageValidator
{
    private readonly Dictionary<string, TensorFact> _facts = new(StringComparer.Ordinal);

    public PackageValidator(PackageManifest manifest)
    {
        foreach (var t in manifest.Inputs)
            _facts[t.Name] = new TensorFact(t.Name, t.Kind, [.. t.Shape], "package input");
    }

    public TensorFact Read(string tensor, string step, string file)
    {
        if (_facts.TryGetValue(tensor, out var f)) return f;
        throw ModelPackageException.At(file, step, tensor, "is read but is neither a package input nor written by an earlier step");
    }

    public void Write(TensorFact fact, string step, string file)
    {
        if (_facts.TryGetValue(fact.Name, out var existing))
            throw ModelPackageException.At(file, step, fact.Name, $"is written twice (first by {existing.Producer})");
        _facts[fact.Name] = fact;
    }

    /// <summary>Validates an onnx step's bindings against its session's metadata.</summary>
    public void CheckOnnxStep(OnnxStepManifest step, Subgraph g)
    {
        foreach (var name in g.InputNames)
            if (!step.Inputs.ContainsKey(name))
                throw ModelPackageException.At(step.Path, step.Name, name, $"subgraph input is not bound in the manifest's inputs (bound: {string.Join(", ", step.Inputs.Keys)})");
        foreach (var (input, tensor) in step.Inputs)
        {
            if (!g.Inputs.TryGetValue(input, out var meta))
                throw ModelPackageException.At(step.Path, step.Name, input, $"the subgraph has no such input (it has: {string.Join(", ", g.InputNames)})");
            var fact = Read(tensor, step.Name, step.Path);
            Expect(fact, meta, step.Path, step.Name, $"input '{input}'");
        }
        foreach (var (output, tensor) in step.Outputs)
        {
            if (!g.Outputs.TryGetValue(output, out var meta))
                throw ModelPackageException.At(step.Path, step.Name, output, $"the subgraph has no such output (it has: {string.Join(", ", g.OutputNames)})");
            Write(FactOf(tensor, meta, step.Path, step.Name, output), step.Name, step.Path);
        }
    }

    /// <summary>Validates a moe step; returns (D, D_out).</summary>
    public (int D, int DOut) CheckMoeStep(MoeStepManifest step, Subgraph gate, Subgraph[] experts, string[] expertPaths)
    {
        var x = Read(step.Input, step.Name, ManifestReader.FileName);
        if (x.Kind != TensorKind.Float32 || x.Rank < 2)
            throw ModelPackageException.At(ManifestReader.FileName, step.Name, step.Input,
                $"moe input must be float32 with rank ≥ 2 ([..., D]); it is {TensorFact.KindName(x.Kind)} {TensorFact.ShapeText(x.Shape)} from {x.Producer}");

        var (gin, gout) = Single(gate, step.GatePath, step.Name);
        int gd = StaticDim(gin, 1), ge = StaticDim(gout, 1);
        if (ge >= 0 && ge != experts.Length)
            throw ModelPackageException.At(step.GatePath, step.Name, gate.OutputNames[0],
                $"gate produces {ge} logits per token but the step has {experts.Length} experts");

        int d = -1, dOut = -1;
        for (int i = 0; i < experts.Length; i++)
        {
            var (ein, eout) = Single(experts[i], expertPaths[i], step.Name);
            int ed = StaticDim(ein, 1), eo = StaticDim(eout, 1);
            if (ed < 0 || eo < 0)
                throw ModelPackageException.At(expertPaths[i], step.Name, experts[i].InputNames[0],
                    "expert feature dimensions must be static ([n, D] → [n, D_out] with n dynamic)");
            if (d >= 0 && (ed != d || eo != dOut))
                throw ModelPackageException.At(expertPaths[i], step.Name, experts[i].InputNames[0],
                    $"expert maps [n,{ed}] → [n,{eo}] but earlier experts map [n,{d}] → [n,{dOut}]; all experts of a step must agree on D and D_out");
            d = ed;
            dOut = eo;
        }
        if (gd >= 0 && gd != d)
            throw ModelPackageException.At(step.GatePath, step.Name, gate.InputNames[0], $"gate reads D = {gd} but the experts read D = {d}");
        int xd = x.Shape[^1];
        if (xd >= 0 && xd != d)
            throw ModelPackageException.At(ManifestReader.FileName, step.Name, step.Input, $"last axis is {xd} but the experts read D = {d}");

        var outShape = (int[])x.Shape.Clone();
        outShape[^1] = dOut;
        if (step.Residual is not null)
        {
            var r = Read(step.Residual, step.Name, ManifestReader.FileName);
            var unified = r.Kind == TensorKind.Float32 ? TensorFact.Unify(r.Shape, outShape) : null;
            if (unified is null)
                throw ModelPackageException.At(ManifestReader.FileName, step.Name, step.Residual,
                    $"residual is {TensorFact.KindName(r.Kind)} {TensorFact.ShapeText(r.Shape)} but the step's output is float32 {TensorFact.ShapeText(outShape)}");
            outShape = unified;
        }
        Write(new TensorFact(step.Output, TensorKind.Float32, outShape, $"step '{step.Name}'"), step.Name, ManifestReader.FileName);
        return (d, dOut);
    }

    /// <summary>Every package output must be written, with a compatible type and shape.</summary>
    public void CheckOutputs(PackageManifest manifest)
    {
        foreach (var o in manifest.Outputs)
        {
            var f = Read(o.Name, "outputs", ManifestReader.FileName);
            if (f.Kind != o.Kind || TensorFact.Unify(f.Shape, [.. o.Shape]) is null)
                throw ModelPackageException.At(ManifestReader.FileName, null, o.Name,
                    $"package output is declared {TensorFact.KindName(o.Kind)} {TensorFact.ShapeText(o.Shape)} but {f.Producer} writes {TensorFact.KindName(f.Kind)} {TensorFact.ShapeText(f.Shape)}");
        }
    }

    private static (NodeMetadata In, NodeMetadata Out) Single(Subgraph g, string file, string step)
    {
        if (g.InputNames.Count != 1 || g.OutputNames.Count != 1)
            throw ModelPackageException.At(file, step, null,
                $"gates and experts take one input and give one output; this subgraph has inputs ({string.Join(", ", g.InputNames)}) and outputs ({string.Join(", ", g.OutputNames)})");
        var i = g.Inputs[g.InputNames[0]];
        var o = g.Outputs[g.OutputNames[0]];
        foreach (var (name, m) in new[] { (g.InputNames[0], i), (g.OutputNames[0], o) })
        {
            if (!m.IsTensor || m.ElementDataType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float || m.Dimensions.Length != 2)
                throw ModelPackageException.At(file, step, name,
                    $"must be a float32 tensor of rank 2; it is {m.ElementDataType} with rank {m.Dimensions.Length}");
        }
        return (i, o);
    }

    private static int StaticDim(NodeMetadata m, int axis) => m.Dimensions[axis] > 0 ? m.Dimensions[axis] : -1;

    private static void Expect(TensorFact fact, NodeMetadata meta, string file, string step, string what)
    {
        if (!meta.IsTensor || !TensorFact.TryKindOf(meta.ElementDataType, out var kind))
            throw ModelPackageException.At(file, step, fact.Name, $"{what} has type {meta.ElementDataType}; only float32 and int64 tensors are supported");
        if (kind != fact.Kind)
            throw ModelPackageException.At(file, step, fact.Name,
                $"{what} expects {TensorFact.KindName(kind)} but the tensor is {TensorFact.KindName(fact.Kind)} (from {fact.Producer})");
        var shape = meta.Dimensions.Select(d => d > 0 ? d : -1).ToArray();
        if (TensorFact.Unify(shape, fact.Shape) is null)
            throw ModelPackageException.At(file, step, fact.Name,
                $"{what} expects shape {TensorFact.ShapeText(shape)} but the tensor is {TensorFact.ShapeText(fact.Shape)} (from {fact.Producer})");
    }

    private static TensorFact FactOf(string tensor, NodeMetadata meta, string file, string step, string output)
    {
        if (!meta.IsTensor || !TensorFact.TryKindOf(meta.ElementDataType, out var kind))
            throw ModelPackageException.At(file, step, output, $"output has type {meta.ElementDataType}; only float32 and int64 tensors are supported");
        return new TensorFact(tensor, kind, meta.Dimensions.Select(d => d > 0 ? d : -1).ToArray(), $"step '{step}' output '{output}'");
    }
}
