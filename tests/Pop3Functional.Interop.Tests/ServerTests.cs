using Xunit;
using static Pop3Functional.Interop.Tests.MatrixTests;

namespace Pop3Functional.Interop.Tests;

/// <summary>The rows of issue #7 beside the matrix, and the facts the matrix's shape rests on.</summary>
[Collection(RealServersCollection.Name)]
public sealed class ServerTests
{
    /// <summary>
    /// The matrix has APOP cells where the greeting carries a timestamp and UTF8 cells where CAPA
    /// offers UTF8: if a server changed, the matrix would silently test less; this fails instead.
    /// </summary>
    [Theory]
    [InlineData(Server.Dovecot, true, false)]
    [InlineData(Server.Courier, false, true)]
    [InlineData(Server.Cyrus, true, false)]
    public async Task Greeting_and_capabilities_give_the_matrix_its_shape(Server server, bool apop, bool utf8)
    {
        var servers = InteropServers.Require();
        var ct = TestContext.Current.CancellationToken;
        var log = new ProtocolRecorder();
        var session = Ok(await servers.Builder(server, Tls.Implicit, log).OpenAsync(ct), log, "open");
        await using (session)
        {
            Assert.True(session.IsTlsActive);
            Assert.Equal(apop, session.Greeting.ApopAvailable);
            Assert.Equal(utf8, session.Capabilities.Utf8);
            Assert.True(session.Capabilities.Pipelining, $"{server} offers no PIPELINING: the pipelined cells would be lock-step.");
            Assert.True(session.Capabilities.Top && session.Capabilities.Uidl && session.Capabilities.User);
            Ok(await session.QuitAsync(ct), log, "QUIT");
        }
    }

    /// <summary>
    /// STLS × APOP: the greeting's timestamp is discarded at STLS, so APOP is a usage error
    /// refused before anything is sent (DESIGN §12), even though the server offered APOP.
    /// </summary>
    [Theory]
    [InlineData(Server.Dovecot, true)]
    [InlineData(Server.Dovecot, false)]
    [InlineData(Server.Cyrus, true)]
    [InlineData(Server.Cyrus, false)]
    public async Task Apop_after_stls_is_refused_before_sending(Server server, bool pipelined)
    {
        var servers = InteropServers.Require();
        var ct = TestContext.Current.CancellationToken;
        var log = new ProtocolRecorder();
        var builder = servers.Builder(server, Tls.Stls, log)
            .WithCredentials(servers.Account(server, AccountName(Tls.Plain, "apop", pipelined, utf8: false)), Secrets.FromString(servers.Password))
            .WithMechanism(Pop3Mechanism.Apop);
        builder = pipelined ? builder : builder.WithoutPipelining();

        var opened = await builder.OpenAsync(ct);

        var error = FailureOf(opened, log);
        Assert.Equal(Pop3ErrorCodes.ApopUnavailable, error.Code);
        Assert.Equal(Pop3ErrorKind.Usage, error.Kind);
        Assert.Equal(1, log.Sent("STLS"));
        Assert.Equal(0, log.Sent("APOP") + log.Sent("USER") + log.Sent("PASS") + log.Sent("AUTH"));
    }

    /// <summary>Dovecot with pop3_lock_session = yes: a second session on a locked maildrop gets a typed IN-USE.</summary>
    [Fact]
    public async Task Dovecot_second_session_on_a_locked_maildrop_is_in_use()
    {
        var servers = InteropServers.Require();
        var ct = TestContext.Current.CancellationToken;
        var log = new ProtocolRecorder();
        var builder = servers.Builder(Server.Dovecot, Tls.Implicit, log)
            .WithCredentials(servers.Account(Server.Dovecot, "lock"), Secrets.FromString(servers.Password))
            .WithMechanism(Pop3Mechanism.UserPass);
        var first = Ok(await builder.OpenAsync(ct), log, "first session");
        await using (first)
        {
            var secondLog = new ProtocolRecorder();
            var second = await servers.Builder(Server.Dovecot, Tls.Implicit, secondLog)
                .WithCredentials("lock", Secrets.FromString(servers.Password))
                .WithMechanism(Pop3Mechanism.UserPass)
                .OpenAsync(ct);

            var error = FailureOf(second, secondLog);
            Assert.Equal(Pop3ErrorCodes.InUse, error.Code);
            Assert.Equal(Pop3ErrorKind.Server, error.Kind);

            // The first session is unharmed.
            Assert.Equal((ulong)Expectations.Seeded.Count, Ok(await first.StatAsync(ct), log, "STAT").Count);
            Ok(await first.QuitAsync(ct), log, "QUIT");
        }
    }

    /// <summary>Courier advertises LOGIN-DELAY 10 (it does not enforce it, DESIGN §9): typed, before and after login.</summary>
    [Fact]
    public async Task Courier_login_delay_is_typed()
    {
        var servers = InteropServers.Require();
        var ct = TestContext.Current.CancellationToken;
        var log = new ProtocolRecorder();
        var session = Ok(await servers.Builder(Server.Courier, Tls.Implicit, log).OpenAsync(ct), log, "open");
        await using (session)
        {
            Assert.Equal(10UL, session.Capabilities.LoginDelaySeconds.Match(Some: s => s, None: () => 0UL));
            Assert.False(session.Capabilities.LoginDelayPerUser);
            Ok(await session.LoginAsync(servers.Account(Server.Courier, "capa"), Secrets.FromString(servers.Password), ct), log, "login");
            Assert.Equal(10UL, session.Capabilities.LoginDelaySeconds.Match(Some: s => s, None: () => 0UL));
            Ok(await session.QuitAsync(ct), log, "QUIT");
        }
    }

