using System.Security.Authentication;
using System.Security.Cryptography;
using Xunit;
using static Pop3Functional.Simulator.CSharp.Tests.Support;

namespace Pop3Functional.Simulator.CSharp.Tests;

/// <summary>STLS, implicit TLS and in-memory connections, with a client that trusts only sim.Certificate.</summary>
public class TlsAndInMemoryTests
{
    [Fact]
    public async Task STLS_upgrades_to_the_simulator_certificate_and_CAPA_then_lacks_STLS()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default, ct);
        sim.Mailbox("alice", "secret").Add("Subject: over TLS\n\nbody\n");

        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        await client.ReadLineAsync(ct);
        Assert.Contains("STLS", await client.MultiLineAsync("CAPA", ct));
        Assert.StartsWith("+OK", await client.CommandAsync("STLS", ct), StringComparison.Ordinal);
        await client.StartTlsAsync(sim.Certificate, ct);

        Assert.True(client.IsTls);
        var presented = client.RemoteCertificate!;
        Assert.Equal(sim.Certificate.Thumbprint, presented.GetCertHashString());
        Assert.Equal(
            sim.CertificateFingerprint,
            "sha256:" + Convert.ToHexStringLower(SHA256.HashData(presented.GetRawCertData())));
        Assert.Equal(sim.CertificateFingerprint, SimulatorCertificate.Sha256Fingerprint(sim.Certificate));

        var capa = await client.MultiLineAsync("CAPA", ct);
        Assert.Contains("USER", capa);
        Assert.DoesNotContain("STLS", capa);
        await client.LoginAsync("alice", "secret", ct);
        var (_, message) = await client.RetrAsync(1, ct);
        SameOctets(Crlf("Subject: over TLS\n\nbody\n"), message, "message 1 over TLS");
        Assert.StartsWith("+OK", await client.CommandAsync("QUIT", ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_that_trusts_another_certificate_fails_the_handshake()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default, ct);
        using var other = SimulatorCertificate.Create("other.test");

        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        await client.ReadLineAsync(ct);
        Assert.StartsWith("+OK", await client.CommandAsync("STLS", ct), StringComparison.Ordinal);
        await Assert.ThrowsAsync<AuthenticationException>(() => client.StartTlsAsync(other, ct));
    }

    [Fact]
    public async Task Implicit_TLS_on_TlsEndpoint()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.gmail), ct);
        var mail = sim.Mailbox("henry", "pw").Add(MessageContent.Generated(30_000, seed: 3));

        Assert.NotNull(sim.TlsEndpoint);
        Assert.NotEqual(sim.Endpoint.Port, sim.TlsEndpoint.Port);
        await using var client = await RawPop3Client.ConnectTlsAsync(sim.TlsEndpoint, sim.Certificate, ct);
        Assert.StartsWith("+OK", await client.ReadLineAsync(ct), StringComparison.Ordinal);
        Assert.DoesNotContain("STLS", await client.MultiLineAsync("CAPA", ct));
        await client.LoginAsync("henry", "pw", ct);
        var (status, message) = await client.RetrAsync(1, ct);
        Assert.Equal("+OK Message follows.", status); // Personalities.fs says Gmail sends "+OK message follows"
        SameOctets(mail.Content.ToArray(), message, "message 1 over POP3S");
        Assert.StartsWith("+OK", await client.CommandAsync("QUIT", ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutTls_has_no_TlsEndpoint_and_no_STLS()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default.WithoutTls(), ct);

        Assert.Null(sim.TlsEndpoint);
        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        await client.ReadLineAsync(ct);
        Assert.DoesNotContain("STLS", await client.MultiLineAsync("CAPA", ct));
        Assert.StartsWith("-ERR", await client.CommandAsync("STLS", ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConnectInMemory_serves_the_same_mailboxes_without_a_socket()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default, ct);
        var ivy = sim.Mailbox("ivy", "pw");
        ivy.Add("Subject: first\n\n.\n");
        ivy.Add("Subject: second\n\nbody\n");

        await using (var client = new RawPop3Client(sim.ConnectInMemory()))
        {
            Assert.StartsWith("+OK Pop3Functional.Simulator ready", await client.ReadLineAsync(ct), StringComparison.Ordinal);
            await client.LoginAsync("ivy", "pw", ct);
            var (_, first) = await client.RetrAsync(1, ct);
            SameOctets(Crlf("Subject: first\n\n.\n"), first, "message 1 in memory");
            Assert.StartsWith("+OK", await client.CommandAsync("DELE 1", ct), StringComparison.Ordinal);
            Assert.StartsWith("+OK", await client.CommandAsync("QUIT", ct), StringComparison.Ordinal);
            Assert.Equal(0, await client.ReadToEndAsync(ct));
        }

        Assert.Equal(1, ivy.Count);

        // In memory with implicit TLS: the server's handshake comes first.
        await using (var tls = new RawPop3Client(sim.ConnectInMemory(implicitTls: true)))
        {
            await tls.StartTlsAsync(sim.Certificate, ct);
            await tls.ReadLineAsync(ct);
            await tls.LoginAsync("ivy", "pw", ct);
            Assert.Equal(["Subject: second", ""], await tls.MultiLineAsync("TOP 1 0", ct));
            Assert.StartsWith("+OK", await tls.CommandAsync("QUIT", ct), StringComparison.Ordinal);
        }

        Assert.Equal(2, sim.SessionsStarted);
    }

    [Fact]
    public async Task A_ServerConnection_hosted_by_hand_over_an_in_memory_pair()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        var mailboxes = new Mailboxes();
        mailboxes.Mailbox("jo", "pw").Add("Subject: hosted\n\nby hand\n");
        var transcript = new Transcript();
        var options = ServerOptions.Create(Personalities.qmail).WithHostname("pop.example.test").WithSeed(9);
        var (clientEnd, serverEnd) = InMemoryConnection.CreatePair();
        var connection = new ServerConnection(options, mailboxes, transcript, 1, tlsActive: false, stlsAvailable: false);
        var serving = connection.RunAsync(serverEnd, cancellationToken: ct);

        await using (var client = new RawPop3Client(clientEnd))
        {
            Assert.StartsWith("+OK", await client.ReadLineAsync(ct), StringComparison.Ordinal);
            await client.LoginAsync("jo", "pw", ct);
            Assert.StartsWith("+OK 1 ", await client.CommandAsync("STAT", ct), StringComparison.Ordinal);
            Assert.StartsWith("+OK", await client.CommandAsync("QUIT", ct), StringComparison.Ordinal);
        }

        await serving.WaitAsync(ct);
        Assert.Equal(["USER jo", "PASS [redacted]", "STAT", "QUIT"], transcript.ClientLines());
    }
}
