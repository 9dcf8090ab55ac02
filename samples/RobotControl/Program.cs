// Simulated robots (docs/robot-tasks.md) driven by the host's policy over TCP
// (docs/robot-protocol.md). Prints progress on stderr and, last, one JSON object.
using System.Globalization;
using System.Text.Json.Nodes;
using RobotControl;
using RobotControl.Sim;

var options = Options.Parse(args);
if (options is null) return 2;
var runner = new Runner(options);
var report = runner.Run();
Console.WriteLine(report.ToJsonString());
return runner.Failures == 0 ? 0 : 1;

sealed record Options(string Host, int Port, int Robots, int Episodes, double Rate, int Seed, HashSet<string>? Tasks, TimeSpan Timeout, int Hostile)
{
    public const string Usage = "usage: dotnet run --project samples/RobotControl -- --connect HOST:PORT [--robots R] [--episodes N] [--rate HZ] [--seed S] [--tasks cartpole,pendulum,reacher,diffdrive] [--timeout-ms X] [--hostile N]";

    public static Options? Parse(string[] args)
    {
        string? connect = null;
        int robots = 4, episodes = 40, seed = 1, hostile = 0;
        double rate = 100;
        HashSet<string>? tasks = null;
        double timeoutMs = 2000;
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--connect": connect = Next(); break;
                    case "--robots": robots = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--episodes": episodes = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--rate": rate = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--seed": seed = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--tasks": tasks = [.. Next().Split(',')]; break;
                    case "--timeout-ms": timeoutMs = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--hostile": hostile = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--help" or "-h": throw new HelpRequested();
                    default: throw new ArgumentException($"unknown option '{args[i]}'");
                }
            }
            if (connect is null) throw new ArgumentException("--connect HOST:PORT is required");
            int colon = connect.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(connect[(colon + 1)..], out int port)) throw new ArgumentException($"--connect '{connect}' is not HOST:PORT");
            if (robots < 1 || episodes < 1 || rate < 0 || hostile < 0)
                throw new ArgumentException("--robots and --episodes must be ≥ 1, --rate ≥ 0 (0 = as fast as possible), --hostile ≥ 0");
            return new Options(connect[..colon], port, robots, episodes, rate, seed, tasks, TimeSpan.FromMilliseconds(timeoutMs), hostile);
        }
        catch (HelpRequested)
        {
            Console.WriteLine(Usage);
            Environment.Exit(0);
            return null;
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine($"RobotControl: {ex.Message}");
            Console.Error.WriteLine(Usage);
            return null;
        }
    }
}

sealed class HelpRequested : Exception;
