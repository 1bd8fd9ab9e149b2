using LanguageExt;
using Pop3Functional;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Tests.Support;

namespace Pop3Functional.Tests;

/// <summary>The builder's SASL and OAuth 2 options, end to end against the simulator.</summary>
public sealed class SaslTests
{
    private const string Token = "ya29.facade-canary-token";

    [Theory]
    [InlineData("SCRAM-SHA-256-PLUS")]
    [InlineData("SCRAM-SHA-1")]
    [InlineData("CRAM-MD5")]
    [InlineData("PLAIN")]
    public async Task A_named_SASL_mechanism_logs_in(string name)
    {
        await using var sim = await StartAsync();
        var mechanism = Pop3Mechanism.Sasl(name);
        await using var session = await OpenAsync(Implicit(sim).WithLogin().WithMechanism(mechanism));
        Assert.Equal(3UL, Some(session.Maildrop).Count);
        Assert.Contains(sim.Transcript.ClientLines(0), l => l.StartsWith($"AUTH {name}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_mechanism_the_server_does_not_offer_fails_the_open_before_any_credential()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.gmail));
        var result = await Implicit(sim).WithLogin().WithMechanism(Pop3Mechanism.ScramSha256).OpenAsync(Ct);
        Assert.Equal(Pop3ErrorKind.Usage, Fail(result).Kind);
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("AUTH", StringComparison.Ordinal));
    }

    [Fact]
    public async Task WithOAuth2_logs_in_with_a_fixed_token_or_one_from_a_provider()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.gmail));
        sim.Mailbox(User).AddOAuthToken(Token);
        await using (var fixedToken = await OpenAsync(Implicit(sim).WithOAuth2(User, Secrets.FromString(Token))))
        {
            Assert.Equal(3UL, Some(fixedToken.Maildrop).Count);
        }

        var asked = 0;
        await using (var provided = await OpenAsync(Implicit(sim).WithMechanism(Pop3Mechanism.XOAuth2).WithOAuth2(User, _ =>
        {
            asked++;
            return ValueTask.FromResult(Token);
        })))
        {
            Assert.Equal(3UL, Some(provided.Maildrop).Count);
        }

        Assert.Equal(1, asked);
        // ClientLines(n): session n, counted from 1 (0: every session).
        Assert.Contains(sim.Transcript.ClientLines(1), l => l.StartsWith("AUTH OAUTHBEARER", StringComparison.Ordinal));
        Assert.Contains(sim.Transcript.ClientLines(2), l => l.StartsWith("AUTH XOAUTH2", StringComparison.Ordinal));
        Assert.DoesNotContain(Token, sim.Transcript.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_token_provider_that_throws_is_SecretUnavailable_and_nothing_is_sent()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.gmail));
        var result = await Implicit(sim).WithOAuth2(User, _ => throw new InvalidOperationException("no refresh token")).OpenAsync(Ct);
        AssertCode(Pop3ErrorCodes.SecretUnavailable, result);
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("AUTH", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_rejected_token_is_a_server_failure_with_the_auth_code()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.gmail));
        var result = await Implicit(sim).WithOAuth2(User, Secrets.FromString("expired")).OpenAsync(Ct);
        var failure = Fail(result);
        Assert.Equal(Pop3ErrorKind.Server, failure.Kind);
        Assert.Equal(Pop3ErrorCodes.Auth, failure.Code);
    }

    [Fact]
    public async Task A_server_signature_that_does_not_verify_fails_the_open_as_a_protocol_error()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.ScramBadServerSignature));
        var result = await Implicit(sim).WithLogin().OpenAsync(Ct);
        AssertCode(Pop3ErrorCodes.BadSaslChallenge, result);
    }
}
