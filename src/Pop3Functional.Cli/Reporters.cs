using System.Globalization;
using Spectre.Console;

namespace Pop3Functional.Cli;

/// <summary>Plain lines for a log or a pipe: one per durable group, never per message.</summary>
internal sealed class PlainReporter(CliIo io, bool json) : IFetchReporter
{
    private int planned;

    public void Warning(string text) => io.Error.WriteLine($"pop3: warning: {text}");

    public void Planned(int messages, long octets)
    {
        planned = messages;
        if (!json && messages > 0)
        {
            io.Out.WriteLine($"fetching {messages} new message(s), {Format.Octets(octets)} listed");
        }
    }

    public void Received(ulong message, long octets)
    {
    }

    public void Committed(int storedSoFar, long bytesSoFar)
    {
        if (!json)
        {
            io.Out.WriteLine($"stored {storedSoFar}/{planned} ({Format.Octets(bytesSoFar)}), durable and recorded");
        }
    }
}

/// <summary>
/// A live Spectre progress display on a terminal: messages done/total, octets, rate, ETA. It takes
/// the console it draws on, so a test can give it one that writes to a string.
/// </summary>
internal sealed class SpectreReporter(IAnsiConsole console, ProgressContext context) : IFetchReporter
{
    private ProgressTask? task;
    private int total;
    private int received;

    // On the console, not standard error: a line written around a live display would tear it.
    public void Warning(string text) => console.MarkupLine($"[yellow]warning:[/] {Markup.Escape(text)}");

    public void Planned(int messages, long octets)
    {
        total = messages;
        if (messages > 0)
        {
            task = context.AddTask(Description(), maxValue: Math.Max(octets, 1));
        }
    }

    public void Received(ulong message, long octets)
    {
        received++;
        if (task is not null)
        {
            task.Increment(octets);
            task.Description = Description();
        }
    }

    public void Committed(int storedSoFar, long bytesSoFar)
    {
        if (task is not null && received == total)
        {
            // LIST sizes are estimates (RFC 1939 §11): the bar ends full whatever arrived.
            task.Value = task.MaxValue;
        }
    }

    private string Description() => $"{received}/{total} messages";

    public static Task<T> RunAsync<T>(IAnsiConsole console, Func<IFetchReporter, Task<T>> run) =>
        console.Progress()
            .AutoClear(false)
            .Columns(
                new TaskDescriptionColumn(),
                new ProgressBarColumn(),
                new PercentageColumn(),
                new DownloadedColumn(),
                new TransferSpeedColumn(),
                new RemainingTimeColumn())
            .StartAsync(context => run(new SpectreReporter(console, context)));
}

internal static class Format
{
    public static string Octets(long octets) => octets switch
    {
        < 1024 => $"{octets} B",
        < 1024L * 1024 => string.Create(CultureInfo.InvariantCulture, $"{octets / 1024.0:0.0} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{octets / (1024.0 * 1024):0.0} MiB"),
    };

    public static string Seconds(TimeSpan time) => string.Create(CultureInfo.InvariantCulture, $"{time.TotalSeconds:0.00} s");
}
