using System.Diagnostics;
using System.Text.Json.Nodes;
using RobotControl.Sim;

namespace RobotControl;

/// <summary>
/// Runs episodes on R concurrent robots — each its own thread with a fixed-rate control loop —
/// and gathers success, returns and round-trip latency.
/// </summary>
internal sealed class Runner(Options options)
{
    private sealed record Episode(int Index, int SubTask, bool Success, double Return, int Steps, int Misses, string? Error);

    private readonly List<Episode> _episodes = [];
    private readonly List<double> _latencies = [];
    private readonly List<double> _hostTimes = [];
    private int _next = -1;

    public int Failures { get; private set; }

    public JsonObject Run()
    {
        var ids = Enumerable.Range(0, TaskTable.Count).Where(id => options.Tasks is null || options.Tasks.Contains(TaskTable.Create(id).Task)).ToArray();
        if (ids.Length == 0) throw new ArgumentException("--tasks selects no task (cartpole, pendulum, reacher, diffdrive)");
        var sw = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var hostile = new Hostile(options.Host, options.Port, options.Seed);
        var attackers = Enumerable.Range(0, options.Hostile)
            .Select(h => new Thread(() => hostile.Run(h, stop.Token)) { IsBackground = true, Name = $"hostile{h}" }).ToArray();
        foreach (var t in attackers) t.Start();
        var robots = Enumerable.Range(0, options.Robots)
            .Select(r => new Thread(() => Robot(r, ids)) { IsBackground = true, Name = $"robot{r}" }).ToArray();
        foreach (var t in robots) t.Start();
        foreach (var t in robots) t.Join();
        stop.Cancel();
        foreach (var t in attackers) t.Join();
        var report = Report(sw.Elapsed);
        if (options.Hostile > 0) report["hostile"] = hostile.Report();
        return report;
    }

    private void Robot(int robot, int[] ids)
    {
        var latencies = new List<double>();
        var hostTimes = new List<double>();
        while (true)
        {
            int i = Interlocked.Increment(ref _next);
            if (i >= options.Episodes) break;
            var ep = RunEpisode(robot, i, ids[i % ids.Length], latencies, hostTimes);
            lock (_episodes)
            {
                _episodes.Add(ep);
                if (ep.Error is not null) Failures++;
                var sub = TaskTable.Create(ep.SubTask);
                Console.Error.WriteLine($"robot {robot}: episode {i,3} {sub.Task}/{sub.Variant,-12} {(ep.Success ? "success" : "FAIL   ")} return {ep.Return,9:F2} steps {ep.Steps}{(ep.Misses > 0 ? $" safe actions {ep.Misses}" : "")}{(ep.Error is null ? "" : $" error: {ep.Error}")}");
            }
        }
        lock (_latencies)
        {
            _latencies.AddRange(latencies);
            _hostTimes.AddRange(hostTimes);
        }
    }

    private Episode RunEpisode(int robot, int index, int subTask, List<double> latencies, List<double> hostTimes)
    {
        var sim = TaskTable.Create(subTask);
        sim.Reset(new Random(unchecked(options.Seed * 1_000_003 + index)));
        int misses = 0;
        try
        {
            using var client = RobotClient.Connect(options.Host, options.Port, sim.Task, sim.Variant, sim.ObsDim, sim.ActDim,
                $"robot{robot}", options.Timeout);
            double period = options.Rate > 0 ? 1.0 / options.Rate : 0;
            var clock = Stopwatch.StartNew();
            long seq = 0;
            var action = new double[sim.ActDim];
            while (!sim.Done)
            {
                if (period > 0)
                {
                    // Fixed rate: step k starts at k·period (a late step does not shift the later ones).
                    double wait = seq * period - clock.Elapsed.TotalSeconds;
                    if (wait > 0) Thread.Sleep(TimeSpan.FromSeconds(wait));
                }
                var obs = sim.Observation().Select(v => (float)v).ToArray();
                var (a, safe, ms, host) = client.Step(seq, clock.Elapsed.TotalSeconds, obs);
                latencies.Add(ms);
                if (!double.IsNaN(host)) hostTimes.Add(host);
                if (safe) misses++;
                for (int k = 0; k < action.Length; k++) action[k] = a[k];
                sim.Step(action);
                seq++;
            }
            client.Close();
            return new Episode(index, subTask, sim.Success, sim.Return, sim.Steps, misses, null);
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or OperationCanceledException or MoeModal.Plugins.Robotics.Protocol.ProtocolException)
        {
            return new Episode(index, subTask, false, sim.Return, sim.Steps, misses, ex.Message);
        }
    }

    private JsonObject Report(TimeSpan elapsed)
    {
        var tasks = new JsonObject();
        var subtasks = new JsonObject();
        foreach (var g in _episodes.GroupBy(e => TaskTable.Create(e.SubTask).Task).OrderBy(g => g.Key, StringComparer.Ordinal))
            tasks[g.Key] = Summary(g);
        foreach (var g in _episodes.GroupBy(e => e.SubTask).OrderBy(g => g.Key))
        {
            var t = TaskTable.Create(g.Key);
            subtasks[$"{t.Task}/{t.Variant}"] = Summary(g);
        }
        var lat = _latencies.Order().ToArray();
        var host = _hostTimes.Order().ToArray();
        return new JsonObject
        {
            ["tasks"] = tasks,
            ["subtasks"] = subtasks,
            ["latency_ms"] = new JsonObject
            {
                ["p50"] = Math.Round(Percentile(lat, 0.50), 4),
                ["p99"] = Math.Round(Percentile(lat, 0.99), 4),
                ["max"] = Math.Round(lat.Length == 0 ? 0 : lat[^1], 4),
            },
            // The host's own time per step (its infer_us): the rest of the round trip is the network and scheduling.
            ["host_ms"] = new JsonObject
            {
                ["p50"] = Math.Round(Percentile(host, 0.50), 4),
                ["p99"] = Math.Round(Percentile(host, 0.99), 4),
                ["max"] = Math.Round(host.Length == 0 ? 0 : host[^1], 4),
            },
            ["deadline_misses"] = _episodes.Sum(e => e.Misses),
            ["steps"] = _episodes.Sum(e => e.Steps),
            ["episodes"] = _episodes.Count,
            ["errors"] = Failures,
            ["robots"] = options.Robots,
            ["rate_hz"] = options.Rate,
            ["seed"] = options.Seed,
            ["seconds"] = Math.Round(elapsed.TotalSeconds, 2),
        };
    }

    private static JsonObject Summary(IEnumerable<Episode> episodes)
    {
        var list = episodes.ToList();
        return new JsonObject
        {
            ["success_rate"] = Math.Round(list.Count(e => e.Success) / (double)list.Count, 4),
            ["episodes"] = list.Count,
            ["mean_return"] = Math.Round(list.Average(e => e.Return), 4),
        };
    }

    private static double Percentile(double[] sorted, double p)
    {
        if (sorted.Length == 0) return 0;
        double rank = p * (sorted.Length - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }
}
