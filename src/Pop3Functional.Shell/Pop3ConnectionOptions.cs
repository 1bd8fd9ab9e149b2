using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Pop3Functional.Core;

namespace Pop3Functional.Shell;

/// <summary>
/// How to reach a POP3 server and how to treat it. Immutable: derive variants with <c>with</c>
/// or the <c>With*</c> methods. The defaults are the safe ones: implicit TLS on port 995
/// (RFC 8314), certificates validated, no plaintext credentials (DESIGN §6 and §12).
/// </summary>
public sealed record Pop3ConnectionOptions
{
    /// <summary>The server's host name or address (also the TLS server name, unless <see cref="TlsServerName"/> is set).</summary>
    public string Host { get; init; } = "";

    /// <summary>The port; 995 by default (implicit TLS).</summary>
    public int Port { get; init; } = 995;

    /// <summary>How TLS protects the session: <see cref="TlsMode.Implicit"/> (default), <see cref="TlsMode.StartTlsRequired"/> or <see cref="TlsMode.NoTls"/>.</summary>
    public TlsMode Tls { get; init; } = TlsMode.Implicit;

    /// <summary>Allow passwords over a connection without TLS. Needs <see cref="TlsMode.NoTls"/> as well: a second, explicit opt-in (DESIGN §6).</summary>
    public bool AllowPlaintextCredentials { get; init; }

    /// <summary>The name sent for SNI and checked against the certificate; null: <see cref="Host"/>.</summary>
    public string? TlsServerName { get; init; }

    /// <summary>
    /// A custom certificate check, replacing the default one (chain, host name, expiry). Every
    /// use is logged at Warning level. Null: the default validation.
    /// </summary>
    public RemoteCertificateValidationCallback? CertificateValidation { get; init; }

    /// <summary>Client certificates offered during the TLS handshake, if the server asks for one.</summary>
    public X509CertificateCollection? ClientCertificates { get; init; }

    /// <summary>How long connecting (DNS, TCP and the TLS handshake) may take. 30 s by default.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest time limit a .NET timer accepts (about 49.7 days); longer ones are refused before connecting.</summary>
    public static readonly TimeSpan MaxTimeLimit = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    /// <summary>
    /// How long a reply may take: the wait for any octet from the server while a reply is due.
    /// 60 s by default. Zero or negative is refused before connecting.
    /// </summary>
    public TimeSpan ReplyTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The low-speed rule (as curl's --speed-limit): fewer than this many octets in any
    /// <see cref="LowSpeedTime"/> window while a reply is due is a timeout. 1,024 by default.
    /// </summary>
    public long LowSpeedLimitOctets { get; init; } = 1024;

    /// <summary>The window of the low-speed rule; 60 s by default.</summary>
    public TimeSpan LowSpeedTime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>An overall limit for each operation (null: none besides the caller's token).</summary>
    public TimeSpan? OperationDeadline { get; init; }

    /// <summary>The core's options (quirks, limits, pipelining); its TLS settings are replaced by this record's.</summary>
    public Options Core { get; init; } = Options.Default;

    /// <summary>The protocol log: C:/S: lines at Debug, secrets redacted, bodies summarised (null: none).</summary>
    public ILogger? Logger { get; init; }

    /// <summary>Options for a host, with implicit TLS on port 995.</summary>
    public static Pop3ConnectionOptions ForHost(string host) => new() { Host = host };

    /// <summary>Options for a host and port. Port 995 is implicit TLS; any other port requires STLS (DESIGN §12).</summary>
    public static Pop3ConnectionOptions ForHost(string host, int port) =>
        new() { Host = host, Port = port, Tls = port == 995 ? TlsMode.Implicit : TlsMode.StartTlsRequired };

    /// <summary>These options with another TLS mode.</summary>
    public Pop3ConnectionOptions WithTls(TlsMode mode) => this with { Tls = mode };

    /// <summary>These options without TLS, passwords in plaintext allowed only if <paramref name="allowPlaintextCredentials"/>.</summary>
    public Pop3ConnectionOptions WithoutTls(bool allowPlaintextCredentials) =>
        this with { Tls = TlsMode.NoTls, AllowPlaintextCredentials = allowPlaintextCredentials };

    /// <summary>These options with a custom certificate check (logged when used).</summary>
    public Pop3ConnectionOptions WithCertificateValidation(RemoteCertificateValidationCallback validation) =>
        this with { CertificateValidation = validation };

    /// <summary>These options with another reply timeout.</summary>
    public Pop3ConnectionOptions WithReplyTimeout(TimeSpan timeout) => this with { ReplyTimeout = timeout };

    /// <summary>These options with an overall limit per operation.</summary>
    public Pop3ConnectionOptions WithDeadline(TimeSpan deadline) => this with { OperationDeadline = deadline };

    /// <summary>These options with a protocol log.</summary>
    public Pop3ConnectionOptions WithLogger(ILogger logger) => this with { Logger = logger };

    /// <summary>These options with other core options (quirks, limits, pipelining).</summary>
    public Pop3ConnectionOptions WithCore(Options core) => this with { Core = core };

    /// <summary>The core options in force: <see cref="Core"/> with this record's TLS settings.</summary>
    internal Options EffectiveCore() => Core.WithTls(Tls).WithPlaintextCredentials(AllowPlaintextCredentials);
}
