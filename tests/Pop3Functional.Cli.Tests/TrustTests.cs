using System.Text.Json;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Cli.Tests;

/// <summary>The server's certificate (the simulator's is self-signed) trusted by --ca-file or --fingerprint, or refused with exit 4.</summary>
public sealed class TrustTests
{
    private static string[] Implicit(Server server, params string[] trust) =>
    [
        "stat", "--host", "127.0.0.1", "--port", server.Simulator.TlsEndpoint.Port.ToString(), "--tls", "implicit",
        "--user", Server.User, "--password-env", Server.PasswordVariable, .. trust,
    ];

    [Fact]
    public async Task Ca_file_holding_the_self_signed_certificate_trusts_it()
    {
        await using var server = await Server.StartAsync(messages: 2);
        using var dir = new TempDir();
        File.WriteAllText(dir.Sub("ca.pem"), server.Simulator.Certificate.ExportCertificatePem());
        File.WriteAllBytes(dir.Sub("ca.der"), server.Simulator.Certificate.RawData);

        var pem = await Pop3Cli.RunAsync(Implicit(server, "--ca-file", dir.Sub("ca.pem")));
        var der = await Pop3Cli.RunAsync(Implicit(server, "--ca-file", dir.Sub("ca.der")));

        Assert.True(pem.ExitCode == 0, pem.Error);
        Assert.StartsWith("2 message(s)", pem.Out);
        Assert.True(der.ExitCode == 0, der.Error);
    }

    [Fact]
    public async Task Without_trust_or_with_another_ca_file_the_certificate_is_refused_with_exit_4_naming_the_problem()
    {
        await using var server = await Server.StartAsync(messages: 1);
        using var dir = new TempDir();
        using (var other = SimulatorCertificate.create("localhost"))
        {
            File.WriteAllText(dir.Sub("other.pem"), other.ExportCertificatePem());
        }

        var untrusted = await Pop3Cli.RunAsync(["--json", .. Implicit(server)]);
        var otherCa = await Pop3Cli.RunAsync(Implicit(server, "--ca-file", dir.Sub("other.pem")));

        Assert.Equal(ExitCodes.Tls, untrusted.ExitCode);
        using (var doc = JsonDocument.Parse(untrusted.Out))
        {
            var error = doc.RootElement.GetProperty("error");
            Assert.Equal("tls", error.GetProperty("kind").GetString());
            Assert.Contains("the server's certificate is not trusted", error.GetProperty("message").GetString());
            Assert.Contains(server.Simulator.CertificateFingerprint, error.GetProperty("message").GetString());
        }

        Assert.Equal(ExitCodes.Tls, otherCa.ExitCode);
        Assert.Contains("is not issued by --ca-file", otherCa.Error);
        Assert.DoesNotContain(server.Simulator.Transcript.ClientLines(), l => l.StartsWith("USER", StringComparison.Ordinal) || l.StartsWith("AUTH", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_fingerprint_trusts_exactly_one_certificate()
    {
        await using var server = await Server.StartAsync(messages: 1);
        var right = server.Simulator.CertificateFingerprint;
        var wrong = "sha256:" + new string('0', 64);
        var colons = "sha256:" + string.Join(':', Enumerable.Range(0, 32).Select(i => right.Substring(7 + (2 * i), 2).ToUpperInvariant()));

        var ok = await Pop3Cli.RunAsync(Implicit(server, "--fingerprint", right));
        var withColons = await Pop3Cli.RunAsync(Implicit(server, "--fingerprint", colons));
        var mismatch = await Pop3Cli.RunAsync(Implicit(server, "--fingerprint", wrong));

        Assert.True(ok.ExitCode == 0, ok.Error);
        Assert.True(withColons.ExitCode == 0, withColons.Error);
        Assert.Equal(ExitCodes.Tls, mismatch.ExitCode);
        Assert.Contains($"the server's certificate {right} is not the one --fingerprint names", mismatch.Error);
    }

    [Fact]
    public async Task Ca_file_that_cannot_be_read_and_two_trust_options_together_exit_2()
    {
        await using var server = await Server.StartAsync(messages: 1);
        using var dir = new TempDir();
        File.WriteAllText(dir.Sub("garbage.pem"), "not a certificate");

        var missing = await Pop3Cli.RunAsync(Implicit(server, "--ca-file", dir.Sub("absent.pem")));
        var garbage = await Pop3Cli.RunAsync(Implicit(server, "--ca-file", dir.Sub("garbage.pem")));
        var both = await Pop3Cli.RunAsync(Implicit(server, "--ca-file", dir.Sub("absent.pem"), "--fingerprint", server.Simulator.CertificateFingerprint));

        Assert.Equal(ExitCodes.Usage, missing.ExitCode);
        Assert.Contains("--ca-file", missing.Error);
        Assert.Equal(ExitCodes.Usage, garbage.ExitCode);
        Assert.Contains("--ca-file", garbage.Error);
        Assert.Equal(ExitCodes.Usage, both.ExitCode);
        Assert.Contains("exclude one another", both.Error);
        Assert.Equal(0, server.Simulator.SessionsStarted);
    }
}
