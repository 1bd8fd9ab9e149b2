using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Xunit;

namespace Pop3Functional.Interop.Tests;

/// <summary>The three servers of build/scripts/pop3-servers.sh.</summary>
public enum Server
{
    Dovecot,
    Courier,
    Cyrus,
}

/// <summary>How a cell protects the connection.</summary>
public enum Tls
{
    /// <summary>Plaintext, no TLS at all (passwords in clear, by the explicit opt-in).</summary>
    Plain,

    /// <summary>Plaintext port, STLS required before anything secret.</summary>
    Stls,

    /// <summary>The implicit-TLS port.</summary>
    Implicit,
}

/// <summary>
/// The servers are shared: every test class joins this collection, so cells run one at a time
/// (the Dovecot IN-USE test holds a lock, and parallel multi-MiB retrievals would measure the
/// 2-core machine rather than the protocol).
/// </summary>
[CollectionDefinition(Name)]
public sealed class RealServersCollection
{
    public const string Name = "real servers";
}

/// <summary>
/// What `pop3-servers.sh start` wrote to DIR/servers.env, or why the tests cannot run. DIR is
/// POP3_INTEROP_DIR, else the build target's default (the temp folder's pop3functional-interop).
/// </summary>
internal sealed class InteropServers
{
    private static readonly Lazy<(InteropServers? Servers, string? Reason)> Loaded = new(Load);

    private readonly Dictionary<string, string> values;

    private InteropServers(string dir, Dictionary<string, string> values)
    {
        Dir = dir;
        this.values = values;
        Certificate = X509CertificateLoader.LoadCertificateFromFile(values["CERTIFICATE"]);
    }

    public string Dir { get; }

    public string Password => values["PASSWORD"];

    public X509Certificate2 Certificate { get; }

    /// <summary>The running servers, or a skip (counted and named by the build's summary) saying why not.</summary>
    public static InteropServers Require()
    {
        var (servers, reason) = Loaded.Value;
        if (servers is null)
        {
            Assert.Skip(reason!);
        }

        return servers!;
    }

    public static string DefaultDir => Path.Combine(Path.GetTempPath(), "pop3functional-interop");

    private static (InteropServers?, string?) Load()
    {
        // The build's test target says why it did not start the servers (not root, no apt, not Linux).
        if (Environment.GetEnvironmentVariable("POP3_INTEROP_NOT_RUN") is { Length: > 0 } notRun)
        {
            return (null, $"Real-server tests did not run: {notRun}");
        }

        var dir = Environment.GetEnvironmentVariable("POP3_INTEROP_DIR") is { Length: > 0 } d ? d : DefaultDir;
        var manifest = Path.Combine(dir, "servers.env");
        if (!File.Exists(manifest))
        {
            return (null,
                $"Real-server tests did not run: the servers are not running (no {manifest}). As root on Linux with apt, "
                + "`dotnet run --project build -- test` starts them, or `dotnet run --project build -- servers start` by hand.");
        }

        var values = File.ReadAllLines(manifest)
            .Where(line => line.Length > 0 && line[0] != '#' && line.Contains('='))
            .ToDictionary(line => line[..line.IndexOf('=')], line => line[(line.IndexOf('=') + 1)..]);

        // Cells delete mail: one run per start, so every run sees the seeded mailboxes.
        var marker = Path.Combine(dir, "used-by-tests-" + values["STARTED"].Replace(':', '-'));
        try
        {
            using var created = new FileStream(marker, FileMode.CreateNew);
        }
        catch (IOException)
        {
            return (null,
                $"Real-server tests did not run: an earlier run (marker {marker}) already changed the mailboxes of the servers started at "
                + $"{values["STARTED"]}; `dotnet run --project build -- servers start` re-seeds them.");
        }

        return (new InteropServers(dir, values), null);
    }

    /// <summary>The port; <paramref name="tls12Only"/> picks Cyrus's listeners that speak TLS 1.2 only.</summary>
    public int Port(Server server, Tls tls, bool tls12Only = false) =>
        int.Parse(
            values[$"{server.ToString().ToUpperInvariant()}{(tls12Only ? "_TLS12" : "")}{(tls == Tls.Implicit ? "_TLS" : "")}_PORT"],
            System.Globalization.CultureInfo.InvariantCulture);

    public IReadOnlyList<string> Accounts(Server server) => values[$"{server.ToString().ToUpperInvariant()}_ACCOUNTS"].Split(',');

    public string Account(Server server, string name)
    {
        Assert.True(Accounts(server).Contains(name), $"pop3-servers.sh creates no account {name} on {server}.");
        return name;
    }

    /// <summary>
    /// A builder for one server and TLS mode: certificates checked against the script's own
    /// self-signed certificate (and the name localhost), 60 s reply timeout, a protocol log.
    /// </summary>
    public Pop3Builder Builder(Server server, Tls tls, ProtocolRecorder log, bool tls12Only = false)
    {
        Assert.True(!tls12Only || server == Server.Cyrus, "Only Cyrus has TLS 1.2-only listeners.");
        var builder = Pop3.Connect("127.0.0.1", Port(server, tls, tls12Only))
            .WithServerName("localhost")
            .WithCertificateValidation(CheckCertificate)
            .WithTimeout(TimeSpan.FromSeconds(60))
            .WithLogger(log);
        return tls switch
        {
            Tls.Plain => builder.WithoutTls().AllowPlaintextCredentials(),
            Tls.Stls => builder.WithStartTls(),
            Tls.Implicit => builder.WithImplicitTls(),
            _ => throw new ArgumentOutOfRangeException(nameof(tls)),
        };
    }

    // The script's certificate, and nothing else, on a name that matches it.
    private bool CheckCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) =>
        certificate is not null
        && (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) == SslPolicyErrors.None
        && certificate.GetCertHashString() == Certificate.GetCertHashString();
}

/// <summary>Collects the client's protocol log ("C:" and "S:" lines), to check what was sent.</summary>
internal sealed class ProtocolRecorder : ILogger
{
    private readonly ConcurrentQueue<string> lines = new();

    public IReadOnlyList<string> Lines => [.. lines];

    /// <summary>The commands sent, as the log shows them (secrets redacted): the text after "C: ".</summary>
    public IReadOnlyList<string> Commands =>
        Lines.Select(line => line.IndexOf(" C: ", StringComparison.Ordinal) is var i and >= 0 ? line[(i + 4)..] : null).OfType<string>().ToList();

    public int Sent(string verb) => Commands.Count(c => c.Equals(verb, StringComparison.OrdinalIgnoreCase) || c.StartsWith(verb + " ", StringComparison.OrdinalIgnoreCase));

    public string Transcript => string.Join('\n', Lines);

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        lines.Enqueue(formatter(state, exception));
}
