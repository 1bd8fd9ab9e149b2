using System.Text;
using Pop3Functional.Core;
using Xunit;
using static Pop3Functional.Core.CSharp.Tests.MachineDriver;

namespace Pop3Functional.Core.CSharp.Tests;

/// <summary>
/// AUTH run by the core, from C#: the choice (TryChooseLogin), the Pop3Request.Authenticate
/// factories, and a SCRAM exchange the machine answers on its own.
/// </summary>
public class Pop3MachineSaslTests
{
    private const string Greeting = "+OK POP3 ready\r\n";

    // RFC 7677 §3: user "user", password "pencil".
    private const string Nonce = "rOprNGfwEbeRWgbNEkqO";
    private const string ServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    private const string ClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    private const string ServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    [Fact]
    public void The_choice_then_a_SCRAM_exchange_the_machine_answers_itself()
    {
        var machine = Ready(new Pop3Machine(), "PLAIN SCRAM-SHA-256");

        Assert.True(machine.TryChooseLogin(SaslCredentialKind.Password, null, out var method, out var failure));
        Assert.Equal("SCRAM-SHA-256", method);
        Assert.Null(failure);

        var request = Pop3Request.Authenticate(method, "user", Secret.FromString("pencil"), Nonce);
        Assert.Equal("AUTH", request.Keyword);

        var first = Assert.Single(Submit(machine, 1, request));
        Assert.Equal("AUTH SCRAM-SHA-256 ********", first.LogText);
        Assert.Equal($"AUTH SCRAM-SHA-256 {B64($"n,,n=user,r={Nonce}")}\r\n", Encoding.ASCII.GetString(first.Bytes.Span));

        var final = Assert.Single(Feed(machine, $"+ {B64(ServerFirst)}\r\n"));
        Assert.Equal("********", final.LogText);
        Assert.Equal(B64(ClientFinal) + "\r\n", Encoding.ASCII.GetString(final.Bytes.Span));

        Assert.Equal(["\r\n"], Sent(Feed(machine, $"+ {B64(ServerFinal)}\r\n")));
        Assert.Equal(["CAPA\r\n"], Sent(Feed(machine, "+OK\r\n")));
    }

    [Fact]
    public void A_server_that_skips_its_signature_fails_the_machine()
    {
        var machine = Ready(new Pop3Machine(), "SCRAM-SHA-256");
        Submit(machine, 1, Pop3Request.Authenticate("SCRAM-SHA-256", "user", Secret.FromString("pencil"), null, Nonce));
        Feed(machine, $"+ {B64(ServerFirst)}\r\n");

        var outputs = Feed(machine, "+OK\r\n");

        var failed = Assert.Single(outputs, o => o.EventKind == Pop3EventKind.Failed);
        Assert.Equal(Pop3ErrorKind.Protocol, failed.Failure.Kind);
        Assert.Equal("BadSaslChallenge", failed.Failure.Code);
        Assert.True(machine.IsFailed);
    }

    [Fact]
    public void XOAUTH2_through_the_OAuth2_factory()
    {
        var machine = Ready(new Pop3Machine(), "XOAUTH2");

        Assert.True(machine.TryChooseLogin(SaslCredentialKind.OAuth2, null, out var method, out _));
        Assert.Equal("XOAUTH2", method);

        var line = Assert.Single(Sent(Submit(machine, 1, Pop3Request.AuthenticateOAuth2(method, "u@example.com", Secret.FromString("tok")))));
        Assert.Equal($"AUTH XOAUTH2 {B64("user=u@example.com\u0001auth=Bearer tok\u0001\u0001")}\r\n", line);
    }

    [Fact]
    public void OAUTHBEARER_with_host_and_port()
    {
        var machine = Ready(new Pop3Machine(), "OAUTHBEARER");
        var request = Pop3Request.AuthenticateOAuth2("OAUTHBEARER", "u@example.com", Secret.FromString("tok"), "pop.example.com", 995);

        var line = Assert.Single(Sent(Submit(machine, 1, request)));

        Assert.Equal($"AUTH OAUTHBEARER {B64("n,a=u@example.com,\u0001host=pop.example.com\u0001port=995\u0001auth=Bearer tok\u0001\u0001")}\r\n", line);
    }

    [Fact]
    public void Naming_a_mechanism_the_server_does_not_offer_is_a_usage_failure()
    {
        var machine = Ready(new Pop3Machine(), "PLAIN");

        Assert.False(machine.TryChooseLogin(SaslCredentialKind.Password, "CRAM-MD5", out var method, out var failure));
        Assert.Null(method);
        Assert.Equal(Pop3ErrorKind.Usage, failure.Kind);
        Assert.Equal("CapabilityMissing", failure.Code);
        Assert.Contains("SASL PLAIN", failure.Message);
    }

    [Fact]
    public void CreateOverTlsWithBinding_tls_unique_chooses_PLUS()
    {
        var machine = Ready(
            Pop3Machine.CreateOverTlsWithBinding(Options.Default, ChannelBinding.TlsUnique([1, 2, 3])), "SCRAM-SHA-256 SCRAM-SHA-256-PLUS");

        Assert.True(machine.TryChooseLogin(SaslCredentialKind.Password, null, out var method, out _));
        Assert.Equal("SCRAM-SHA-256-PLUS", method);
    }

    [Fact]
    public void CreateOverTls_with_end_point_data_chooses_plain_SCRAM_automatically_and_allows_PLUS_by_name()
    {
        // The byte[] overload is tls-server-end-point (RFC 5929 §4), which a server need not implement.
        var machine = Ready(Pop3Machine.CreateOverTls(Options.Default, [1, 2, 3]), "SCRAM-SHA-256 SCRAM-SHA-256-PLUS");

        Assert.True(machine.TryChooseLogin(SaslCredentialKind.Password, null, out var method, out _));
        Assert.Equal("SCRAM-SHA-256", method);
        Assert.True(machine.TryChooseLogin(SaslCredentialKind.Password, "SCRAM-SHA-256-PLUS", out var named, out _));
        Assert.Equal("SCRAM-SHA-256-PLUS", named);
    }

    private static Pop3Machine Ready(Pop3Machine machine, string sasl)
    {
        Feed(machine, Greeting);
        Assert.Contains(Feed(machine, $"+OK\r\nUSER\r\nSASL {sasl}\r\n.\r\n"), o => o.EventKind == Pop3EventKind.AuthorizationReady);
        return machine;
    }

    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));
}
