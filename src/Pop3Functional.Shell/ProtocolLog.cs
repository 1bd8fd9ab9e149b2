using System.Text;
using Microsoft.Extensions.Logging;
using Pop3Functional.Core;

namespace Pop3Functional.Shell;

/// <summary>
/// The protocol log: "C:" lines as the core redacted them (PASS, APOP, AUTH and SASL lines never
/// show their secrets), "S:" lines from the core's events with server text escaped, bodies
/// summarised by size. Debug level for the dialogue, Trace for octet counts (poplib's
/// set_debuglevel 1 and 2).
/// </summary>
internal sealed class ProtocolLog(ILogger? logger, string endpoint)
{
    public void Client(string redactedLine)
    {
        if (logger?.IsEnabled(LogLevel.Debug) == true)
        {
            logger.LogDebug("{Endpoint} C: {Line}", endpoint, Escape(redactedLine));
        }
    }

    public void Received(ReadOnlySpan<byte> octets)
    {
        if (logger?.IsEnabled(LogLevel.Trace) == true)
        {
            logger.LogTrace("{Endpoint} received {Octets} octets", endpoint, octets.Length);
        }
    }

    /// <summary>Whether <see cref="Event"/> would write routine events (Debug); when not, a caller may skip building them.</summary>
    public bool WantsEvents => logger?.IsEnabled(LogLevel.Debug) == true;

    public void Event(Pop3Output output)
    {
        if (logger is null
            || (output.EventKind is not (Pop3EventKind.QuirkTolerated or Pop3EventKind.Failed) && !logger.IsEnabled(LogLevel.Debug)))
        {
            // Nothing to build: the Debug lines below are not wanted.
            return;
        }

        switch (output.EventKind)
        {
            case Pop3EventKind.Greeting:
                Debug("S: +OK " + output.Text);
                break;
            case Pop3EventKind.CapabilitiesReceived:
                Debug("S: capabilities " + string.Join(" | ", output.Capabilities.Lines));
                break;
            case Pop3EventKind.Answered:
                Debug(output.Text is { Length: > 0 } text ? "S: +OK " + text : "S: +OK");
                break;
            case Pop3EventKind.BodyEnded:
                Debug($"S: [body of {output.Octets} octets]");
                break;
            case Pop3EventKind.SizeMismatch:
                Debug($"S: [message {output.Message}: {output.Octets} octets delivered, LIST said {output.ListedOctets}]");
                break;
            case Pop3EventKind.SaslChallenge:
                Debug("S: + [SASL challenge redacted]");
                break;
            case Pop3EventKind.Rejected:
            case Pop3EventKind.Refused:
            case Pop3EventKind.Aborted:
                Debug(output.Failure.Message);
                break;
            case Pop3EventKind.QuirkTolerated:
                logger.LogInformation("{Endpoint} tolerated the server quirk {Quirk}", endpoint, output.Quirk);
                break;
            case Pop3EventKind.Failed:
                logger.LogWarning("{Endpoint} session failed: {Error}", endpoint, Escape(output.Failure.Message));
                break;
        }
    }

    public void Closing() => Debug("closing without QUIT");

    private void Debug(string line)
    {
        if (logger?.IsEnabled(LogLevel.Debug) == true)
        {
            logger.LogDebug("{Endpoint} {Line}", endpoint, Escape(line));
        }
    }

    /// <summary>Server text is data: control characters are shown, never interpreted (DESIGN §6).</summary>
    internal static string Escape(string text)
    {
        StringBuilder? builder = null;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsControl(c))
            {
                builder ??= new StringBuilder(text, 0, i, text.Length + 16);
                builder.Append(c switch
                {
                    '\r' => "\\r",
                    '\n' => "\\n",
                    '\t' => "\\t",
                    _ => $"\\x{(int)c:x2}",
                });
            }
            else
            {
                builder?.Append(c);
            }
        }

        return builder?.ToString() ?? text;
    }
}