    /// <summary>
    /// <see cref="Pop3Mechanism.Auto"/> logs in, first time, with the mechanism the core's order picks
    /// from what the server offers (docs/core.md): SCRAM-SHA-256 on Dovecot; CRAM-MD5 on Courier;
    /// on Cyrus SCRAM-SHA-256 without TLS and over TLS 1.3 (where the client's binding would be
    /// tls-server-end-point, which Cyrus 3.6 refuses), SCRAM-SHA-256-PLUS over TLS 1.2 (tls-unique).
    /// </summary>
    [Theory]
    [InlineData(Server.Dovecot, Tls.Plain, false, "SCRAM-SHA-256")]
    [InlineData(Server.Dovecot, Tls.Stls, false, "SCRAM-SHA-256")]
    [InlineData(Server.Dovecot, Tls.Implicit, false, "SCRAM-SHA-256")]
    [InlineData(Server.Courier, Tls.Plain, false, "CRAM-MD5")]
    [InlineData(Server.Courier, Tls.Stls, false, "CRAM-MD5")]
    [InlineData(Server.Courier, Tls.Implicit, false, "CRAM-MD5")]
    [InlineData(Server.Cyrus, Tls.Plain, false, "SCRAM-SHA-256")]
    [InlineData(Server.Cyrus, Tls.Stls, false, "SCRAM-SHA-256")]
    [InlineData(Server.Cyrus, Tls.Implicit, false, "SCRAM-SHA-256")]
    [InlineData(Server.Cyrus, Tls.Stls, true, "SCRAM-SHA-256-PLUS")]
    [InlineData(Server.Cyrus, Tls.Implicit, true, "SCRAM-SHA-256-PLUS")]
    public async Task Auto_logs_in_with_the_strongest_mechanism_that_can_succeed(Server server, Tls tls, bool tls12Only, string expected)
    {
        var servers = InteropServers.Require();
        var ct = TestContext.Current.CancellationToken;
        var log = new ProtocolRecorder();
        var session = Ok(
            await servers.Builder(server, tls, log, tls12Only)
                .WithCredentials(servers.Account(server, "auto"), Secrets.FromString(servers.Password))
                .WithMechanism(Pop3Mechanism.Auto)
                .OpenAsync(ct),
            log,
            "open");
        await using (session)
        {
            Assert.Equal(tls != Tls.Plain, session.IsTlsActive);
            Assert.Equal([$"AUTH {expected}"], log.Commands.Where(c => c.StartsWith("AUTH", StringComparison.Ordinal)).Select(Verb));
            Assert.Equal(0, log.Sent("USER") + log.Sent("PASS") + log.Sent("APOP"));
            Assert.Equal((ulong)Expectations.Seeded.Count, Ok(await session.StatAsync(ct), log, "STAT").Count);
            Ok(await session.QuitAsync(ct), log, "QUIT");
        }
    }

    /// <summary>
    /// A wrong password: a typed authentication failure, and nothing weaker tried after it. With
    /// the automatic choice every server here gets one SASL AUTH (each offers SCRAM or CRAM-MD5,
    /// stronger than APOP and USER/PASS); exactly one login command goes out.
    /// </summary>
    [Theory]
    [InlineData(Server.Dovecot, Tls.Implicit)]
    [InlineData(Server.Dovecot, Tls.Stls)]
    [InlineData(Server.Courier, Tls.Implicit)]
    [InlineData(Server.Courier, Tls.Stls)]
    [InlineData(Server.Cyrus, Tls.Implicit)]
    [InlineData(Server.Cyrus, Tls.Stls)]
    public async Task Wrong_password_is_a_typed_auth_failure_with_no_retry(Server server, Tls tls)
    {
        var servers = InteropServers.Require();
        var ct = TestContext.Current.CancellationToken;
        var log = new ProtocolRecorder();
        var opened = await servers.Builder(server, tls, log)
            .WithCredentials(servers.Account(server, "wrongpw"), Secrets.FromString("not-" + servers.Password))
            .OpenAsync(ct);

        var error = FailureOf(opened, log);
        Assert.Equal(Pop3ErrorKind.Server, error.Kind);
        // Dovecot and Cyrus advertise AUTH-RESP-CODE and send [AUTH]; Courier has no RESP-CODES.
        Assert.Equal(server == Server.Courier ? Pop3ErrorCodes.Server : Pop3ErrorCodes.Auth, error.Code);
        Assert.Equal(1, log.Sent("AUTH"));
        Assert.Equal(0, log.Sent("APOP") + log.Sent("USER") + log.Sent("PASS"));
        Assert.DoesNotContain(log.Lines, line => line.Contains(servers.Password, StringComparison.Ordinal));
    }
}
