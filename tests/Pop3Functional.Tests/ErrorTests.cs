using System.Net;
using System.Net.Sockets;
using LanguageExt.Common;
using Pop3Functional.Core;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Tests.Support;

namespace Pop3Functional.Tests;

/// <summary>Every error kind reaches the caller as a Fin failure with the right code.</summary>
public sealed class ErrorTests
{
    // ---- server -ERR, with each response code ----

    [Fact]
    public async Task In_use_from_a_locked_maildrop()
    {
        await using var sim = await StartAsync();
        await using var first = await OpenAsync(InMemory(sim).WithLogin());
        var second = await InMemory(sim).WithLogin().OpenAsync(Ct);
        AssertCode(Pop3ErrorCodes.InUse, second);
        var failure = Fail(second);
        Assert.Equal(Pop3ErrorKind.Server, failure.Kind);
        Assert.Equal(ResponseCode.InUse, Some(failure.ResponseCode));
        Assert.Equal(Pop3ErrorCodes.Server, Pop3ErrorCodes.KindOf(failure.Code));
    }

    [Fact]
    public async Task Login_delay_when_logging_in_too_soon()
    {
        var personality = Personalities.simulator.WithEnforcedLoginDelay(TimeSpan.FromMinutes(10));
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(personality));
        await using (await OpenAsync(InMemory(sim).WithLogin()))
        {
        }

