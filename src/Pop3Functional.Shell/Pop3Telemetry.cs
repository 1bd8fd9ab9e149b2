using System.Diagnostics;
using System.Diagnostics.Metrics;
using Pop3Functional.Core;

namespace Pop3Functional.Shell;

/// <summary>
/// Tracing and metrics under the name "Pop3Functional": a span per connection ("pop3.session")
/// and per command ("pop3.command"), with poplib's audit events ("poplib.connect" with host and
/// port, "poplib.putline" with each command line, secrets redacted) as activity events; and
/// counters for octets received, messages retrieved, errors by kind, and command latency.
/// Nothing secret is ever a tag or an event: command lines come from the core's redacted log text.
/// </summary>
public static class Pop3Telemetry
{
    /// <summary>The ActivitySource and Meter name.</summary>
    public const string Name = "Pop3Functional";

    /// <summary>The source of the spans; listen to it with an ActivityListener or OpenTelemetry.</summary>
    public static readonly ActivitySource Source = new(Name);

    /// <summary>The meter of the counters.</summary>
    public static readonly Meter Meter = new(Name);

    internal static readonly Counter<long> OctetsReceived =
        Meter.CreateCounter<long>("pop3.client.octets_received", "By", "Octets read from POP3 servers.");

    internal static readonly Counter<long> MessagesRetrieved =
        Meter.CreateCounter<long>("pop3.client.messages_retrieved", "{message}", "Messages retrieved completely (RETR).");

    internal static readonly Counter<long> Errors =
        Meter.CreateCounter<long>("pop3.client.errors", "{error}", "Failed operations, by error kind.");

    internal static readonly Histogram<double> CommandDuration =
        Meter.CreateHistogram<double>("pop3.client.command.duration", "s", "Time from submitting a command to its final reply.");

    internal static Activity? StartSession(string host, int port, TlsMode tls)
    {
        var activity = Source.StartActivity("pop3.session", ActivityKind.Client);
        if (activity is not null)
        {
            activity.SetTag("server.address", host);
            activity.SetTag("server.port", port);
            activity.SetTag("pop3.tls", tls.ToString());
            activity.AddEvent(new ActivityEvent("poplib.connect", tags: new ActivityTagsCollection { ["host"] = host, ["port"] = port }));
        }

        return activity;
    }

    /// <summary>A command span, a child of the session's span (the caller's flow does not carry it).</summary>
    internal static Activity? StartCommand(string command, string endpoint, Activity? session)
    {
        var activity = session is null
            ? Source.StartActivity("pop3.command", ActivityKind.Client)
            : Source.StartActivity("pop3.command", ActivityKind.Client, session.Context);
        activity?.SetTag("pop3.command", command);
        activity?.SetTag("server.endpoint", endpoint);
        return activity;
    }

    /// <summary>
    /// One command's span and latency from submission to its end: ended exactly once, as a
    /// success, a failure (counted by kind) or a cancellation (counted as "cancelled").
    /// </summary>
    internal sealed class CommandScope(string command, string endpoint, Activity? session)
    {
        private readonly Activity? activity = StartCommand(command, endpoint, session);
        private readonly long started = Stopwatch.GetTimestamp();
        private bool ended;

        public void Succeeded(ulong? octets)
        {
            if (End())
            {
                activity?.SetTag("pop3.result", "ok");
                if (octets is { } n)
                {
                    activity?.SetTag("pop3.octets", (long)n);
                    if (command == "RETR")
                    {
                        MessagesRetrieved.Add(1);
                    }
                }

                activity?.Dispose();
            }
        }

        public void Failed(Pop3Error error) => Failed(KindOf(error), error.Message);

        public void Cancelled() => Failed("cancelled", $"{command} was cancelled.");

        private void Failed(string kind, string message)
        {
            if (End())
            {
                activity?.SetTag("pop3.result", kind);
                activity?.SetStatus(ActivityStatusCode.Error, message);
                Errors.Add(1, new KeyValuePair<string, object?>("error.kind", kind));
                activity?.Dispose();
            }
        }

        private bool End()
        {
            if (ended)
            {
                return false;
            }

            ended = true;
            CommandDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("pop3.command", command));
            return true;
        }
    }

    /// <summary>poplib's "poplib.putline" audit event: the line as the core redacted it.</summary>
    internal static void PutLine(string redactedLine) =>
        Activity.Current?.AddEvent(new ActivityEvent("poplib.putline", tags: new ActivityTagsCollection { ["line"] = redactedLine }));

    internal static string KindOf(Pop3Error error) =>
        error.IsUsage ? "usage" : error.IsServer ? "server" : error.IsProtocol ? "protocol" : "transport";
}
