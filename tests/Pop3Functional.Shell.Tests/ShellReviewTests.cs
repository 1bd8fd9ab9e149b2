using System.Diagnostics;
using Pop3Functional.Core;
using Pop3Functional.Shell;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Shell.Tests.Support;

namespace Pop3Functional.Shell.Tests;

/// <summary>Regressions found by the review of the shell (each failed before its fix).</summary>
public sealed class ShellReviewTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_sink_that_throws_is_a_typed_failure_with_its_exception_and_the_connection_closes_instead_of_desynchronising()
    {
        await using var sim = await StartAsync();
        await using var connection = await LoggedInAsync(Plain(sim));
        var failed = Error(await connection.RetrieveAsync(1, (_, _) => throw new InvalidOperationException("sink bug"), Ct));
        Assert.True(failed.IsTransport, failed.Message);
        Assert.Contains("sink bug", failed.Message);
        var cause = ((Pop3Error.Transport)failed).Item.Exception.Value;
        Assert.IsType<InvalidOperationException>(cause);
        var after = Error(await connection.StatAsync(Ct));
        Assert.True(after.IsTransport, after.Message);
        Assert.Contains("sink failed", after.Message);
    }

    [Fact]
    public async Task A_sink_that_cancels_on_its_own_is_a_sink_failure_not_a_deadline()
    {
        await using var sim = await StartAsync();
        await using var connection = await LoggedInAsync(Plain(sim));
        var failed = Error(await connection.RetrieveAsync(1, (_, _) => throw new OperationCanceledException("the sink gave up"), Ct));
        Assert.True(failed.IsTransport, failed.Message);
        Assert.Contains("sink failed", failed.Message);
        Assert.DoesNotContain("deadline", failed.Message);
    }

    [Fact]
    public async Task A_destination_stream_that_fails_mid_body_is_a_typed_failure_and_the_earlier_message_is_intact()
    {
        await using var sim = await StartAsync();
        await using var connection = await LoggedInAsync(Plain(sim));
        var first = Ok(await connection.RetrieveBytesAsync(1, Ct));
        Assert.NotEmpty(first);
        var failed = Error(await connection.RetrieveAsync(2, new FailingStream(), Ct));
        Assert.True(failed.IsTransport, failed.Message);
        Assert.Contains("disk full", failed.Message);
    }

    private sealed class FailingStream : MemoryStream
    {
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            throw new IOException("disk full");

        public override void Write(byte[] buffer, int offset, int count) => throw new IOException("disk full");
    }

    [Fact]
    public async Task A_message_stream_that_failed_keeps_failing_and_never_reads_as_complete()
    {
        var plan = FaultPlan.Of(Faults.DisconnectInBody(Faults.OnVerb("RETR", 1), 100));
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(plan));
        sim.Mailbox(User).Add(MessageContent.Generated(100_000, 5));
        await using var connection = await LoggedInAsync(Plain(sim));
        var stream = Ok(await connection.OpenMessageAsync(4, Ct));
        var buffer = new byte[64];
        var total = 0;
        await Assert.ThrowsAsync<Pop3StreamException>(async () =>
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, Ct)) > 0)
            {
                total += n;
            }
        });
        Assert.Equal(100, total);
        await Assert.ThrowsAsync<Pop3StreamException>(async () => _ = await stream.ReadAsync(buffer, Ct));
        await stream.DisposeAsync();
    }

    [Fact]
    public async Task A_message_stream_obeys_the_operation_deadline_and_disposing_it_ends()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.NeverEndingMessage(Faults.OnVerb("RETR", 1))));
        await using var connection = await LoggedInAsync(Plain(sim) with { OperationDeadline = TimeSpan.FromSeconds(1) });
        var stream = Ok(await connection.OpenMessageAsync(1, Ct));
        var buffer = new byte[65536];
        var watch = Stopwatch.StartNew();
        var failure = await Assert.ThrowsAsync<Pop3StreamException>(async () =>
        {
            while (await stream.ReadAsync(buffer, Ct) > 0)
            {
                // Each read is an operation: the deadline applies to each, so read in one go until it fires.
                await Task.Yield();
            }
        }).WaitAsync(TimeSpan.FromSeconds(60), Ct);
        Assert.True(failure.Error.IsTransport, failure.Message);
        var disposing = stream.DisposeAsync().AsTask();
        Assert.Same(disposing, await Task.WhenAny(disposing, Task.Delay(TimeSpan.FromSeconds(10), Ct)));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task Disposing_a_stream_over_an_endless_message_closes_the_connection_rather_than_hang()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.NeverEndingMessage(Faults.OnVerb("RETR", 1))));
        await using var connection = await LoggedInAsync(Plain(sim));
        var stream = Ok(await connection.OpenMessageAsync(1, Ct));
        var disposing = stream.DisposeAsync().AsTask();
        Assert.Same(disposing, await Task.WhenAny(disposing, Task.Delay(TimeSpan.FromSeconds(30), Ct)));
        Assert.True(Error(await connection.NoopAsync(Ct)).IsTransport);
    }

    [Fact]
    public async Task The_greeting_is_refreshed_after_an_explicit_STLS()
    {
        await using var sim = await StartAsync();
        var options = Plain(sim) with { TlsServerName = "localhost", CertificateValidation = Trust(sim) };
        await using var connection = Ok(await Pop3Connection.ConnectAsync(options, Ct));
        Assert.True(connection.Greeting.Capabilities.Stls);
        Ok(await connection.StartTlsAsync(Ct));
        Assert.True(connection.Greeting.TlsActive);
        Assert.False(connection.Greeting.Capabilities.Stls);
        Assert.False(connection.Greeting.ApopAvailable);
    }

    [Fact]
    public async Task A_connect_that_runs_out_of_time_names_the_connect_timeout()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Silence(Faults.OnCommand(0))));
        var options = Plain(sim) with { ConnectTimeout = TimeSpan.FromMilliseconds(500) };
        var error = Error(await Pop3Connection.ConnectAsync(options, Ct));
        Assert.True(error.IsTransport, error.Message);
        Assert.Contains("connect timeout", error.Message);
    }

    [Fact]
    public async Task Time_spent_by_the_caller_between_messages_is_not_the_server_being_slow()
    {
        // A lock-step server (no PIPELINING), a one-second window, a caller that takes longer per message.
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.rfc1939));
        var options = Plain(sim) with { LowSpeedLimitOctets = 20, LowSpeedTime = TimeSpan.FromSeconds(1) };
        await using var connection = await LoggedInAsync(options);
        await foreach (var result in connection.RetrieveManyAsync(
            [1UL, 2UL],
            async (_, _, ct) => await Task.Delay(TimeSpan.FromMilliseconds(1300), ct),
            Ct))
        {
            Ok(result);
            await Task.Delay(TimeSpan.FromMilliseconds(1300), Ct);
        }
    }

    [Fact]
    public async Task A_second_operation_while_one_runs_is_refused_as_a_usage_error()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Latency(TimeSpan.FromMilliseconds(300))));
        await using var connection = await LoggedInAsync(Plain(sim));
        var first = connection.RetrieveBytesAsync(1, Ct).AsTask();
        var second = Error(await connection.StatAsync(Ct));
        Assert.True(second.IsUsage, second.Message);
        Assert.Contains("another operation", second.Message);
        Assert.Equal(Stored(1), Ok(await first));
        Ok(await connection.StatAsync(Ct));
    }

    [Fact]
    public async Task Retrieving_everything_before_login_is_a_usage_error()
    {
        await using var sim = await StartAsync();
        await using var connection = Ok(await Pop3Connection.ConnectAsync(Plain(sim), Ct));
        var results = new List<Microsoft.FSharp.Core.FSharpResult<(ulong Message, byte[] Octets), Pop3Error>>();
        await foreach (var result in connection.RetrieveAllBytesAsync(Ct))
        {
            results.Add(result);
        }

        Assert.True(Error(Assert.Single(results)).IsUsage);
    }

    [Fact]
    public async Task A_status_line_dripped_slowly_fails_at_the_reply_timeout_not_never()
    {
        // 200 ms per octet: octets keep coming, so no read waits long, but the greeting's status
        // line cannot be complete within one second (DESIGN §12).
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Drip(TimeSpan.FromMilliseconds(200))));
        var options = Plain(sim) with { ReplyTimeout = TimeSpan.FromSeconds(1) };
        var watch = Stopwatch.StartNew();
        var error = Error(await Pop3Connection.ConnectAsync(options, Ct));
        Assert.True(error.IsTransport, error.Message);
        Assert.Contains("did not complete the status line", error.Message);
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(4));
    }
}
