using Pop3Functional.Shell;

namespace Pop3Functional;

/// <summary>
/// Where a session starts. Safe by default (DESIGN §6, §12): <see cref="Connect(string)"/> is
/// implicit TLS on port 995, any other port requires STLS, and plaintext only ever by an explicit
/// <see cref="Pop3Builder.WithoutTls"/> (passwords then need <see cref="Pop3Builder.AllowPlaintextCredentials"/> as well).
/// </summary>
public static class Pop3
{
    /// <summary>The default port of POP3 over implicit TLS (RFC 8314).</summary>
    public const int ImplicitTlsPort = 995;

    /// <summary>A session with <paramref name="host"/> over implicit TLS on port 995 (poplib's <c>POP3_SSL(host)</c>).</summary>
    public static Pop3Builder Connect(string host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return new Pop3Builder(Pop3ConnectionOptions.ForHost(host), null);
    }

    /// <summary>
    /// A session with <paramref name="host"/> on <paramref name="port"/>: 995 is implicit TLS, any
    /// other port (110 above all) requires STLS before anything secret (poplib's <c>POP3(host, port)</c> plus <c>stls()</c>).
    /// </summary>
    public static Pop3Builder Connect(string host, int port)
    {
        ArgumentNullException.ThrowIfNull(host);
        return new Pop3Builder(Pop3ConnectionOptions.ForHost(host, port), null);
    }

    /// <summary>
    /// A session over a caller's duplex stream (a proxy, a tunnel, an in-memory pipe), with
    /// implicit TLS over it by default; <paramref name="serverName"/> is the TLS server name
    /// (SNI and the certificate check). The session owns the stream once opened, so a builder
    /// over a stream opens once.
    /// </summary>
    public static Pop3Builder Connect(Stream transport, string serverName)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(serverName);
        return new Pop3Builder(new Pop3ConnectionOptions { TlsServerName = serverName }, transport);
    }
}
