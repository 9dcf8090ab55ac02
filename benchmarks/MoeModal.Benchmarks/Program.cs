using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(MoeModal.Benchmarks.RouterBenchmarks).Assembly).Run(args);
