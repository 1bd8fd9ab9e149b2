using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using Pop3Functional.Shell;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Shell.Tests.Support;

namespace Pop3Functional.Shell.Tests;

/// <summary>
/// Which channel-binding type the shell hands the core for SCRAM-*-PLUS (docs/interop.md): tls-unique
/// on TLS 1.2 (RFC 5929 §3, what RFC 5802 §6 makes servers implement and all Cyrus 3.6 accepts),
/// tls-server-end-point on TLS 1.3 (RFC 5929 §4; tls-unique is undefined there, RFC 9266 §3).
/// </summary>
public sealed class ChannelBindingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A TLS pair over loopback: the server side speaks only <paramref name="protocol"/>.</summary>
    private static async Task<(SslStream Client, SslStream Server)> HandshakeAsync(Pop3Simulator sim, SslProtocols protocol)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepting = listener.AcceptSocketAsync(Ct).AsTask();
        var socket = await Transport.ConnectTcpAsync("127.0.0.1", ((IPEndPoint)listener.LocalEndpoint).Port, Ct);
        var server = new SslStream(new NetworkStream(await accepting, ownsSocket: true));
        var serverDone = server.AuthenticateAsServerAsync(
            new SslServerAuthenticationOptions { ServerCertificate = sim.Certificate, EnabledSslProtocols = protocol }, Ct);
        var options = new Pop3ConnectionOptions { Host = "localhost", CertificateValidation = Trust(sim) };
        var client = await Transport.AuthenticateAsync(new NetworkStream(socket, ownsSocket: true), options, "test", Ct);
        await serverDone;
        return (client, server);
    }

    [Fact]
    public async Task Tls12_gives_tls_unique_the_first_Finished_message()
    {
        await using var sim = await StartAsync();
        var (client, server) = await HandshakeAsync(sim, SslProtocols.Tls12);
        await using (client)
        await using (server)
        {
            Assert.Equal(SslProtocols.Tls12, client.SslProtocol);
            var binding = Transport.ChannelBinding(client);
            Assert.NotNull(binding);
            Assert.Equal("tls-unique", binding.Type);
            // TLS 1.2 verify_data is 12 octets (RFC 5246 §7.4.9); .NET's header and "tls-unique:" are stripped.
            Assert.Equal(12, binding.Data.Length);
        }
    }

    [Fact]
    public async Task Tls13_gives_tls_server_end_point_the_certificate_hash()
    {
        await using var sim = await StartAsync();
        var (client, server) = await HandshakeAsync(sim, SslProtocols.Tls13);
        await using (client)
        await using (server)
        {
            Assert.Equal(SslProtocols.Tls13, client.SslProtocol);
            var binding = Transport.ChannelBinding(client);
            Assert.NotNull(binding);
            Assert.Equal("tls-server-end-point", binding.Type);
            // RFC 5929 §4.1: the certificate's signature hash, SHA-256 for SHA-256 (and SHA-1/MD5) signatures.
            Assert.Equal(SHA256.HashData(sim.Certificate.RawData), binding.Data);
        }
    }
}
