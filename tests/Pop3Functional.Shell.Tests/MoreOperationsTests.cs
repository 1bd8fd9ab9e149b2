using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Pop3Functional.Core;
using Pop3Functional.Shell;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Shell.Tests.Support;

namespace Pop3Functional.Shell.Tests;

public sealed class MoreOperationsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RetrieveMany_pipelines_RETRs_and_yields_every_message_exactly_in_order()
    {
        await using var sim = await StartAsync();
        for (var i = 0; i < 20; i++)
        {
            sim.Mailbox(User).Add($"Subject: extra {i}\n\n.line {i}\n");
        }

        var log = new CapturingLogger();
        await using var connection = await LoggedInAsync(Plain(sim, log));
        var bodies = new Dictionary<ulong, MemoryStream>();
        var order = new List<ulong>();
        var numbers = Enumerable.Range(1, 23).Select(n => (ulong)n).ToList();
        await foreach (var result in connection.RetrieveManyAsync(
            numbers,
            (message, bytes, ct) =>
            {
                if (!bodies.TryGetValue(message, out var body))
                {
                    bodies[message] = body = new MemoryStream();
                }

                return body.WriteAsync(bytes, ct);
            },
            Ct))
        {
            order.Add(Ok(result).Message);
        }

        Assert.Equal(numbers, order);
        for (var n = 1; n <= 3; n++)
        {
            Assert.Equal(Stored(n), bodies[(ulong)n].ToArray());
        }

        Assert.Equal(MessageContent.OfText("Subject: extra 19\n\n.line 19\n").ToArray(), bodies[23].ToArray());
        Ok(await connection.QuitAsync(Ct));

        // Pipelining: the client wrote several RETRs before the first body arrived (the server
        // offers PIPELINING); QUIT went last, after every reply.
        var lines = log.Lines.ToList();
        var secondRetr = lines.FindIndex(l => l.Contains("C: RETR 2", StringComparison.Ordinal));
        var firstBody = lines.FindIndex(l => l.Contains("[body of", StringComparison.Ordinal));
        Assert.True(secondRetr >= 0 && secondRetr < firstBody, string.Join("\n", lines.Take(60)));
        var server = sim.Transcript.ClientLines(1);
        Assert.Equal("QUIT", server.Last());
        Assert.Equal(23, server.Count(l => l.StartsWith("RETR ", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Progress_hears_of_every_slice_and_every_completed_message()
    {
        await using var sim = await StartAsync();
        await using var connection = await LoggedInAsync(Plain(sim));
        var reports = new List<Pop3Progress>();
        var progress = new SynchronousProgress(reports.Add);
        await foreach (var result in connection.RetrieveManyAsync([1UL, 2UL], (_, _, _) => ValueTask.CompletedTask, progress, Ct))
        {
            Ok(result);
        }

        Assert.Equal([1UL, 2UL], reports.Where(r => r.Completed).Select(r => r.Message));
        Assert.Equal((ulong)Stored(2).Length, reports.Last(r => r.Message == 2).OctetsReceived);
        Assert.Contains(reports, r => !r.Completed && r.Message == 1);
    }

    /// <summary>IProgress that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SynchronousProgress(Action<Pop3Progress> report) : IProgress<Pop3Progress>
    {
        public void Report(Pop3Progress value) => report(value);
    }

    [Fact]
    public async Task RetrieveAllBytes_gives_the_whole_maildrop()
    {
        await using var sim = await StartAsync();
        await using var connection = await LoggedInAsync(Plain(sim));
        var all = new List<(ulong, byte[])>();
        await foreach (var result in connection.RetrieveAllBytesAsync(Ct))
        {
            all.Add(Ok(result));
        }

        Assert.Equal([1UL, 2UL, 3UL], all.Select(m => m.Item1));
        Assert.Equal(Stored(2), all[1].Item2);
    }

    [Fact]
    public async Task A_message_read_as_a_stream_while_it_arrives_is_exact_and_the_session_goes_on()
    {
        await using var sim = await StartAsync();
        var big = MessageContent.Generated(300_000, 9);
        sim.Mailbox(User).Add(big);
        await using var connection = await LoggedInAsync(Plain(sim));
        var copy = new MemoryStream();
        await using (var stream = Ok(await connection.OpenMessageAsync(4, Ct)))
        {
            var buffer = new byte[1000];
            int n;
            while ((n = await stream.ReadAsync(buffer, Ct)) > 0)
            {
                copy.Write(buffer, 0, n);
            }

            Assert.Equal(300_000UL, stream.OctetsReceived);
        }

        Assert.Equal(big.ToArray(), copy.ToArray());
        Assert.Equal(Stored(1), Ok(await connection.RetrieveBytesAsync(1, Ct)));

        // Disposed half-read: the rest is read and dropped, the session goes on.
        await using (var stream = Ok(await connection.OpenMessageAsync(4, Ct)))
        {
            var buffer = new byte[10];
            Assert.Equal(10, await stream.ReadAsync(buffer, Ct));
        }

        Assert.Equal(Stored(2), Ok(await connection.RetrieveBytesAsync(2, Ct)));
        var missing = Error(await connection.OpenMessageAsync(99, Ct));
        Assert.True(missing.IsUsage, missing.Message);
    }

    [Fact]
    public async Task A_server_that_drips_below_the_low_speed_limit_fails_within_about_one_window()
    {
        // 5 ms per octet is 200 octets per second; the rule asks for 100,000 per second.
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Drip(TimeSpan.FromMilliseconds(5))));
        var options = Plain(sim) with { LowSpeedLimitOctets = 100_000, LowSpeedTime = TimeSpan.FromSeconds(1) };
        var watch = Stopwatch.StartNew();
        var error = Error(await Pop3Connection.ConnectAsync(options, Ct));
        Assert.True(error.IsTransport, error.Message);
        Assert.Contains("fewer than 100000", error.Message);
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(6));
    }

    [Fact]
    public void The_low_speed_rule_judges_whole_windows_only()
    {
        var rule = new LowSpeedRule(1000, TimeSpan.FromMilliseconds(200), "test");
        rule.ReadStarting();
        rule.Observe(10, "RETR");
        rule.ReadStarting();
        Thread.Sleep(250);
        Assert.Throws<TimeoutException>(() => rule.Observe(10, "RETR"));
        rule.Restart();
        rule.ReadStarting();
        rule.Observe(10, "RETR");
        rule.ReadStarting();
        Thread.Sleep(250);
        rule.Observe(2000, "RETR");
        rule.ReadStarting();
        rule.Observe(1, "RETR");
    }

    [Fact]
    public void The_low_speed_rule_counts_only_time_spent_waiting_for_the_server()
    {
        // The client's (or the caller's) time between reads is not the server's slowness.
        var rule = new LowSpeedRule(1000, TimeSpan.FromMilliseconds(200), "test");
        rule.ReadStarting();
        rule.Observe(10, "RETR");
        Thread.Sleep(250);
        rule.ReadStarting();
        rule.Observe(10, "RETR");
    }

    [Fact]
    public async Task UTF8_LANG_APOP_and_an_explicit_STLS()
    {
        await using var sim = await StartAsync();
        var options = Plain(sim) with { TlsServerName = "localhost", CertificateValidation = Trust(sim) };
        await using var connection = Ok(await Pop3Connection.ConnectAsync(options, Ct));
        Assert.True(connection.Greeting.ApopAvailable);
        Ok(await connection.Utf8Async(Ct));
        var languages = Ok(await connection.LanguagesAsync(Ct));
        Assert.Contains(languages, l => l.Tag == "en");
        Ok(await connection.LanguageAsync("de", Ct));
        var capabilities = Ok(await connection.StartTlsAsync(Ct));
        Assert.True(connection.IsTlsActive);
        Assert.False(capabilities.Stls);
        Ok(await connection.LoginAsync(User, Secret.FromString(Password), Ct));
        Ok(await connection.QuitAsync(Ct));

        await using var apop = Ok(await Pop3Connection.ConnectAsync(options, Ct));
        var maildrop = Ok(await apop.LoginApopAsync(User, Secret.FromString(Password), Ct));
        Assert.Equal(3UL, maildrop.Count);
        Assert.DoesNotContain(sim.Transcript.ToString(), Password);
    }

    [Fact]
    public async Task RPOP_is_answered_by_the_server_and_its_refusal_is_a_value()
    {
        await using var sim = await StartAsync();
        await using var connection = Ok(await Pop3Connection.ConnectAsync(Plain(sim), Ct));
        var error = Error(await connection.LoginRpopAsync(User, Ct));
        Assert.True(error.IsServer, error.Message);
    }

    [Fact]
    public async Task Spans_metrics_and_poplib_audit_events_never_carry_the_password()
    {
        var activities = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == Pop3Telemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activities.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        await using var sim = await StartAsync();
        var log = new CapturingLogger();
        await using (var connection = await LoggedInAsync(Stls(sim, log)))
        {
            Ok(await connection.RetrieveBytesAsync(1, Ct));
            Assert.True(Error(await connection.RetrieveBytesAsync(42, Ct)).IsUsage);
            Ok(await connection.QuitAsync(Ct));
        }

        // Other tests run in parallel in this process: keep the spans of this simulator only.
        var port = sim.Endpoint.Port;
        var mine = activities.Where(a =>
            (a.OperationName == "pop3.command" && a.GetTagItem("server.endpoint") is string e && e.EndsWith($":{port}", StringComparison.Ordinal))
            || (a.OperationName == "pop3.session" && a.GetTagItem("server.port") is int p && p == port)).ToList();
        Assert.Contains(mine, a => a.OperationName == "pop3.command" && a.GetTagItem("pop3.command") as string == "RETR" && a.GetTagItem("pop3.result") as string == "ok");
        Assert.Contains(mine, a => a.OperationName == "pop3.session" && a.Events.Any(e => e.Name == "poplib.connect"));
        var sessionSpan = mine.Single(a => a.OperationName == "pop3.session");
        Assert.All(mine.Where(a => a.OperationName == "pop3.command"), a => Assert.Equal(sessionSpan.SpanId, a.ParentSpanId));
        var putlines = mine.SelectMany(a => a.Events).Where(e => e.Name == "poplib.putline").Select(e => e.Tags.First().Value as string).ToList();
        Assert.Contains(putlines, l => l!.StartsWith("PASS", StringComparison.Ordinal));

        var everything = new StringBuilder(log.All);
        foreach (var activity in mine)
        {
            everything.AppendJoin(' ', activity.Tags.Select(t => $"{t.Key}={t.Value}"));
            everything.AppendJoin(' ', activity.Events.SelectMany(e => e.Tags.Select(t => $"{t.Key}={t.Value}")));
            everything.Append(activity.StatusDescription);
        }

        Assert.DoesNotContain(Password, everything.ToString());
        Assert.DoesNotContain(Password, sim.Transcript.ToString());
    }
}
