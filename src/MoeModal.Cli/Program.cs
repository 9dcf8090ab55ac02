namespace MoeModal.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var stdout = new StreamWriter(Console.OpenStandardOutput(), new System.Text.UTF8Encoding(false)) { AutoFlush = true };
        return CliApp.Run(args, stdout, Console.Error);
    }
}
