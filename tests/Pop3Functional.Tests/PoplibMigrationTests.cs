using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging;
using Pop3Functional.Core;
using Pop3Functional.Shell;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Tests.Support;

namespace Pop3Functional.Tests;

/// <summary>One test per row of docs/poplib-migration.md, in the table's order.</summary>
public sealed class PoplibMigrationTests
{
    [Fact]
    public async Task POP3_host_port_is_Connect_host_port_with_STLS_required()
    {
        await using var sim = await StartAsync();
        var builder = Pop3.Connect(sim.Endpoint.Address.ToString(), sim.Endpoint.Port);
        Assert.Equal(TlsMode.StartTlsRequired, builder.Tls);
        await using var session = await OpenAsync(builder.WithServerName("localhost").WithCertificateValidation(Trust(sim)));
        Assert.True(session.IsTlsActive);
    }

    [Fact]
    public async Task POP3_SSL_with_context_is_Connect_with_implicit_TLS_and_certificate_options()
    {
        await using var sim = await StartAsync();
        Assert.Equal(Pop3.ImplicitTlsPort, Pop3.Connect("pop.example.com").Port);
        Assert.Equal(995, Pop3.ImplicitTlsPort);
        Assert.Equal(TlsMode.Implicit, Pop3.Connect("pop.example.com").Tls);
        await using var session = await OpenAsync(Implicit(sim));
        Assert.True(session.Greeting.TlsActive);
    }

