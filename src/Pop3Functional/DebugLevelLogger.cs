using Microsoft.Extensions.Logging;

namespace Pop3Functional;

/// <summary>
/// poplib's <c>set_debuglevel</c> as a filter in front of the caller's logger: 0 passes
/// Information and above (warnings such as a custom certificate check still show), 1 adds the
/// protocol dialogue (Debug), 2 adds octet counts (Trace), as docs/shell.md maps them.
/// </summary>
internal sealed class DebugLevelLogger(ILogger inner, int level) : ILogger
{
    private readonly LogLevel minimum = level switch
    {
        0 => LogLevel.Information,
        1 => LogLevel.Debug,
        _ => LogLevel.Trace,
    };

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner.BeginScope(state);

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && inner.IsEnabled(logLevel);

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel))
        {
            inner.Log(logLevel, eventId, state, exception, formatter);
        }
    }
}
