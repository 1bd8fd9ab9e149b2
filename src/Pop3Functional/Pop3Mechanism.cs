namespace Pop3Functional;

/// <summary>
/// How the session logs in. <see cref="Auto"/> by default: the strongest method both sides have,
/// chosen once by the core, never a weaker method after a failure. Mechanisms are named values
/// rather than an enum, so any SASL mechanism can be named (<see cref="Sasl"/>) without changing
/// any caller.
/// </summary>
public sealed class Pop3Mechanism : IEquatable<Pop3Mechanism>
{
    private Pop3Mechanism(string name, bool needsPassword)
    {
        Name = name;
        NeedsPassword = needsPassword;
    }

    /// <summary>
    /// The core chooses once, from what the server offers: SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS,
    /// SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, APOP, then PLAIN, LOGIN and USER/PASS (these three only
    /// over TLS unless plaintext credentials were allowed); for an OAuth 2 token OAUTHBEARER, then
    /// XOAUTH2. A rejected login is never retried by a weaker method.
    /// </summary>
    public static Pop3Mechanism Auto { get; } = new("AUTO", true);

    /// <summary>SASL PLAIN (RFC 4616): the password crosses the wire (base64), so only over TLS unless allowed.</summary>
    public static Pop3Mechanism Plain { get; } = new("PLAIN", true);

    /// <summary>SASL LOGIN (user name and password in two rounds): like PLAIN, only over TLS unless allowed.</summary>
    public static Pop3Mechanism Login { get; } = new("LOGIN", true);

    /// <summary>SASL CRAM-MD5 (RFC 2195): an HMAC-MD5 of the server's challenge; the password stays local.</summary>
    public static Pop3Mechanism CramMd5 { get; } = new("CRAM-MD5", true);

    /// <summary>SASL SCRAM-SHA-1 (RFC 5802): mutual authentication; the server's signature is verified.</summary>
    public static Pop3Mechanism ScramSha1 { get; } = new("SCRAM-SHA-1", true);

    /// <summary>SASL SCRAM-SHA-256 (RFC 7677): mutual authentication; the server's signature is verified.</summary>
    public static Pop3Mechanism ScramSha256 { get; } = new("SCRAM-SHA-256", true);

    /// <summary>SASL SCRAM-SHA-1-PLUS: SCRAM bound to the TLS channel (tls-unique on TLS 1.2, tls-server-end-point on TLS 1.3; RFC 5929); TLS only.</summary>
    public static Pop3Mechanism ScramSha1Plus { get; } = new("SCRAM-SHA-1-PLUS", true);

    /// <summary>SASL SCRAM-SHA-256-PLUS: SCRAM bound to the TLS channel (tls-unique on TLS 1.2, tls-server-end-point on TLS 1.3; RFC 5929); TLS only.</summary>
    public static Pop3Mechanism ScramSha256Plus { get; } = new("SCRAM-SHA-256-PLUS", true);

    /// <summary>SASL XOAUTH2 (Google, Microsoft) with an OAuth 2 access token: use <c>Pop3Builder.WithOAuth2</c>.</summary>
    public static Pop3Mechanism XOAuth2 { get; } = new("XOAUTH2", true);

    /// <summary>SASL OAUTHBEARER (RFC 7628) with an OAuth 2 access token: use <c>Pop3Builder.WithOAuth2</c>.</summary>
    public static Pop3Mechanism OAuthBearer { get; } = new("OAUTHBEARER", true);

    /// <summary>
    /// Any SASL mechanism by its name (RFC 4422 §3.1); the core runs the ones above and refuses,
    /// before any byte is sent, a name it does not implement or the server does not offer.
    /// </summary>
    public static Pop3Mechanism Sasl(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return new(name.ToUpperInvariant(), true);
    }

    /// <summary>True for the mechanisms that take an OAuth 2 token instead of a password.</summary>
    public bool TakesToken => Name is "XOAUTH2" or "OAUTHBEARER";

    /// <summary>USER and PASS (RFC 1939 §7): the password crosses the wire, so only over TLS unless plaintext credentials were allowed.</summary>
    public static Pop3Mechanism UserPass { get; } = new("USER", true);

    /// <summary>APOP (RFC 1939 §7): an MD5 digest of the greeting's timestamp and the password; needs a strict timestamp in the greeting.</summary>
    public static Pop3Mechanism Apop { get; } = new("APOP", true);

    /// <summary>RPOP (RFC 1081): a trusted host vouches for the user; no password. For poplib parity; almost no server accepts it.</summary>
    public static Pop3Mechanism Rpop { get; } = new("RPOP", false);

    /// <summary>The mechanism's name ("AUTO", "USER", "APOP", "RPOP", or a SASL mechanism's name).</summary>
    public string Name { get; }

    /// <summary>True when the mechanism needs a secret: a password, or for XOAUTH2 and OAUTHBEARER an access token (all but RPOP).</summary>
    public bool NeedsPassword { get; }

    /// <inheritdoc/>
    public bool Equals(Pop3Mechanism? other) => other is not null && string.Equals(Name, other.Name, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as Pop3Mechanism);

    /// <inheritdoc/>
    public override int GetHashCode() => StringComparer.OrdinalIgnoreCase.GetHashCode(Name);

    /// <summary>The name.</summary>
    public override string ToString() => Name;
}