    [Fact]
    public async Task Timeout_is_WithTimeout()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Silence(Faults.OnVerb("LIST"))));
        await using var session = await OpenAsync(InMemory(sim).WithTimeout(TimeSpan.FromMilliseconds(300)));
        Ok(await session.LoginAsync(User, Secrets.FromString(Password), Ct));
        AssertCode(Pop3ErrorCodes.TimedOut, await session.ListAsync(Ct));
    }

    [Fact]
    public async Task Timeout_of_zero_is_a_usage_error_before_connecting()
    {
        await using var sim = await StartAsync();
        var result = await Stls(sim).WithTimeout(TimeSpan.Zero).OpenAsync(Ct);
        AssertCode(Pop3ErrorCodes.InvalidArgument, result);
        Assert.Equal(Pop3ErrorKind.Usage, Fail(result).Kind);
        Assert.Equal(0, sim.SessionsStarted);
    }

    [Fact]
    public async Task Error_proto_is_a_failure_value()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.ErrorReply(Faults.OnVerb("DELE"), "", "cannot delete")));
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        var failure = Fail(await session.DeleteAsync(1, Ct));
        Assert.Equal(Pop3ErrorKind.Server, failure.Kind);
        Assert.Contains("cannot delete", failure.Message, StringComparison.Ordinal);
        Assert.True(Some(failure.Cause).IsServer);
    }

    [Fact]
    public async Task Set_debuglevel_is_WithDebugLevel()
    {
        await using var sim = await StartAsync();
        var quiet = new CapturingLogger();
        await using (await OpenAsync(InMemory(sim).WithLogin().WithLogger(quiet).WithDebugLevel(0)))
        {
        }

        var chatty = new CapturingLogger();
        await using (await OpenAsync(InMemory(sim).WithLogin().WithMechanism(Pop3Mechanism.UserPass).WithLogger(chatty).WithDebugLevel(1)))
        {
        }

        Assert.DoesNotContain(quiet.Lines, l => l.Level <= LogLevel.Debug);
        Assert.Contains(chatty.Lines, l => l.Level == LogLevel.Debug && l.Text.Contains("USER alice", StringComparison.Ordinal));
        Assert.DoesNotContain(chatty.Lines, l => l.Level == LogLevel.Trace);
        Assert.DoesNotContain(Password, chatty.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Set_debuglevel_without_a_logger_prints_the_redacted_dialogue()
    {
        await using var sim = await StartAsync();
        var printed = new StringWriter();
        await using (await OpenAsync(InMemory(sim).WithLogin().WithMechanism(Pop3Mechanism.UserPass).WithDebugLevel(1, printed)))
        {
        }

        var text = printed.ToString();
        Assert.Contains("C: USER alice", text, StringComparison.Ordinal);
        Assert.Contains("C: PASS ********", text, StringComparison.Ordinal);
        Assert.DoesNotContain(Password, text, StringComparison.Ordinal);

        var silent = new StringWriter();
        await using (await OpenAsync(InMemory(sim).WithLogin().WithDebugLevel(0, silent)))
        {
        }

        Assert.Equal("", silent.ToString());
    }

    [Fact]
    public async Task Getwelcome_is_Greeting()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.simulator.WithGreeting("Hello from the test")));
        await using var session = await OpenAsync(InMemory(sim));
        Assert.Contains("Hello from the test", session.Greeting.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Capa_is_CapabilitiesAsync()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim));
        var capabilities = Ok(await session.CapabilitiesAsync(Ct));
        Assert.True(capabilities.User);
        Assert.Contains("USER", capabilities.Lines);
    }

    [Fact]
    public async Task User_and_pass_are_UserAsync_and_PassAsync_or_LoginAsync_in_one_call()
    {
        await using var sim = await StartAsync();
        await using (var session = await OpenAsync(InMemory(sim)))
        {
            Ok(await session.UserAsync(User, Ct));
            Assert.Equal(3UL, Ok(await session.PassAsync(Secrets.FromString(Password), Ct)).Count);
        }

        await using (var session = await OpenAsync(InMemory(sim)))
        {
            Assert.Equal(3UL, Ok(await session.LoginAsync(User, Secrets.FromString(Password), Ct)).Count);
        }

        Assert.Contains("USER alice", sim.Transcript.ClientLines(0));
        Assert.Contains("USER alice", sim.Transcript.ClientLines(1));
    }

    [Fact]
    public async Task Pass_before_user_is_a_usage_failure_and_nothing_is_sent()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim));
        var failed = await session.PassAsync(Secrets.FromString(Password), Ct);
        AssertCode(Pop3ErrorCodes.WrongState, failed);
        Assert.Equal(Pop3ErrorKind.Usage, Fail(failed).Kind);
        Assert.True(session.IsHealthy);
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("PASS", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Apop_is_ApopAsync_and_refuses_a_greeting_without_a_timestamp()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.simulator.WithApop(false)));
        await using var session = await OpenAsync(InMemory(sim));
        Assert.False(session.Greeting.ApopAvailable);
        AssertCode(Pop3ErrorCodes.ApopUnavailable, await session.ApopAsync(User, Secrets.FromString(Password), Ct));
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("APOP", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Rpop_is_RpopAsync()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.simulator.WithRpop(true)));
        await using var session = await OpenAsync(InMemory(sim));
        Assert.Equal(3UL, Ok(await session.RpopAsync(User, Ct)).Count);
    }

    [Fact]
    public async Task Stat_is_StatAsync()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        var stat = Ok(await session.StatAsync(Ct));
        Assert.Equal((ulong)(Stored(1).Length + Stored(2).Length + Stored(3).Length), stat.Octets);
    }

    [Fact]
    public async Task List_is_ListAsync()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        Assert.Equal(3, Ok(await session.ListAsync(Ct)).Count);
        Assert.Equal((ulong)Stored(3).Length, Ok(await session.ListAsync(3, Ct)).Octets);
    }

    [Fact]
    public async Task Retr_is_RetrieveBytesAsync_dot_unstuffed()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        var bytes = Ok(await session.RetrieveBytesAsync(1, Ct));
        Assert.Contains("\r\n.a dot line\r\n", Encoding.ASCII.GetString(bytes), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dele_is_DeleteAsync()
    {
        await using var sim = await StartAsync();
        await using (var session = await OpenAsync(InMemory(sim).WithLogin()))
        {
            Ok(await session.DeleteAsync(1, Ct));
        }

        Assert.Equal(2, sim.Mailbox(User).Count);
    }

    [Fact]
    public async Task Rset_is_ResetAsync()
    {
        await using var sim = await StartAsync();
        await using (var session = await OpenAsync(InMemory(sim).WithLogin()))
        {
            Ok(await session.DeleteAsync(1, Ct));
            Ok(await session.ResetAsync(Ct));
        }

        Assert.Equal(3, sim.Mailbox(User).Count);
    }

    [Fact]
    public async Task Noop_is_NoopAsync()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        Ok(await session.NoopAsync(Ct));
        Assert.Contains("NOOP", sim.Transcript.ClientLines(0));
    }

    [Fact]
    public async Task Quit_is_QuitAsync_and_says_what_was_committed()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        Ok(await session.DeleteAsync(1, Ct));
        Ok(await session.DeleteAsync(3, Ct));
        var quit = Ok(await session.QuitAsync(Ct));
        Assert.Equal(new ulong[] { 1, 3 }, quit.DeletionsCommitted.ToArray());
        Assert.Equal(1, sim.Mailbox(User).Count);
    }

    [Fact]
    public async Task Top_is_TopBytesAsync()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        Assert.Equal("Subject: one\r\n\r\nfirst message\r\n", Encoding.ASCII.GetString(Ok(await session.TopBytesAsync(1, 1, Ct))));
    }

    [Fact]
    public async Task Uidl_is_UidlAsync()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        Assert.Equal(sim.Mailbox(User).Uids.ToArray(), Ok(await session.UidlAsync(Ct)).Map(e => e.Uid.Value).ToArray());
        Assert.Equal(sim.Mailbox(User).Uids[0], Ok(await session.UidlAsync(1, Ct)).Uid.Value);
    }

    [Fact]
    public async Task Utf8_is_Utf8Async_or_WithUtf8()
    {
        await using var sim = await StartAsync();
        await using (await OpenAsync(InMemory(sim).WithUtf8().WithLogin().WithMechanism(Pop3Mechanism.UserPass)))
        {
        }

        Assert.Equal("UTF8", sim.Transcript.ClientLines(0).First(l => l == "UTF8" || l.StartsWith("USER", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Stls_is_StartTlsAsync()
    {
        await using var sim = await StartAsync();
        var builder = Pop3.Connect(sim.Endpoint.Address.ToString(), sim.Endpoint.Port).WithoutTls().WithServerName("localhost").WithCertificateValidation(Trust(sim));
        await using var session = await OpenAsync(builder);
        Ok(await session.StartTlsAsync(Ct));
        Assert.True(session.IsTlsActive);
    }

    [Fact]
    public async Task Audit_events_are_activity_events()
    {
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == Pop3Telemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var sim = await StartAsync();
        await using (var session = await OpenAsync(Plain(sim).WithLogin()))
        {
            Ok(await session.NoopAsync(Ct));
        }

        var mine = stopped.Where(a => Equals(a.GetTagItem("server.port"), sim.Endpoint.Port)
            || (a.GetTagItem("server.endpoint") as string)?.EndsWith($":{sim.Endpoint.Port}", StringComparison.Ordinal) == true).ToList();
        var connect = Assert.Single(mine.SelectMany(a => a.Events), e => e.Name == "poplib.connect");
        Assert.Equal(sim.Endpoint.Port, connect.Tags.First(t => t.Key == "port").Value);
        var lines = mine.SelectMany(a => a.Events).Where(e => e.Name == "poplib.putline").Select(e => e.Tags.First(t => t.Key == "line").Value as string).ToList();
        Assert.Contains("NOOP", lines);
        Assert.DoesNotContain(lines, l => l!.Contains(Password, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Message_numbers_are_checked_against_the_login_snapshot()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        AssertCode(Pop3ErrorCodes.NoSuchMessage, await session.DeleteAsync(7, Ct));
        Assert.DoesNotContain("DELE 7", sim.Transcript.ClientLines(0));
    }

    [Fact]
    public async Task Plaintext_passwords_need_two_explicit_opt_ins()
    {
        await using var sim = await StartAsync();
        var once = Pop3.Connect(sim.Endpoint.Address.ToString(), sim.Endpoint.Port).WithoutTls().WithLogin().WithMechanism(Pop3Mechanism.UserPass);
        AssertCode(Pop3ErrorCodes.PlaintextCredentials, await once.OpenAsync(Ct));
        await using (await OpenAsync(once.AllowPlaintextCredentials()))
        {
        }

        // Both opt-ins are explicit whatever their order.
        var optInFirst = Pop3.Connect(sim.Endpoint.Address.ToString(), sim.Endpoint.Port).AllowPlaintextCredentials().WithoutTls();
        await using (await OpenAsync(optInFirst.WithLogin().WithMechanism(Pop3Mechanism.UserPass)))
        {
        }

        // The opt-in alone never drops a required TLS.
        await using var noStls = await StartAsync(SimulatorOptions.Default.WithStls(false));
        AssertCode(Pop3ErrorCodes.TlsUnavailable, await Stls(noStls).AllowPlaintextCredentials().WithLogin().OpenAsync(Ct));
        Assert.DoesNotContain(noStls.Transcript.ClientLines(0), l => l.StartsWith("PASS", StringComparison.Ordinal) || l.StartsWith("APOP", StringComparison.Ordinal));
    }
}
