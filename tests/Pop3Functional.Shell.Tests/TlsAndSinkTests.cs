using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Pop3Functional.Core;
using Pop3Functional.Shell;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Shell.Tests.Support;

namespace Pop3Functional.Shell.Tests;

public sealed class TlsAndSinkTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_expired_certificate_is_rejected_by_the_default_validation()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        using var expired = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(-1));
        using var usable = X509CertificateLoader.LoadPkcs12(expired.Export(X509ContentType.Pkcs12), null);
        await using var sim = await StartAsync(SimulatorOptions.Default.WithCertificate(usable));

        var seen = SslPolicyErrorsSeen.None;
        var options = Implicit(sim) with
        {
            // Record what the default checks found, then refuse as they would.
            CertificateValidation = (_, certificate, chain, errors) =>
            {
                seen = chain?.ChainStatus.Any(s => s.Status.HasFlag(X509ChainStatusFlags.NotTimeValid)) == true
                    ? SslPolicyErrorsSeen.Expired
                    : SslPolicyErrorsSeen.Other;
                return errors == System.Net.Security.SslPolicyErrors.None;
            },
        };

        var error = Error(await Pop3Connection.ConnectAsync(options, Ct));
        Assert.True(error.IsTransport, error.Message);
        Assert.Equal(SslPolicyErrorsSeen.Expired, seen);
        Assert.True(Error(await Pop3Connection.ConnectAsync(options with { CertificateValidation = null }, Ct)).IsTransport);
    }

    private enum SslPolicyErrorsSeen
    {
        None,
        Expired,
        Other,
    }

    [Fact]
    public async Task TopMany_fetches_the_headers_of_the_whole_maildrop_pipelined()
    {
        await using var sim = await StartAsync();
        await using var connection = await LoggedInAsync(Plain(sim));
        var headers = new Dictionary<ulong, StringBuilder>();
        await foreach (var result in connection.TopManyAsync(
            [1UL, 2UL, 3UL],
            0,
            (message, bytes, _) =>
            {
                if (!headers.TryGetValue(message, out var text))
                {
                    headers[message] = text = new StringBuilder();
                }

                text.Append(Encoding.ASCII.GetString(bytes.Span));
                return ValueTask.CompletedTask;
            },
            Ct))
        {
            Ok(result);
        }

        Assert.Equal("Subject: one\r\n\r\n", headers[1].ToString());
        Assert.Equal("Subject: three\r\n\r\n", headers[3].ToString());
    }

    [Fact]
    public async Task A_message_goes_to_a_PipeWriter_while_it_arrives()
    {
        await using var sim = await StartAsync();
        await using var connection = await LoggedInAsync(Plain(sim));
        var pipe = new Pipe();
        var retrieval = Ok(await connection.RetrieveAsync(1, pipe.Writer, Ct));
        await pipe.Writer.CompleteAsync();
        var read = await pipe.Reader.ReadAtLeastAsync(int.MaxValue, Ct);
        Assert.Equal(Stored(1), read.Buffer.ToArray());
        Assert.Equal((ulong)Stored(1).Length, retrieval.Octets);
    }

    [Fact]
    public async Task Errors_of_every_kind_never_show_the_password()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.DisconnectInBody(Faults.OnVerb("RETR", 1), 5)));
        var log = new CapturingLogger();
        var messages = new List<string>();
        await using (var connection = Ok(await Pop3Connection.ConnectAsync(Plain(sim, log), Ct)))
        {
            messages.Add(Error(await connection.LoginAsync(User, Secret.FromString(Password + "x"), Ct)).Message);
            Ok(await connection.LoginAsync(User, Secret.FromString(Password), Ct));
            messages.Add(Error(await connection.RetrieveBytesAsync(7, Ct)).Message);
            messages.Add(Error(await connection.RetrieveBytesAsync(1, Ct)).Message);
            messages.Add(Error(await connection.NoopAsync(Ct)).Message);
        }

        var everything = string.Join("\n", messages) + log.All + sim.Transcript;
        Assert.DoesNotContain(Password, everything);
    }
}

public sealed class TransportTests
{
    [Fact]
    public async Task Every_address_is_tried_in_turn_until_one_answers()
    {
        await using var sim = await StartAsync();
        var port = sim.Endpoint.Port;
        // 127.0.0.2 is loopback too, but nothing listens there: refused, then 127.0.0.1 answers.
        using var socket = await Transport.ConnectAnyAsync(
            [System.Net.IPAddress.Parse("127.0.0.2"), System.Net.IPAddress.Loopback], port, TestContext.Current.CancellationToken);
        Assert.True(socket.Connected);
        Assert.Equal(System.Net.IPAddress.Loopback, ((System.Net.IPEndPoint)socket.RemoteEndPoint!).Address);
        await Assert.ThrowsAsync<System.Net.Sockets.SocketException>(async () =>
            await Transport.ConnectAnyAsync([System.Net.IPAddress.Parse("127.0.0.2")], port, TestContext.Current.CancellationToken));
    }
}
