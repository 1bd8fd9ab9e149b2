using System.Collections.Concurrent;
using System.Diagnostics;
using Pop3Functional.Shell;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Shell.Tests.Support;

namespace Pop3Functional.Shell.Tests;

/// <summary>Command spans for the forms that end later (a message stream) or never normally (a cancellation).</summary>
public sealed class TelemetryTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Spans stopped while the test runs, kept for one simulator's port (other tests run in parallel).</summary>
    private sealed class Spans : IDisposable
    {
        private readonly ConcurrentQueue<Activity> stopped = new();
        private readonly ActivityListener listener;

        public Spans()
        {
            listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name == Pop3Telemetry.Name,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = stopped.Enqueue,
            };
            ActivitySource.AddActivityListener(listener);
        }

        public List<Activity> CommandsOf(Pop3Simulator sim) =>
            stopped.Where(a => a.OperationName == "pop3.command"
                && a.GetTagItem("server.endpoint") is string e && e.EndsWith($":{sim.Endpoint.Port}", StringComparison.Ordinal)).ToList();

        public void Dispose() => listener.Dispose();
    }

    [Fact]
    public async Task A_message_stream_has_one_RETR_span_that_ends_with_the_stream_and_carries_its_octets()
    {
        using var spans = new Spans();
        await using var sim = await StartAsync();
        await using var connection = await LoggedInAsync(Plain(sim));
        var expected = Ok(await connection.RetrieveBytesAsync(2, Ct));
        var before = spans.CommandsOf(sim).Count;

        var stream = Ok(await connection.OpenMessageAsync(2, Ct));
        Assert.Equal(before, spans.CommandsOf(sim).Count);
        var copy = new MemoryStream();
        await stream.CopyToAsync(copy, Ct);
        await stream.DisposeAsync();

        var span = Assert.Single(spans.CommandsOf(sim).Skip(before));
        Assert.Equal("RETR", span.GetTagItem("pop3.command"));
        Assert.Equal("ok", span.GetTagItem("pop3.result"));
        Assert.Equal((long)expected.Length, span.GetTagItem("pop3.octets"));
        Assert.Equal(expected, copy.ToArray());
    }

    [Fact]
    public async Task A_message_stream_dropped_unread_ends_its_span_as_a_failure()
    {
        using var spans = new Spans();
        await using var sim = await StartAsync();
        sim.Mailbox(User).Add(MessageContent.Generated(20_000_000, 9));
        await using var connection = await LoggedInAsync(Plain(sim));
        var stream = Ok(await connection.OpenMessageAsync(4, Ct));
        stream.Dispose();

        var span = Assert.Single(spans.CommandsOf(sim), a => a.GetTagItem("pop3.command") as string == "RETR");
        Assert.Equal("transport", span.GetTagItem("pop3.result"));
        Assert.Equal(ActivityStatusCode.Error, span.Status);
    }

    [Fact]
    public async Task A_cancelled_command_ends_its_span_as_cancelled()
    {
        using var spans = new Spans();
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Latency(TimeSpan.FromMilliseconds(300))));
        await using var connection = await LoggedInAsync(Plain(sim));
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await connection.RetrieveBytesAsync(1, cts.Token));

        var span = Assert.Single(spans.CommandsOf(sim), a => a.GetTagItem("pop3.command") as string == "RETR");
        Assert.Equal("cancelled", span.GetTagItem("pop3.result"));
        Assert.Equal(ActivityStatusCode.Error, span.Status);
        Assert.True(span.Duration > TimeSpan.Zero);
    }
}