        AssertCode(Pop3ErrorCodes.LoginDelay, await InMemory(sim).WithLogin().OpenAsync(Ct));
    }

    [Theory]
    [InlineData("SYS/TEMP", Pop3ErrorCodes.SysTemp)]
    [InlineData("SYS/PERM", Pop3ErrorCodes.SysPerm)]
    [InlineData("AUTH", Pop3ErrorCodes.Auth)]
    [InlineData("UTF8", Pop3ErrorCodes.Utf8Required)]
    [InlineData("X-PRIVATE", Pop3ErrorCodes.OtherResponseCode)]
    public async Task Response_codes_of_a_refused_command(string code, int expected)
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.ErrorReply(Faults.OnVerb("RETR"), code, "refused")));
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        var result = await session.RetrieveBytesAsync(1, Ct);
        AssertCode(expected, result);
        Assert.Equal("RETR", Fail(result).Command);
        Assert.True(session.IsHealthy);
        Ok(await session.NoopAsync(Ct));
    }

    [Fact]
    public async Task Wrong_password_is_auth()
    {
        await using var sim = await StartAsync();
        var result = await InMemory(sim).WithCredentials(User, Secrets.FromString("wrong")).WithMechanism(Pop3Mechanism.UserPass).OpenAsync(Ct);
        AssertCode(Pop3ErrorCodes.Auth, result);
    }

    [Fact]
    public async Task Err_without_a_code()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.ErrorReply(Faults.OnVerb("NOOP"), "", "no")));
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        AssertCode(Pop3ErrorCodes.Server, await session.NoopAsync(Ct));
    }

    // ---- usage ----

    [Fact]
    public async Task Zero_timeout_is_refused_before_connecting()
    {
        await using var sim = await StartAsync();
        AssertCode(Pop3ErrorCodes.InvalidArgument, await Plain(sim).WithTimeout(TimeSpan.Zero).WithLogin().OpenAsync(Ct));
        AssertCode(Pop3ErrorCodes.InvalidArgument, await Plain(sim).WithTimeout(TimeSpan.FromSeconds(-1)).OpenAsync(Ct));
        Assert.Equal(0, sim.SessionsStarted);
    }

    [Fact]
    public async Task Time_limits_beyond_what_a_timer_accepts_are_refused_before_connecting()
    {
        await using var sim = await StartAsync();
        var tooLong = Pop3Builder.MaxTimeLimit + TimeSpan.FromMilliseconds(1);
        AssertCode(Pop3ErrorCodes.InvalidArgument, await Plain(sim).WithLogin().WithTimeout(TimeSpan.FromDays(100)).OpenAsync(Ct));
        AssertCode(Pop3ErrorCodes.InvalidArgument, await Plain(sim).WithLogin().WithConnectTimeout(TimeSpan.MaxValue).OpenAsync(Ct));
        AssertCode(Pop3ErrorCodes.InvalidArgument, await Plain(sim).WithLogin().WithDeadline(tooLong).OpenAsync(Ct));
        Assert.Equal(0, sim.SessionsStarted);

        await using var session = await OpenAsync(
            Plain(sim).WithLogin().WithTimeout(Pop3Builder.MaxTimeLimit).WithConnectTimeout(Pop3Builder.MaxTimeLimit).WithDeadline(Pop3Builder.MaxTimeLimit));
        Assert.Equal(Stored(1), Ok(await session.RetrieveBytesAsync(1, Ct)));
    }

    [Fact]
    public async Task Message_outside_the_snapshot_and_deleted_message()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        AssertCode(Pop3ErrorCodes.NoSuchMessage, await session.RetrieveBytesAsync(4, Ct));
        Ok(await session.DeleteAsync(1, Ct));
        AssertCode(Pop3ErrorCodes.MessageDeleted, await session.RetrieveBytesAsync(1, Ct));
        Assert.Equal(Pop3ErrorKind.Usage, Fail(await session.ListAsync(0, Ct)).Kind);
        Assert.True(session.IsHealthy);
    }

    [Fact]
    public async Task Plaintext_credentials_are_refused_without_the_second_opt_in()
    {
        await using var sim = await StartAsync();
        var builder = Pop3.Connect(sim.ConnectInMemory(), "localhost").WithoutTls().WithLogin().WithMechanism(Pop3Mechanism.UserPass);
        AssertCode(Pop3ErrorCodes.PlaintextCredentials, await builder.OpenAsync(Ct));
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("PASS", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Argument_with_a_line_break_is_refused()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim));
        AssertCode(Pop3ErrorCodes.InvalidArgument, await session.LoginAsync("alice\r\nDELE 1", Secrets.FromString(Password), Ct));
    }

    [Fact]
    public async Task Wrong_state_before_login()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim));
        AssertCode(Pop3ErrorCodes.WrongState, await session.StatAsync(Ct));
    }

    [Fact]
    public async Task Invalid_builder_options_fail_at_open()
    {
        AssertCode(Pop3ErrorCodes.InvalidArgument, await Pop3.Connect("pop.invalid").WithDebugLevel(3).OpenAsync(Ct));
        AssertCode(Pop3ErrorCodes.InvalidArgument, await Pop3.Connect("pop.invalid").WithPipeliningWindow(0, 10).OpenAsync(Ct));
        AssertCode(Pop3ErrorCodes.InvalidArgument, await Pop3.Connect("pop.invalid").WithMechanism(Pop3Mechanism.Apop).OpenAsync(Ct));
        AssertCode(Pop3ErrorCodes.InvalidArgument, await Pop3.Connect("pop.invalid").WithUser("bob").WithMechanism(Pop3Mechanism.Apop).OpenAsync(Ct));
    }

    [Fact]
    public async Task A_refused_option_given_again_with_a_valid_value_is_replaced()
    {
        await using var sim = await StartAsync();
        var unset = Secrets.FromEnvironment("POP3FUNCTIONAL_TEST_UNSET_" + Guid.NewGuid().ToString("N"));
        await using (await OpenAsync(InMemory(sim).WithCredentials(User, unset).WithCredentials(User, Secrets.FromString(Password))))
        {
        }

        await using (await OpenAsync(InMemory(sim).WithLogin().WithDebugLevel(3).WithDebugLevel(0).WithPipeliningWindow(0, 1).WithPipeliningWindow(4, 512)))
        {
        }

        AssertCode(Pop3ErrorCodes.SecretUnavailable, await Plain(sim).WithCredentials(User, Secrets.FromString(Password)).WithCredentials(User, unset).OpenAsync(Ct));
        Assert.Equal(2, sim.SessionsStarted);
    }

    [Fact]
    public async Task Unset_environment_secret_fails_before_connecting()
    {
        await using var sim = await StartAsync();
        var name = "POP3FUNCTIONAL_TEST_UNSET_" + Guid.NewGuid().ToString("N");
        var secret = Secrets.FromEnvironment(name);
        AssertCode(Pop3ErrorCodes.SecretUnavailable, secret);
        Assert.Contains(name, Fail(secret).Message, StringComparison.Ordinal);
        AssertCode(Pop3ErrorCodes.SecretUnavailable, await Plain(sim).WithCredentials(User, secret).OpenAsync(Ct));
        Assert.Equal(0, sim.SessionsStarted);
    }

    [Fact]
    public async Task Secret_sources_that_work()
    {
        await using var sim = await StartAsync();
        var name = "POP3FUNCTIONAL_TEST_SET_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(name, Password);
        try
        {
            await using (await OpenAsync(InMemory(sim).WithCredentials(User, Secrets.FromEnvironment(name))))
            {
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable(name, null);
        }

        var path = Path.GetTempFileName();
        await File.WriteAllTextAsync(path, Password + "\n", Ct);
        try
        {
            await using (await OpenAsync(InMemory(sim).WithCredentials(User, Secrets.FromFile(path))))
            {
            }
        }
        finally
        {
            File.Delete(path);
        }

        AssertCode(Pop3ErrorCodes.SecretUnavailable, Secrets.FromFile(path));
    }

    [Fact]
    public async Task Secret_file_takes_the_first_line_without_its_line_end()
    {
        var path = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(path, " pass word \r\nsecond line\n", Ct);
            Assert.Equal(" pass word ", Ok(Secrets.FromFile(path)).RevealString());

            await File.WriteAllTextAsync(path, "\nthe password on line two\n", Ct);
            var blankFirst = Secrets.FromFile(path);
            AssertCode(Pop3ErrorCodes.SecretUnavailable, blankFirst);
            Assert.Contains("first line", Fail(blankFirst).Message, StringComparison.Ordinal);
            Assert.DoesNotContain("line two", Fail(blankFirst).Message, StringComparison.Ordinal);

            await File.WriteAllTextAsync(path, "", Ct);
            Assert.Contains("is empty", Fail(Secrets.FromFile(path)).Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }

        AssertCode(Pop3ErrorCodes.SecretUnavailable, Secrets.FromFile(Path.GetTempPath()));
    }

    [Fact]
    public async Task Password_callback_runs_after_connecting_and_its_failure_is_a_value()
    {
        await using var sim = await StartAsync();
        var asked = 0;
        await using (await OpenAsync(InMemory(sim).WithCredentials(User, _ => { asked++; return ValueTask.FromResult(Secrets.FromString(Password)); })))
        {
        }

        Assert.Equal(1, asked);
        var failing = await InMemory(sim).WithCredentials(User, _ => throw new InvalidOperationException("vault sealed")).OpenAsync(Ct);
        AssertCode(Pop3ErrorCodes.SecretUnavailable, failing);
        Assert.Contains("vault sealed", Fail(failing).Message, StringComparison.Ordinal);
    }

    // ---- protocol ----

    [Fact]
    public async Task Garbage_reply_is_a_sticky_protocol_error()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.GarbageLine(Faults.OnVerb("NOOP"))));
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        var result = await session.NoopAsync(Ct);
        AssertCode(Pop3ErrorCodes.BadStatusLine, result);
        Assert.Equal(Pop3ErrorKind.Protocol, Fail(result).Kind);
        Assert.False(session.IsHealthy);
        AssertCode(Pop3ErrorCodes.BadStatusLine, await session.StatAsync(Ct));
    }

    [Fact]
    public async Task Strict_parsing_keeps_the_other_limits_and_refuses_long_lines()
    {
        await using var sim = await StartAsync();
        var capped = InMemory(sim).WithLogin().WithLimits(Limits.Default.WithMaxMessageOctets(10)).WithStrictParsing();
        await using (var session = await OpenAsync(capped))
        {
            AssertCode(Pop3ErrorCodes.MessageTooLarge, await session.RetrieveBytesAsync(1, Ct));
        }

        await using var chatty = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.simulator.WithGreeting(new string('x', 600))));
        AssertCode(Pop3ErrorCodes.LineTooLong, await InMemory(chatty).WithStrictParsing().OpenAsync(Ct));
        await using (await OpenAsync(InMemory(chatty)))
        {
        }
    }

    [Fact]
    public async Task Response_injection_after_STLS()
    {
        var options = SimulatorOptions.Default.WithFaults(FaultPlan.Of(Faults.InjectAfterStls("+OK injected\r\n"u8.ToArray())));
        await using var sim = await StartAsync(options);
        AssertCode(Pop3ErrorCodes.ResponseInjection, await Stls(sim).WithLogin().OpenAsync(Ct));
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("USER", StringComparison.Ordinal));
    }

    [Fact]
    public async Task No_STLS_when_TLS_is_required()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithStls(false));
        AssertCode(Pop3ErrorCodes.TlsUnavailable, await Stls(sim).WithLogin().OpenAsync(Ct));
    }

    [Fact]
    public async Task Truncated_body_says_how_much_arrived()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.DisconnectInBody(Faults.OnVerb("RETR"), 10)));
        await using var session = await OpenAsync(Plain(sim).WithLogin());
        var result = await session.RetrieveBytesAsync(1, Ct);
        AssertCode(Pop3ErrorCodes.ConnectionClosed, result);
        var failure = Fail(result);
        Assert.Equal(Pop3ErrorKind.Protocol, failure.Kind);
        Assert.Equal("RETR", failure.Command);
        Assert.Contains("after 10 octets", failure.Message, StringComparison.Ordinal);
        Assert.False(session.IsHealthy);
    }

    // ---- transport ----

    [Fact]
    public async Task Connection_refused_is_a_transport_error()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var result = await Pop3.Connect("127.0.0.1", port).WithoutTls().OpenAsync(Ct);
        AssertCode(Pop3ErrorCodes.Transport, result);
        Assert.Equal($"127.0.0.1:{port}", Some(Fail(result).Endpoint));
    }

    [Fact]
    public async Task Untrusted_certificate_is_a_transport_error()
    {
        await using var sim = await StartAsync();
        var builder = Pop3.Connect(sim.TlsEndpoint.Address.ToString(), sim.TlsEndpoint.Port).WithImplicitTls().WithServerName("localhost").WithLogin();
        var result = await builder.OpenAsync(Ct);
        AssertCode(Pop3ErrorCodes.Transport, result);
        Assert.True(Fail(result).Underlying.IsSome);
    }

    [Fact]
    public async Task Failing_sink_is_a_transport_error_with_its_exception()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        var result = await session.RetrieveAsync(1, (_, _) => throw new InvalidDataException("disk full"), Ct);
        AssertCode(Pop3ErrorCodes.Transport, result);
        Assert.IsType<InvalidDataException>(Some(Fail(result).Underlying));
    }

    // ---- time and cancellation ----

    [Fact]
    public async Task Silent_server_times_out()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Silence(Faults.OnVerb("NOOP"))));
        await using var session = await OpenAsync(InMemory(sim).WithLogin().WithTimeout(TimeSpan.FromMilliseconds(300)));
        var result = await session.NoopAsync(Ct);
        AssertCode(Pop3ErrorCodes.TimedOut, result);
        Assert.True(Fail(result).Is(Errors.TimedOut));
        Assert.Equal(Pop3ErrorKind.TimedOut, Fail(result).Kind);
        Assert.False(session.IsHealthy);
    }

    [Fact]
    public async Task Deadline_times_out()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.NeverEndingMessage(Faults.OnVerb("RETR"))));
        await using var session = await OpenAsync(InMemory(sim).WithLogin().WithDeadline(TimeSpan.FromMilliseconds(300)));
        AssertCode(Pop3ErrorCodes.TimedOut, await session.RetrieveAsync(1, (_, _) => ValueTask.CompletedTask, Ct));
    }

    [Fact]
    public async Task Caller_cancellation_is_cancelled_not_an_exception()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Silence(Faults.OnVerb("NOOP"))));
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        cancel.CancelAfter(TimeSpan.FromMilliseconds(200));
        var result = await session.NoopAsync(cancel.Token);
        AssertCode(Pop3ErrorCodes.Cancelled, result);
        Assert.True(Fail(result).Is(Errors.Cancelled));
        Assert.True(Fail(result).Is(Pop3Errors.Cancelled));
        Assert.False(session.IsHealthy);
    }

    [Fact]
    public async Task Cancellation_while_enumerating_ends_with_cancelled()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.NeverEndingMessage(Faults.OnVerb("RETR", 2))));
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        cancel.CancelAfter(TimeSpan.FromMilliseconds(300));
        var results = new List<LanguageExt.Fin<RetrievedMessage>>();
        await foreach (var result in session.RetrieveAllAsync(cancel.Token))
        {
            results.Add(result);
        }

        Assert.Equal(Stored(1), Ok(results[0]).Octets);
        AssertCode(Pop3ErrorCodes.Cancelled, results[^1]);
    }

    [Fact]
    public async Task Cancelled_before_connecting()
    {
        using var cancel = new CancellationTokenSource();
        await cancel.CancelAsync();
        AssertCode(Pop3ErrorCodes.Cancelled, await Pop3.Connect("127.0.0.1", 9).WithoutTls().OpenAsync(cancel.Token));
    }

    [Fact]
    public void Every_core_error_kind_and_response_code_has_its_own_code()
    {
        static IEnumerable<T> Cases<T>() =>
            typeof(T).GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
                .Where(p => p.PropertyType == typeof(T)).Select(p => (T)p.GetValue(null)!);

        var usage = Cases<UsageErrorKind>().Select(k => Pop3Error.NewUsage(new UsageError(k, "", "m")).ToFailure().Code).ToList();
        var protocol = Cases<ProtocolErrorKind>().Select(k => Pop3Error.NewProtocol(new ProtocolError(k, "", "m")).ToFailure().Code).ToList();
        var server = Cases<ResponseCode>().Select(c => Pop3Error.NewServer(new ServerError("RETR", Microsoft.FSharp.Core.FSharpOption<ResponseCode>.Some(c), "t")).ToFailure().Code).ToList();
        Assert.NotEmpty(server);
        Assert.Equal(typeof(UsageErrorKind).GetNestedType("Tags")!.GetFields().Count(f => f.IsLiteral), usage.Count);
        Assert.Equal(typeof(ProtocolErrorKind).GetNestedType("Tags")!.GetFields().Count(f => f.IsLiteral), protocol.Count);
        Assert.DoesNotContain(Pop3ErrorCodes.Usage, usage);
        Assert.DoesNotContain(Pop3ErrorCodes.Protocol, protocol);
        Assert.DoesNotContain(Pop3ErrorCodes.OtherResponseCode, server);
        Assert.Equal(usage.Count + protocol.Count + server.Count, usage.Concat(protocol).Concat(server).Distinct().Count());
        Assert.All(usage, c => Assert.Equal(Pop3ErrorCodes.Usage, Pop3ErrorCodes.KindOf(c)));
        Assert.All(protocol, c => Assert.Equal(Pop3ErrorCodes.Protocol, Pop3ErrorCodes.KindOf(c)));
        Assert.All(server, c => Assert.Equal(Pop3ErrorCodes.Server, Pop3ErrorCodes.KindOf(c)));
    }

    [Fact]
    public void Codes_are_distinct_and_kinds_group_them()
    {
        var codes = typeof(Pop3ErrorCodes).GetFields().Where(f => f.IsLiteral).Select(f => (int)f.GetRawConstantValue()!).ToList();
        Assert.Equal(codes.Count, codes.Distinct().Count());
        Assert.Equal(Pop3ErrorCodes.Usage, Pop3ErrorCodes.KindOf(Pop3ErrorCodes.NoSuchMessage));
        Assert.Equal(Pop3ErrorCodes.Protocol, Pop3ErrorCodes.KindOf(Pop3ErrorCodes.ResponseInjection));
        Assert.Equal(Errors.CancelledCode, Pop3ErrorCodes.Cancelled);
        Assert.Equal(Errors.TimedOutCode, Pop3ErrorCodes.TimedOut);
    }
}
