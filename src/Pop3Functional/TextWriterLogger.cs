using Microsoft.Extensions.Logging;

namespace Pop3Functional;

/// <summary>
/// The protocol log written as plain lines to a <see cref="TextWriter"/> (standard error by
/// default): what poplib's <c>set_debuglevel</c> prints when no logger was given. The lines are the
/// shell's, so secrets are already redacted.
/// </summary>
internal sealed class TextWriterLogger(TextWriter output) : ILogger
{
    private readonly object gate = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var line = $"pop3 {logLevel.ToString().ToLowerInvariant()}: {formatter(state, exception)}";
        lock (gate)
        {
            output.WriteLine(line);
            output.Flush();
        }
    }
}
