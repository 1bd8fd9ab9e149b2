using System.Text;
using Xunit;
using static Pop3Functional.Simulator.CSharp.Tests.Support;

namespace Pop3Functional.Simulator.CSharp.Tests;

/// <summary>
/// The C#-facing parts of the SASL work (issue #8): bearer tokens on a mailbox, the SASL faults
/// from the <c>Faults</c> factory and by name, and <c>WithInitialResponseRefused</c>.
/// </summary>
public class OAuthAndSaslFaultTests
{
    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private static string XOAuth2(string user, string token) => B64($"user={user}\u0001auth=Bearer {token}\u0001\u0001");

    [Fact]
    public async Task A_token_added_to_a_mailbox_logs_in_with_XOAUTH2_and_a_revoked_one_gets_the_error_challenge()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(
            SimulatorOptions.Default.WithPersonality(Personalities.gmail), ct);
        sim.Mailbox("alice@example.com").AddOAuthToken("ya29.first").AddOAuthToken("ya29.second");

        await using (var client = await RawPop3Client.ConnectTlsAsync(sim.TlsEndpoint, sim.Certificate, ct))
        {
            await client.ReadLineAsync(ct);
            var capa = await client.MultiLineAsync("CAPA", ct);
            Assert.Contains("SASL PLAIN XOAUTH2 OAUTHBEARER", capa);
            Assert.StartsWith("+OK", await client.CommandAsync("AUTH XOAUTH2 " + XOAuth2("alice@example.com", "ya29.second"), ct), StringComparison.Ordinal);
            await client.CommandAsync("QUIT", ct);
        }

        sim.Mailbox("alice@example.com").RevokeOAuthToken("ya29.first");
        await using (var client = await RawPop3Client.ConnectTlsAsync(sim.TlsEndpoint, sim.Certificate, ct))
        {
            await client.ReadLineAsync(ct);
            var challenge = await client.CommandAsync("AUTH XOAUTH2 " + XOAuth2("alice@example.com", "ya29.first"), ct);
            Assert.Equal("+ " + B64(SaslServer.XOAuth2ErrorJson), challenge);
            Assert.Equal("-ERR [AUTH] Authentication failed.", await client.CommandAsync("", ct));
        }

        Assert.DoesNotContain("ya29", sim.Transcript.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(XOAuth2("alice@example.com", "ya29.second"), sim.Transcript.ToString(), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => sim.Mailboxes.AddOAuthToken("nobody", "t"));
    }

    [Fact]
    public async Task Exchange_takes_XOAUTH2_in_two_lines_only()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        await using var sim = await Pop3Simulator.StartAsync(
            SimulatorOptions.Default.WithPersonality(Personalities.exchange), ct);
        sim.Mailbox("bob@contoso.com").AddOAuthToken("EwBAAl3BAAUF");

        await using (var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct))
        {
            await client.ReadLineAsync(ct);
            Assert.Equal("+", await client.CommandAsync("AUTH XOAUTH2", ct));
            Assert.StartsWith("+OK", await client.CommandAsync(XOAuth2("bob@contoso.com", "EwBAAl3BAAUF"), ct), StringComparison.Ordinal);
        }

        await using (var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct))
        {
            await client.ReadLineAsync(ct);
            Assert.Equal(
                "-ERR Protocol error. Connection is closed. 10",
                await client.CommandAsync("AUTH XOAUTH2 " + XOAuth2("bob@contoso.com", "EwBAAl3BAAUF"), ct));
            Assert.Equal(0, await client.ReadToEndAsync(ct));
        }
    }

    [Fact]
    public void WithInitialResponseRefused_changes_only_that_field()
    {
        var changed = Personalities.gmail.WithInitialResponseRefused("xoauth2", "PLAIN");
        Assert.Equal(["XOAUTH2", "PLAIN"], changed.InitialResponseRefused);
        Assert.Empty(Personalities.gmail.InitialResponseRefused);
        Assert.Equal(["XOAUTH2"], Personalities.exchange.InitialResponseRefused);
        Assert.Equal(Personalities.gmail.SaslMechanisms, changed.SaslMechanisms);
    }

    [Fact]
    public void The_SASL_faults_come_from_the_factory_and_by_name()
    {
        Assert.True(Faults.TryParse("scram-bad-signature", out var bad));
        Assert.Equal(FaultPlan.Of(Faults.ScramBadServerSignature), bad);
        Assert.True(Faults.TryParse("scram-no-signature", out var missing));
        Assert.Equal(FaultPlan.Of(Faults.ScramMissingServerSignature), missing);
        Assert.True(Faults.TryParse("sasl-endless", out var endless));
        Assert.Equal(FaultPlan.Of(Faults.SaslEndlessChallenges), endless);
        Assert.True(Faults.TryParse("SASL-HUGE-CHALLENGE", out var huge));
        Assert.Equal(FaultPlan.Of(Faults.SaslHugeChallenge(70_000)), huge);
        Assert.Contains("sasl-not-base64", Faults.Names);
    }

    [Fact]
    public async Task ScramMissingServerSignature_answers_OK_without_v()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;
        var options = SimulatorOptions.Default
            .WithPersonality(Personalities.dovecot)
            .WithFaults(Faults.ScramMissingServerSignature);
        await using var sim = await Pop3Simulator.StartAsync(options, ct);
        sim.Mailbox("carol", "pencil");
        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        await client.ReadLineAsync(ct);

        // RFC 5802 §3 client side, SCRAM-SHA-1.
        const string bare = "n=carol,r=fyko+d2lbbFgONRv9qkxdawL";
        var first = await client.CommandAsync("AUTH SCRAM-SHA-1 " + B64("n,," + bare), ct);
        var serverFirst = Encoding.UTF8.GetString(Convert.FromBase64String(first[2..]));
        var attributes = serverFirst.Split(',').ToDictionary(a => a[0], a => a[2..]);
        var salted = System.Security.Cryptography.Rfc2898DeriveBytes.Pbkdf2(
            Encoding.UTF8.GetBytes("pencil"), Convert.FromBase64String(attributes['s']), int.Parse(attributes['i']),
            System.Security.Cryptography.HashAlgorithmName.SHA1, 20);
        var clientKey = System.Security.Cryptography.HMACSHA1.HashData(salted, "Client Key"u8);
        var storedKey = System.Security.Cryptography.SHA1.HashData(clientKey);
        var withoutProof = $"c=biws,r={attributes['r']}";
        var authMessage = Encoding.UTF8.GetBytes($"{bare},{serverFirst},{withoutProof}");
        var signature = System.Security.Cryptography.HMACSHA1.HashData(storedKey, authMessage);
        var proof = clientKey.Zip(signature, (a, b) => (byte)(a ^ b)).ToArray();

        var reply = await client.CommandAsync(B64($"{withoutProof},p={Convert.ToBase64String(proof)}"), ct);
        Assert.StartsWith("+OK Logged in", reply, StringComparison.Ordinal);
    }
}
