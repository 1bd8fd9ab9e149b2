using System.Security.Cryptography;
using Microsoft.FSharp.Core;
using Pop3Functional.Core;

namespace Pop3Functional.Shell;

/// <summary>
/// Logging in by the strongest method both sides have (RFC 5034 SASL, APOP, USER/PASS), chosen
/// once by the core from the capabilities in force; the core runs the mechanism and verifies the
/// server (SCRAM's signature) before the login succeeds. A rejected login is never retried by a
/// weaker method (MailKit falls back to USER/PASS after an APOP rejection; this does not).
/// </summary>
public sealed partial class Pop3Connection
{
    /// <summary>
    /// Logs in with a password by the strongest method available: SCRAM-SHA-256-PLUS,
    /// SCRAM-SHA-1-PLUS (over TLS 1.2, bound with tls-unique: the -PLUS variants are taken
    /// automatically only with a binding type every server implements), SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, APOP,
    /// then PLAIN, LOGIN and USER/PASS (these three only over TLS unless plaintext credentials were
    /// allowed). Nothing usable is a <c>UsageError</c> saying what the server offers.
    /// </summary>
    public ValueTask<FSharpResult<Pop3Stat, Pop3Error>> LoginAutoAsync(string user, Secret password, CancellationToken cancellationToken = default) =>
        LoginAsync(user, password, mechanism: null, cancellationToken);

    /// <summary>
    /// Logs in with a password by the method named: a SASL mechanism the server offers ("PLAIN",
    /// "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS",
    /// "SCRAM-SHA-256-PLUS"), "APOP" or "USER"; null chooses as <see cref="LoginAutoAsync"/>. A name the
    /// server does not offer is a <c>UsageError</c>, refused before any byte is sent.
    /// </summary>
    public async ValueTask<FSharpResult<Pop3Stat, Pop3Error>> LoginAsync(
        string user, Secret password, string? mechanism, CancellationToken cancellationToken = default)
    {
        if (!machine.TryChooseLogin(SaslCredentialKind.Password, mechanism!, out var method, out var failure))
        {
            return ShellErrors.Fail<Pop3Stat>(failure.Error);
        }

        return method switch
        {
            "APOP" => await LoginApopAsync(user, password, cancellationToken).ConfigureAwait(false),
            "USER" => await LoginAsync(user, password, cancellationToken).ConfigureAwait(false),
            _ => await AuthenticateAsync(method, user, password, cancellationToken).ConfigureAwait(false),
        };
    }

    /// <summary>
    /// Logs in with an OAuth 2 access token (Gmail, Outlook): OAUTHBEARER (RFC 7628) when offered,
    /// else XOAUTH2, or the one named. A token is a secret: sent only over TLS unless plaintext
    /// credentials were allowed. A rejected token arrives as the server's -ERR with its JSON error.
    /// </summary>
    public async ValueTask<FSharpResult<Pop3Stat, Pop3Error>> LoginOAuth2Async(
        string user, Secret token, string? mechanism = null, CancellationToken cancellationToken = default)
    {
        if (!machine.TryChooseLogin(SaslCredentialKind.OAuth2, mechanism!, out var method, out var failure))
        {
            return ShellErrors.Fail<Pop3Stat>(failure.Error);
        }

        var request = Pop3Request.AuthenticateOAuth2(method, user, token, options.Host, options.Port);
        return LoggedIn(await RunAsync(request, null, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// AUTH with a password mechanism the core runs, with no choice made: the core still refuses a
    /// mechanism the server does not list, and plaintext-revealing ones without TLS unless allowed.
    /// </summary>
    public async ValueTask<FSharpResult<Pop3Stat, Pop3Error>> AuthenticateAsync(
        string mechanism, string user, Secret password, CancellationToken cancellationToken = default) =>
        LoggedIn(await RunAsync(Pop3Request.Authenticate(mechanism, user, password, NewNonce()), null, cancellationToken).ConfigureAwait(false));

    /// <summary>A fresh SCRAM client nonce (RFC 5802 §5.1): 24 random octets as base64 without ','.</summary>
    private static string NewNonce() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));
}
