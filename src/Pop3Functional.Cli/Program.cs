using System.Runtime.InteropServices;

namespace Pop3Functional.Cli;

internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        // Before any socket exists: .NET reads this once, when its socket engine starts. With it,
        // socket completions run on the epoll thread instead of hopping to the thread pool; on the
        // small (2-core) machines a fetch typically runs on, the shell is much faster with it
        // (docs/benchmarks.md). A value the user set is kept.
        if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") is null)
        {
            Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
        }

        using var stop = new CancellationTokenSource();
        var interrupts = 0;
        void Interrupt(PosixSignalContext context)
        {
            // The first Ctrl+C (or SIGTERM) stops after the current message with the state saved;
            // a second one ends the process at once, which the durability protocol also survives.
            if (Interlocked.Increment(ref interrupts) == 1)
            {
                context.Cancel = true;
                Console.Error.WriteLine("pop3: stopping after the current message (Ctrl+C again to quit at once)");
                stop.Cancel();
            }
        }

        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Interrupt);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Interrupt);
        return await Cli.RunAsync(args, CliIo.FromConsole(), stop.Token);
    }
}
