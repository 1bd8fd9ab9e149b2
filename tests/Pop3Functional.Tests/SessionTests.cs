using System.Text;
using Pop3Functional.Core;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Tests.Support;

namespace Pop3Functional.Tests;

/// <summary>The success path of every session method, against the simulator in memory and over TCP/TLS.</summary>
public sealed class SessionTests
{
    [Fact]
    public async Task Opening_on_a_plain_port_upgrades_with_STLS_and_logs_in()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(Stls(sim).WithLogin());
        Assert.True(session.IsTlsActive);
        Assert.Equal(new MaildropStat(3, (ulong)Texts.Sum(t => Stored(Array.IndexOf(Texts, t) + 1).Length)), Some(session.Maildrop));
        Assert.Contains(sim.Transcript.ClientLines(0), l => l == "STLS");
    }

    [Fact]
    public async Task Opening_with_implicit_TLS_logs_in()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(Implicit(sim).WithLogin());
        Assert.True(session.IsTlsActive);
        Assert.True(session.Greeting.TlsActive);
        Assert.Equal(3UL, Ok(await session.StatAsync(Ct)).Count);
    }

    [Fact]
    public async Task Opening_over_a_callers_stream_works_in_memory()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        Assert.False(session.IsTlsActive);
        Assert.Equal("stream", session.Endpoint);
        Assert.Equal(Stored(2), Ok(await session.RetrieveBytesAsync(2, Ct)));
    }

    [Fact]
    public async Task Implicit_TLS_over_a_callers_stream()
    {
        await using var sim = await StartAsync();
        var builder = Pop3.Connect(sim.ConnectInMemory(implicitTls: true), "localhost").WithCertificateValidation(Trust(sim)).WithLogin();
        await using var session = await OpenAsync(builder);
        Assert.True(session.IsTlsActive);
    }

    [Fact]
    public async Task Greeting_and_capabilities()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim));
        Assert.True(session.Greeting.ApopAvailable);
        Assert.True(session.Greeting.CapaSupported);
        Assert.True(session.Greeting.Capabilities.Stls);
        var capabilities = Ok(await session.CapabilitiesAsync(Ct));
        Assert.True(capabilities.Top);
        Assert.True(capabilities.Uidl);
        Assert.Contains("PLAIN", capabilities.SaslMechanisms);
        Assert.True(session.Maildrop.IsNone);
    }

    [Fact]
    public async Task Stat_list_and_uidl()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        var stat = Ok(await session.StatAsync(Ct));
        Assert.Equal(3UL, stat.Count);
        var list = Ok(await session.ListAsync(Ct));
        Assert.Equal(new ulong[] { 1, 2, 3 }, list.Map(e => e.Number).ToArray());
        Assert.Equal((ulong)Stored(2).Length, Ok(await session.ListAsync(2, Ct)).Octets);
        var uids = Ok(await session.UidlAsync(Ct));
        Assert.Equal(sim.Mailbox(User).Uids, uids.Map(e => e.Uid.Value));
        Assert.Equal(sim.Mailbox(User).Uids[2], Ok(await session.UidlAsync(3, Ct)).Uid.Value);
    }

    [Fact]
    public async Task Retrieve_to_a_stream_a_sink_bytes_and_a_readable_stream()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());

        using var destination = new MemoryStream();
        var retrieval = Ok(await session.RetrieveAsync(1, destination, Ct));
        Assert.Equal(Stored(1), destination.ToArray());
        Assert.Equal((ulong)Stored(1).Length, retrieval.Octets);
        Assert.True(retrieval.ListedOctets.IsNone);

        var collected = new List<byte>();
        Ok(await session.RetrieveAsync(2, (bytes, _) => { collected.AddRange(bytes.ToArray()); return ValueTask.CompletedTask; }, Ct));
        Assert.Equal(Stored(2), collected);

        Assert.Equal(Stored(3), Ok(await session.RetrieveBytesAsync(3, Ct)));

        var opened = Ok(await session.OpenMessageAsync(1, Ct));
        await using (opened)
        {
            using var copy = new MemoryStream();
            await opened.CopyToAsync(copy, Ct);
            Assert.Equal(Stored(1), copy.ToArray());
        }

        Ok(await session.NoopAsync(Ct));
        Assert.Contains("NOOP", sim.Transcript.ClientLines(0));
    }

    [Fact]
    public async Task Retrieve_all_and_many()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(Plain(sim).WithLogin());
        var all = new List<RetrievedMessage>();
        await foreach (var result in session.RetrieveAllAsync(Ct))
        {
            all.Add(Ok(result));
        }

        Assert.Equal([1UL, 2UL, 3UL], all.Select(m => m.Message));
        Assert.Equal(Stored(3), all[2].Octets);

        var bodies = new Dictionary<ulong, List<byte>>();
        var numbers = new List<ulong>();
        await foreach (var result in session.RetrieveManyAsync([3, 1], (n, bytes, _) =>
        {
            (bodies.TryGetValue(n, out var b) ? b : bodies[n] = []).AddRange(bytes.ToArray());
            return ValueTask.CompletedTask;
        }, Ct))
        {
            numbers.Add(Ok(result).Message);
        }

        Assert.Equal([3UL, 1UL], numbers);
        Assert.Equal(Stored(1), bodies[1]);
    }

    [Fact]
    public async Task Top_in_every_form()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        var header = Encoding.ASCII.GetBytes("Subject: two\r\n\r\n");
        Assert.Equal(header, Ok(await session.TopBytesAsync(2, 0, Ct)));

        using var destination = new MemoryStream();
        Ok(await session.TopAsync(3, 1, destination, Ct));
        Assert.Equal("Subject: three\r\n\r\nthird\r\n", Encoding.ASCII.GetString(destination.ToArray()));

        var seen = new List<ulong>();
        await foreach (var result in session.TopManyAsync([1, 2, 3], 0, (_, _, _) => ValueTask.CompletedTask, Ct))
        {
            seen.Add(Ok(result).Message);
        }

        Assert.Equal([1UL, 2UL, 3UL], seen);
    }

    [Fact]
    public async Task Delete_then_quit_commits_and_says_so()
    {
        await using var sim = await StartAsync();
        var session = await OpenAsync(InMemory(sim).WithLogin());
        Ok(await session.DeleteAsync(2, Ct));
        var quit = Ok(await session.QuitAsync(Ct));
        Assert.True(quit.UpdateCompleted);
        Assert.Equal(new ulong[] { 2 }, quit.DeletionsCommitted.ToArray());
        Assert.False(session.IsHealthy);
        await session.DisposeAsync();
        Assert.Equal(2, sim.Mailbox(User).Count);
    }

    [Fact]
    public async Task Reset_unmarks_deletions()
    {
        await using var sim = await StartAsync();
        await using (var session = await OpenAsync(InMemory(sim).WithLogin()))
        {
            Ok(await session.DeleteAsync(1, Ct));
            Ok(await session.ResetAsync(Ct));
            Assert.Equal(3, Ok(await session.ListAsync(Ct)).Count);
        }

        Assert.Equal(3, sim.Mailbox(User).Count);
    }

    [Fact]
    public async Task Disposing_a_healthy_session_sends_QUIT()
    {
        await using var sim = await StartAsync();
        await using (var session = await OpenAsync(InMemory(sim).WithLogin()))
        {
            Ok(await session.DeleteAsync(3, Ct));
        }

        Assert.Equal(2, sim.Mailbox(User).Count);
        Assert.Equal("QUIT", sim.Transcript.ClientLines(0)[^1]);
    }

    [Fact]
    public async Task RunAsync_quits_after_the_body_and_returns_its_value()
    {
        await using var sim = await StartAsync();
        var result = await InMemory(sim).WithLogin().RunAsync(async session =>
        {
            var deleted = await session.DeleteAsync(1, Ct);
            return deleted.Map(_ => "done");
        }, Ct);
        Assert.Equal("done", Ok(result));
        Assert.Equal(2, sim.Mailbox(User).Count);
    }

    [Fact]
    public async Task RunAsync_whose_body_quits_itself_sends_one_QUIT_and_succeeds()
    {
        await using var sim = await StartAsync();
        var result = await InMemory(sim).WithLogin().RunAsync(async session =>
        {
            Ok(await session.DeleteAsync(1, Ct));
            var quit = await session.QuitAsync(Ct);
            return quit.Map(q => q.DeletionsCommitted);
        }, Ct);
        Assert.Equal(new ulong[] { 1 }, Ok(result).ToArray());
        Assert.Equal(2, sim.Mailbox(User).Count);
        Assert.Single(sim.Transcript.ClientLines(0), l => l == "QUIT");
    }

    [Fact]
    public async Task RunAsync_body_failure_wins_and_nothing_is_deleted()
    {
        await using var sim = await StartAsync();
        var result = await InMemory(sim).WithLogin().RunAsync(async session =>
        {
            Ok(await session.DeleteAsync(1, Ct));
            return await session.ListAsync(9, Ct);
        }, Ct);
        AssertCode(Pop3ErrorCodes.NoSuchMessage, result);
        Assert.Equal(3, sim.Mailbox(User).Count);
        Assert.DoesNotContain("QUIT", sim.Transcript.ClientLines(0));
    }

    [Fact]
    public async Task A_transport_that_throws_is_closed_by_OpenAsync_RunAsync_and_DisposeAsync()
    {
        await using var sim = await StartAsync();
        static Pop3Builder Over(Stream stream) => Pop3.Connect(stream, "localhost").WithoutTls().AllowPlaintextCredentials().WithLogin();

        var atLogin = new ThrowingStream(sim.ConnectInMemory(), "AUTH");
        await Assert.ThrowsAsync<InvalidOperationException>(() => Over(atLogin).OpenAsync(Ct));
        Assert.True(atLogin.Disposed);

        var atQuit = new ThrowingStream(sim.ConnectInMemory(), "QUIT");
        await Assert.ThrowsAsync<InvalidOperationException>(() => Over(atQuit).RunAsync(session => session.NoopAsync(Ct), Ct));
        Assert.True(atQuit.Disposed);

        // The simulator releases the abandoned session's maildrop lock when it sees the connection
        // close; until then a new login is [IN-USE]. Wait for it, as a reconnecting client would.
        for (var waited = 0; sim.ActiveSessions > 0 && waited < 500; waited++)
        {
            await Task.Delay(10, Ct);
        }

        Assert.Equal(0, sim.ActiveSessions);
        var atDispose = new ThrowingStream(sim.ConnectInMemory(), "QUIT");
        var session = await OpenAsync(Over(atDispose));
        await Assert.ThrowsAsync<InvalidOperationException>(() => session.DisposeAsync().AsTask());
        Assert.True(atDispose.Disposed);
    }

    [Fact]
    public async Task Manual_login_after_opening_without_credentials()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim));
        var stat = Ok(await session.LoginAsync(User, Secrets.FromString(Password), Ct));
        Assert.Equal(3UL, stat.Count);
        Assert.Equal(stat, Some(session.Maildrop));
    }

    [Fact]
    public async Task Apop_login()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim));
        Assert.Equal(3UL, Ok(await session.ApopAsync(User, Secrets.FromString(Password), Ct)).Count);
        Assert.Contains(sim.Transcript.ClientLines(0), l => l.StartsWith("APOP alice", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Rpop_login_through_the_builder()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.simulator.WithRpop(true)));
        await using var session = await OpenAsync(InMemory(sim).WithUser(User).WithMechanism(Pop3Mechanism.Rpop));
        Assert.Equal(3UL, Some(session.Maildrop).Count);
        Assert.Contains("RPOP alice", sim.Transcript.ClientLines(0));
    }

    [Fact]
    public async Task Explicit_mechanisms_send_what_they_name()
    {
        await using var sim = await StartAsync();
        await using (await OpenAsync(InMemory(sim).WithLogin().WithMechanism(Pop3Mechanism.UserPass)))
        {
        }

        await using (await OpenAsync(InMemory(sim).WithLogin().WithMechanism(Pop3Mechanism.Apop)))
        {
        }

        Assert.Contains("USER alice", sim.Transcript.ClientLines(1));
        Assert.Contains(sim.Transcript.ClientLines(2), l => l.StartsWith("APOP alice", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Utf8_and_languages_from_the_builder_and_the_session()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithUtf8().WithLogin().WithMechanism(Pop3Mechanism.UserPass).WithLanguage("de"));
        var client = sim.Transcript.ClientLines(0);
        var user = client.ToList().FindIndex(l => l.StartsWith("USER", StringComparison.Ordinal));
        Assert.InRange(client.ToList().IndexOf("UTF8"), 0, user - 1);
        Assert.Contains("LANG de", client);
        var languages = Ok(await session.LanguagesAsync(Ct));
        Assert.Contains(languages, l => l.Tag == "en");
        Ok(await session.LanguageAsync("en", Ct));
    }

    [Fact]
    public async Task Utf8_on_the_session()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim));
        Ok(await session.Utf8Async(Ct));
        Assert.Contains("UTF8", sim.Transcript.ClientLines(0));
    }

    [Fact]
    public async Task StartTls_on_a_session_opened_without_TLS()
    {
        await using var sim = await StartAsync();
        var builder = Pop3.Connect(sim.Endpoint.Address.ToString(), sim.Endpoint.Port)
            .WithoutTls().WithServerName("localhost").WithCertificateValidation(Trust(sim));
        await using var session = await OpenAsync(builder);
        Assert.False(session.IsTlsActive);
        var capabilities = Ok(await session.StartTlsAsync(Ct));
        Assert.True(session.IsTlsActive);
        Assert.False(capabilities.Stls);
        Ok(await session.LoginAsync(User, Secrets.FromString(Password), Ct));
    }

    [Fact]
    public void Builder_prints_where_it_connects_and_never_a_credential()
    {
        var builder = Pop3.Connect("pop.example.com")
            .WithCredentials(User, Secrets.FromString(Password))
            .WithLogger(new CapturingLogger());
        Assert.Equal("Pop3Builder { Host = pop.example.com, Port = 995, Tls = Implicit }", builder.ToString());
        var fromCallback = Pop3.Connect("pop.example.com", 110).WithCredentials(User, _ => ValueTask.FromResult(Secrets.FromString(Password)));
        Assert.DoesNotContain(Password, fromCallback.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Builder_is_immutable()
    {
        var plain = Pop3.Connect("pop.example.com");
        var changed = plain.WithoutTls();
        Assert.Equal(TlsMode.Implicit, plain.Tls);
        Assert.Equal(TlsMode.NoTls, changed.Tls);
        Assert.Equal(995, plain.Port);
        Assert.Equal(TlsMode.StartTlsRequired, Pop3.Connect("pop.example.com", 110).Tls);
        Assert.Equal(TlsMode.Implicit, Pop3.Connect("pop.example.com", 995).Tls);
        await Task.CompletedTask;
    }
}
