using System.Diagnostics;
using Pop3Functional.Core;
using Pop3Functional.Shell;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Shell.Tests.Support;

namespace Pop3Functional.Shell.Tests;

public sealed class ConnectionTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_whole_plaintext_session_over_TCP_retrieves_exact_octets_and_commits_at_QUIT()
    {
        await using var sim = await StartAsync();
        var log = new CapturingLogger();
        await using var connection = Ok(await Pop3Connection.ConnectAsync(Plain(sim, log), Ct));
        Assert.Contains("Pop3Functional.Simulator ready", connection.Greeting.Text);
        Assert.True(connection.Greeting.CapaSupported);

        var maildrop = Ok(await connection.LoginAsync(User, Secret.FromString(Password), Ct));
        Assert.Equal(3UL, maildrop.Count);
        Assert.Equal(maildrop, Ok(await connection.StatAsync(Ct)));

        var list = Ok(await connection.ListAsync(Ct));
        Assert.Equal([1UL, 2UL, 3UL], list.Select(e => e.Number));
        Assert.Equal((ulong)Stored(2).Length, Ok(await connection.ListAsync(2, Ct)).Octets);
        var uids = Ok(await connection.UidlAsync(Ct));
        Assert.Equal(sim.Mailbox(User).Uids, uids.Select(u => u.Uid.Value));

        for (var n = 1; n <= 3; n++)
        {
            Assert.Equal(Stored(n), Ok(await connection.RetrieveBytesAsync((ulong)n, Ct)));
        }

        Assert.Equal("Subject: three\r\n\r\nthird\r\n"u8.ToArray(), Ok(await connection.TopBytesAsync(3, 1, Ct)));
        Ok(await connection.DeleteAsync(2, Ct));
        Assert.Equal(3, sim.Mailbox(User).Count);
        var quit = Ok(await connection.QuitAsync(Ct));
        Assert.True(quit.UpdateCompleted);
        Assert.Equal([2UL], quit.DeletionsCommitted);
        Assert.Equal(2, sim.Mailbox(User).Count);
        Assert.DoesNotContain(Password, log.All);
        Assert.Contains("C: PASS", log.All);
    }

    [Fact]
    public async Task STLS_upgrades_before_any_credential_and_capabilities_are_asked_again_over_TLS()
    {
        await using var sim = await StartAsync();
        var log = new CapturingLogger();
        await using var connection = await LoggedInAsync(Stls(sim, log));
        Assert.True(connection.IsTlsActive);
        Assert.False(connection.Capabilities.Stls);
        Assert.Equal(Stored(1), Ok(await connection.RetrieveBytesAsync(1, Ct)));
        var client = sim.Transcript.ClientLines(0);
        Assert.True(client.ToList().IndexOf("STLS") < client.ToList().IndexOf("USER alice"), string.Join(" | ", client));
        Assert.Contains(log.Lines, l => l.Contains("custom certificate validation callback accepted"));
    }

    [Fact]
    public async Task Implicit_TLS_on_the_POP3S_port()
    {
        await using var sim = await StartAsync();
        await using var connection = await LoggedInAsync(Implicit(sim));
        Assert.True(connection.IsTlsActive);
        Assert.True(connection.Greeting.TlsActive);
        Assert.Equal(Stored(3), Ok(await connection.RetrieveBytesAsync(3, Ct)));
    }

    [Fact]
    public async Task The_self_signed_certificate_is_rejected_by_default_and_nothing_is_sent()
    {
        await using var sim = await StartAsync();
        var implicitTls = Implicit(sim) with { CertificateValidation = null };
        var error = Error(await Pop3Connection.ConnectAsync(implicitTls, Ct));
        Assert.True(error.IsTransport, error.Message);
        Assert.Contains("TLS handshake", error.Message);

        var stls = Stls(sim) with { CertificateValidation = null };
        error = Error(await Pop3Connection.ConnectAsync(stls, Ct));
        Assert.True(error.IsTransport, error.Message);
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("USER", StringComparison.Ordinal) || l.StartsWith("PASS", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_wrong_host_name_is_rejected_by_the_default_validation()
    {
        await using var sim = await StartAsync();
        var options = Implicit(sim) with { CertificateValidation = null, TlsServerName = "mail.example.invalid" };
        Assert.True(Error(await Pop3Connection.ConnectAsync(options, Ct)).IsTransport);
    }

    [Fact]
    public async Task TLS_required_but_no_STLS_offered_sends_no_credential()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithStls(false));
        var error = Error(await Pop3Connection.ConnectAsync(Stls(sim), Ct));
        Assert.True(error.IsProtocol, error.Message);
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("USER", StringComparison.Ordinal) || l.StartsWith("PASS", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TLS_required_and_STLS_answered_with_ERR_sends_no_credential()
    {
        var options = SimulatorOptions.Default.WithFaults(Faults.ErrorReply(Faults.OnVerb("STLS"), "SYS/TEMP", "not now"));
        await using var sim = await StartAsync(options);
        var error = Error(await Pop3Connection.ConnectAsync(Stls(sim), Ct));
        Assert.False(error.IsUsage, error.Message);
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("USER", StringComparison.Ordinal) || l.StartsWith("PASS", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Bytes_injected_after_the_STLS_OK_are_rejected_and_no_credential_is_sent()
    {
        var options = SimulatorOptions.Default.WithFaults(FaultPlan.Of(Faults.InjectAfterStls("+OK injected\r\n"u8.ToArray())));
        await using var sim = await StartAsync(options);
        var error = Error(await Pop3Connection.ConnectAsync(Stls(sim), Ct));
        Assert.True(error.IsProtocol, error.Message);
        Assert.Equal(ProtocolErrorKind.ResponseInjection, ((Pop3Error.Protocol)error).Item.Kind);
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("USER", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_silent_server_fails_at_the_reply_timeout_with_a_transport_error()
    {
        // Not STAT: the core sends STAT itself right after login.
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Silence(Faults.OnVerb("NOOP"))));
        var options = Plain(sim) with { ReplyTimeout = TimeSpan.FromMilliseconds(500) };
        await using var connection = await LoggedInAsync(options);
        var watch = Stopwatch.StartNew();
        var error = Error(await connection.NoopAsync(Ct));
        Assert.True(error.IsTransport, error.Message);
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(5));
        Assert.Contains("sent nothing", error.Message);
        // Sticky: the connection is closed, every later call says so.
        Assert.True(Error(await connection.StatAsync(Ct)).IsTransport);
    }

    [Fact]
    public async Task A_drip_fed_body_fails_at_the_operation_deadline_not_never()
    {
        // Two milliseconds per octet: the login's few hundred octets arrive, a 100 KB body never would.
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Drip(TimeSpan.FromMilliseconds(2))));
        sim.Mailbox(User).Add(MessageContent.Generated(100_000, 1));
        var options = Plain(sim) with { OperationDeadline = TimeSpan.FromSeconds(3) };
        await using var connection = await LoggedInAsync(options);
        var watch = Stopwatch.StartNew();
        var error = Error(await connection.RetrieveBytesAsync(4, Ct));
        Assert.True(error.IsTransport, error.Message);
        Assert.Contains("deadline", error.Message);
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(2.5), TimeSpan.FromSeconds(8));
    }

    [Fact]
    public async Task Cancelling_mid_RETR_throws_and_closes_the_connection()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Latency(TimeSpan.FromMilliseconds(300))));
        await using var connection = await LoggedInAsync(Plain(sim));
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await connection.RetrieveBytesAsync(1, cts.Token));
        var after = Error(await connection.NoopAsync(Ct));
        Assert.True(after.IsTransport, after.Message);
        Assert.Contains("cancelled", after.Message);
    }

    [Fact]
    public async Task A_reset_in_the_middle_of_a_body_is_a_typed_error_and_earlier_messages_stay_intact()
    {
        var plan = FaultPlan.Of(Faults.DisconnectInBody(Faults.OnVerb("RETR", 2), 10));
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(plan));
        await using var connection = await LoggedInAsync(Plain(sim));
        Assert.Equal(Stored(1), Ok(await connection.RetrieveBytesAsync(1, Ct)));
        var error = Error(await connection.RetrieveBytesAsync(2, Ct));
        Assert.True(error.IsProtocol, error.Message);
        Assert.Equal(ProtocolErrorKind.ConnectionClosed, ((Pop3Error.Protocol)error).Item.Kind);
        // How much of which message arrived: 10 body octets of RETR 2.
        Assert.Contains("after 10 octets of the reply to RETR 2", error.Message);
    }

    [Fact]
    public async Task A_caller_stream_carries_the_session()
    {
        await using var sim = await StartAsync();
        var options = new Pop3ConnectionOptions { Tls = TlsMode.NoTls, AllowPlaintextCredentials = true };
        await using var connection = Ok(await Pop3Connection.ConnectAsync(sim.ConnectInMemory(), options, Ct));
        Ok(await connection.LoginAsync(User, Secret.FromString(Password), Ct));
        Assert.Equal(Stored(2), Ok(await connection.RetrieveBytesAsync(2, Ct)));
        Assert.Equal("stream", connection.Endpoint);
    }

    [Fact]
    public async Task A_zero_timeout_is_refused_before_connecting()
    {
        var error = Error(await Pop3Connection.ConnectAsync(Pop3ConnectionOptions.ForHost("127.0.0.1", 9) with { ReplyTimeout = TimeSpan.Zero }, Ct));
        Assert.True(error.IsUsage, error.Message);
    }

    [Fact]
    public async Task Refused_connections_and_unknown_hosts_are_transport_errors()
    {
        var refused = Error(await Pop3Connection.ConnectAsync(Pop3ConnectionOptions.ForHost("127.0.0.1", 9).WithoutTls(false), Ct));
        Assert.True(refused.IsTransport, refused.Message);
        var unknown = Error(await Pop3Connection.ConnectAsync(Pop3ConnectionOptions.ForHost("no-such-host.invalid", 110), Ct));
        Assert.True(unknown.IsTransport, unknown.Message);
    }

    [Fact]
    public async Task Plaintext_credentials_are_refused_without_the_second_opt_in()
    {
        await using var sim = await StartAsync();
        var options = Plain(sim) with { AllowPlaintextCredentials = false };
        await using var connection = Ok(await Pop3Connection.ConnectAsync(options, Ct));
        var error = Error(await connection.LoginAsync(User, Secret.FromString(Password), Ct));
        Assert.True(error.IsUsage, error.Message);
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("PASS", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Server_errors_are_values_with_their_response_code()
    {
        await using var sim = await StartAsync();
        await using var connection = Ok(await Pop3Connection.ConnectAsync(Plain(sim), Ct));
        var error = Error(await connection.LoginAsync(User, Secret.FromString("wrong"), Ct));
        Assert.True(error.IsServer, error.Message);
        Assert.Equal("AUTH", ((Pop3Error.Server)error).Item.Code.Value.Text);
        // The session goes on: the right password works next.
        Ok(await connection.LoginAsync(User, Secret.FromString(Password), Ct));
    }
}

/// <summary>GC.GetTotalAllocatedBytes counts the whole process: this runs with no other test beside it.</summary>
[CollectionDefinition(nameof(AllocationTests), DisableParallelization = true)]
public sealed class AllocationCollection;

[Collection(nameof(AllocationTests))]
public sealed class AllocationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_50_MiB_message_streams_through_with_allocations_far_below_its_size()
    {
        await using var sim = await StartAsync();
        // Text lines without leading dots: this measures the streaming itself; stuffed lines are
        // measured by the next test.
        const int size = 50 * 1024 * 1024;
        var line = "All work and no play makes a very long message indeed, line after line.\r\n"u8.ToArray();
        var octets = new byte[size];
        for (var at = 0; at < size; at += line.Length)
        {
            line.AsSpan(0, Math.Min(line.Length, size - at)).CopyTo(octets.AsSpan(at));
        }

        octets[^2] = 13;
        octets[^1] = 10;
        sim.Mailbox("big", "pw").Add(octets);
        var options = Plain(sim);
        await using var connection = Ok(await Pop3Connection.ConnectAsync(options, Ct));
        Ok(await connection.LoginAsync("big", Secret.FromString("pw"), Ct));
        long received = 0;
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var retrieval = Ok(await connection.RetrieveAsync(1, (bytes, _) => { received += bytes.Length; return ValueTask.CompletedTask; }, Ct));
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.Equal(size, received);
        Assert.Equal((ulong)size, retrieval.Octets);
        // Client and in-process server together: a small fraction of the 50 MiB (1.9 MB measured).
        Assert.True(allocated < size / 16, $"allocated {allocated:N0} octets");
    }

    [Fact]
    public async Task A_message_of_dot_stuffed_lines_streams_through_without_allocating_per_line()
    {
        await using var sim = await StartAsync();
        // Every line starts with "." (stuffed on the wire): each stuffed dot splits the body into one
        // more slice, which the core queues as a value, not as an event, an output and a list cell.
        const int size = 20 * 1024 * 1024;
        var line = ".All work and no play makes a very long message indeed, line after line.\r\n"u8.ToArray();
        var octets = new byte[size];
        for (var at = 0; at < size; at += line.Length)
        {
            line.AsSpan(0, Math.Min(line.Length, size - at)).CopyTo(octets.AsSpan(at));
        }

        octets[^2] = 13;
        octets[^1] = 10;
        sim.Mailbox("dots", "pw").Add(octets);
        var options = Plain(sim);
        await using var connection = Ok(await Pop3Connection.ConnectAsync(options, Ct));
        Ok(await connection.LoginAsync("dots", Secret.FromString("pw"), Ct));
        long received = 0;
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var retrieval = Ok(await connection.RetrieveAsync(1, (bytes, _) => { received += bytes.Length; return ValueTask.CompletedTask; }, Ct));
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.Equal(size, received);
        Assert.Equal((ulong)size, retrieval.Octets);
        // 283,000 stuffed lines at about 130 octets each as events would be 37 MB; client and server
        // together measured 0.4 MB.
        Assert.True(allocated < size / 16, $"allocated {allocated:N0} octets");
    }
}
