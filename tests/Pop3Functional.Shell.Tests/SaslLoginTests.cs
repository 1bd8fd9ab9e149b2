using System.Text.RegularExpressions;
using Pop3Functional.Core;
using Pop3Functional.Shell;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Shell.Tests.Support;

namespace Pop3Functional.Shell.Tests;

/// <summary>SASL logins run by the core, driven by the shell, against the simulator's server half (issue #8).</summary>
public sealed class SaslLoginTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string Token = "ya29.canary-token-Qx7";

    private static int AuthLines(Pop3Simulator sim) => Regex.Matches(sim.Transcript.ToString(), @"C: AUTH\b").Count;

    private static async Task<Pop3Connection> ConnectedAsync(Pop3ConnectionOptions options) =>
        Ok(await Pop3Connection.ConnectAsync(options, Ct));

    [Theory]
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    [InlineData("CRAM-MD5")]
    [InlineData("SCRAM-SHA-1")]
    [InlineData("SCRAM-SHA-256")]
    [InlineData("SCRAM-SHA-1-PLUS")]
    [InlineData("SCRAM-SHA-256-PLUS")]
    public async Task Every_password_mechanism_logs_in_over_implicit_TLS(string mechanism)
    {
        await using var sim = await StartAsync();
        await using var connection = await ConnectedAsync(Implicit(sim));
        var maildrop = Ok(await connection.LoginAsync(User, Secret.FromString(Password), mechanism, Ct));
        Assert.Equal(3UL, maildrop.Count);
        Assert.Contains($"C: AUTH {mechanism}", sim.Transcript.ToString());
        Assert.Equal(Stored(1), Ok(await connection.RetrieveBytesAsync(1, Ct)));
        Assert.DoesNotContain(Password, sim.Transcript.ToString());
    }

    [Fact]
    public async Task Channel_binding_works_after_STLS_too()
    {
        await using var sim = await StartAsync();
        await using var connection = await ConnectedAsync(Stls(sim));
        Ok(await connection.LoginAsync(User, Secret.FromString(Password), "SCRAM-SHA-256-PLUS", Ct));
    }

    /// <summary>
    /// Over TLS 1.3 (what the simulator and the client negotiate) the shell's binding is
    /// tls-server-end-point, which a server need not implement (Cyrus 3.6 refuses it): the automatic
    /// choice is SCRAM-SHA-256 with the "n" flag, never a -PLUS that might fail (nothing is retried).
    /// </summary>
    [Fact]
    public async Task The_automatic_choice_over_TLS_13_is_SCRAM_with_n_and_without_TLS_SCRAM()
    {
        await using var sim = await StartAsync();
        await using (var tls = await ConnectedAsync(Implicit(sim)))
        {
            Ok(await tls.LoginAutoAsync(User, Secret.FromString(Password), Ct));
        }

        await using (var plain = await ConnectedAsync(Plain(sim)))
        {
            Ok(await plain.LoginAutoAsync(User, Secret.FromString(Password), Ct));
        }

        var transcript = sim.Transcript.ToString();
        Assert.DoesNotContain("C: AUTH SCRAM-SHA-256-PLUS", transcript);
        Assert.Equal(2, Regex.Matches(transcript, @"C: AUTH SCRAM-SHA-256 ").Count);
        // Over TLS the simulator offers -PLUS and fails "y" as a stripped -PLUS (RFC 5802 §6), so the
        // login above succeeding over TLS shows the flag was "n" (the core's tests check the octets).
    }

    [Fact]
    public async Task The_automatic_choice_without_SASL_is_APOP_then_nothing_weaker_after_a_rejection()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.rfc1939));
        await using var connection = await ConnectedAsync(Plain(sim));
        var error = Error(await connection.LoginAutoAsync(User, Secret.FromString("wrong"), Ct));
        Assert.True(error.IsServer, error.Message);
        var transcript = sim.Transcript.ToString();
        Assert.Contains("C: APOP alice", transcript);
        Assert.DoesNotContain("C: USER", transcript);
    }

    [Fact]
    public async Task A_wrong_password_is_one_rejected_AUTH_and_nothing_weaker()
    {
        await using var sim = await StartAsync();
        await using var connection = await ConnectedAsync(Implicit(sim));
        var error = Error(await connection.LoginAutoAsync(User, Secret.FromString("wrong"), Ct));
        Assert.True(error.IsServer, error.Message);
        Assert.Equal(1, AuthLines(sim));
        Assert.DoesNotContain("C: USER", sim.Transcript.ToString());
        Assert.DoesNotContain("C: APOP", sim.Transcript.ToString());
    }

    [Theory]
    [InlineData("scram-bad-signature")]
    [InlineData("scram-no-signature")]
    public async Task A_server_that_cannot_prove_it_knows_the_password_fails_the_session(string fault)
    {
        Assert.True(Faults.TryParse(fault, out var plan));
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(plan));
        await using var connection = await ConnectedAsync(Implicit(sim));
        var error = Error(await connection.LoginAsync(User, Secret.FromString(Password), "SCRAM-SHA-256", Ct));
        Assert.True(error.IsProtocol, error.Message);
        Assert.False(connection.IsOpen);
        // The session is not used: no STAT or CAPA after the unproven login.
        Assert.DoesNotContain("C: STAT", sim.Transcript.ToString());
    }

    [Theory]
    [InlineData("sasl-not-base64", "base64")]
    [InlineData("sasl-endless", "challenge")]
    public async Task Hostile_challenges_are_protocol_errors(string fault, string expected)
    {
        Assert.True(Faults.TryParse(fault, out var plan));
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(plan));
        await using var connection = await ConnectedAsync(Implicit(sim));
        var error = Error(await connection.LoginAsync(User, Secret.FromString(Password), "CRAM-MD5", Ct));
        Assert.True(error.IsProtocol, error.Message);
        Assert.Contains(expected, error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_mechanism_the_server_does_not_offer_is_refused_before_any_byte()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.gmail));
        await using var connection = await ConnectedAsync(Implicit(sim));
        var before = sim.Transcript.ToString();
        var error = Error(await connection.LoginAsync(User, Secret.FromString(Password), "SCRAM-SHA-256", Ct));
        Assert.True(error.IsUsage, error.Message);
        Assert.Equal(before, sim.Transcript.ToString());
    }

    [Fact]
    public async Task PLAIN_over_plaintext_needs_the_opt_in()
    {
        await using var sim = await StartAsync();
        await using var connection = await ConnectedAsync(Plain(sim) with { AllowPlaintextCredentials = false });
        var error = Error(await connection.LoginAsync(User, Secret.FromString(Password), "PLAIN", Ct));
        Assert.True(error.IsUsage, error.Message);
        Assert.Equal(0, AuthLines(sim));
    }

    [Fact]
    public async Task OAuth2_logs_in_with_OAUTHBEARER_when_offered_and_with_XOAUTH2_when_named()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.gmail));
        sim.Mailbox(User).AddOAuthToken(Token);
        await using (var auto = await ConnectedAsync(Implicit(sim)))
        {
            Assert.Equal(3UL, Ok(await auto.LoginOAuth2Async(User, Secret.FromString(Token), null, Ct)).Count);
        }

        await using (var named = await ConnectedAsync(Implicit(sim)))
        {
            Ok(await named.LoginOAuth2Async(User, Secret.FromString(Token), "XOAUTH2", Ct));
        }

        var transcript = sim.Transcript.ToString();
        Assert.Contains("C: AUTH OAUTHBEARER", transcript);
        Assert.Contains("C: AUTH XOAUTH2", transcript);
        Assert.DoesNotContain(Token, transcript);
    }

    [Fact]
    public async Task A_long_XOAUTH2_token_goes_in_the_two_line_form_Exchange_requires()
    {
        var token = "eyJ0eXAiOiJKV1Qi." + new string('x', 400);
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.exchange));
        sim.Mailbox(User).AddOAuthToken(token);
        await using var connection = await ConnectedAsync(Implicit(sim));
        Ok(await connection.LoginOAuth2Async(User, Secret.FromString(token), null, Ct));
        Assert.Contains("C: AUTH XOAUTH2", sim.Transcript.ToString());
    }

    [Fact]
    public async Task A_rejected_token_is_a_server_failure_carrying_the_JSON_error()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.gmail));
        await using var connection = await ConnectedAsync(Implicit(sim));
        var error = Error(await connection.LoginOAuth2Async(User, Secret.FromString("expired-token"), "XOAUTH2", Ct));
        Assert.True(error.IsServer, error.Message);
        Assert.Contains("400", error.Message);
        Assert.Equal(1, AuthLines(sim));
        Assert.DoesNotContain("expired-token", sim.Transcript.ToString());
    }
}
