using System.Diagnostics;
using Xunit;
using static Pop3Functional.Simulator.CSharp.Tests.Support;

namespace Pop3Functional.Simulator.CSharp.Tests;

/// <summary>The transcript of a session, named fault plans, and a server that never answers.</summary>
public class TranscriptAndFaultTests
{
    [Fact]
    public async Task The_transcript_shows_the_session_with_PASS_redacted()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default, ct);
        sim.Mailbox("alice", "s3cret!").Add("Subject: hi\n\nbody\n");

        await using (var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct))
        {
            await client.ReadLineAsync(ct);
            await client.LoginAsync("alice", "s3cret!", ct);
            await client.CommandAsync("STAT", ct);
            await client.RetrAsync(1, ct);
            await client.CommandAsync("QUIT", ct);
            Assert.Equal(0, await client.ReadToEndAsync(ct));
        }

        var transcript = sim.Transcript;
        Assert.Equal(["USER alice", "PASS [redacted]", "STAT", "RETR 1", "QUIT"], transcript.ClientLines(1));
        Assert.Equal(transcript.ClientLines(1), transcript.ClientLines());

        var lines = transcript.Lines;
        Assert.Equal(lines.Length, transcript.Count); // an F# list: Length, not Count (docs/simulator.md)
        Assert.All(lines, line => Assert.Equal(1, line.Session));
        Assert.All(lines, line => Assert.DoesNotContain("s3cret", line.Text, StringComparison.Ordinal));
        Assert.Equal(Speaker.Server, lines[0].Speaker);
        Assert.StartsWith("+OK Pop3Functional.Simulator ready", lines[0].Text, StringComparison.Ordinal);
        Assert.Equal(Speaker.Client, lines[1].Speaker);
        Assert.Contains("[body of message 1]", transcript.ServerLines(1));
        Assert.Equal("S1 C: USER alice", lines[1].ToString());
        Assert.Contains("S1 C: PASS [redacted]", transcript.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithTranscript_false_keeps_none()
    {
        using var deadline = Deadline();
        await using var sim = await Pop3Simulator.StartAsync(
            SimulatorOptions.Default.WithTranscript(false), deadline.Token);
        Assert.Null(sim.Transcript);
    }

    [Fact]
    public async Task The_named_plan_err_retr_answers_RETR_with_SYS_TEMP()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        Assert.Contains("err-retr", Faults.Names);
        Assert.True(Faults.TryParse("err-retr", out var plan));
        Assert.False(plan.IsEmpty);
        Assert.False(Faults.TryParse("no-such-plan", out var none));
        Assert.True(none.IsEmpty);

        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default.WithFaults(plan), ct);
        sim.Mailbox("kim", "pw").Add("Subject: later\n\nbody\n");

        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        await client.ReadLineAsync(ct);
        await client.LoginAsync("kim", "pw", ct);
        Assert.StartsWith("+OK 1 ", await client.CommandAsync("STAT", ct), StringComparison.Ordinal);
        Assert.StartsWith("-ERR [SYS/TEMP]", await client.CommandAsync("RETR 1", ct), StringComparison.Ordinal);
        Assert.StartsWith("+OK", await client.CommandAsync("NOOP", ct), StringComparison.Ordinal);
        Assert.StartsWith("+OK", await client.CommandAsync("QUIT", ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_silenced_STAT_hangs_until_the_client_gives_up_and_disposal_still_ends_quickly()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        var sim = await Pop3Simulator.StartAsync(
            SimulatorOptions.Default.WithFaults(Faults.Silence(Faults.OnVerb("STAT"))), ct);
        try
        {
            sim.Mailbox("lee", "pw").Add("Subject: x\n\ny\n");
            await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
            await client.ReadLineAsync(ct);
            await client.LoginAsync("lee", "pw", ct);

            using var patience = CancellationTokenSource.CreateLinkedTokenSource(ct);
            patience.CancelAfter(TimeSpan.FromMilliseconds(300));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.CommandAsync("STAT", patience.Token));
            Assert.Equal(1, sim.ActiveSessions); // the session is still there, hanging

            // The client is still connected: disposal must close the hanging session itself.
            var stopwatch = Stopwatch.StartNew();
            await sim.DisposeAsync();
            Assert.InRange(stopwatch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(5));
            Assert.Equal(0, sim.ActiveSessions);
            Assert.Empty(sim.Errors);
        }
        finally
        {
            await sim.DisposeAsync(); // a second call returns the same finished task
        }
    }
}
