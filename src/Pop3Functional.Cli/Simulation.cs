using Pop3Functional.Simulator;

namespace Pop3Functional.Cli;

/// <summary>
/// The mailbox <c>pop3 fetch --simulate</c> and <c>pop3 simulate</c> serve: generated, realistic
/// mail with the awkward cases (dot lines, 998-octet lines, 8-bit and encoded-word headers,
/// folding, nested MIME, empty bodies, one 4 MiB message), the same every run for a seed.
/// </summary>
internal static class Simulation
{
    public const string User = "alice";
    public const string Password = "simulator";
    public const int DefaultSeed = 1939;
    public const int DefaultMessages = 300;

    /// <summary>The state key of the embedded simulator: no port in it (ephemeral), so reruns match (DESIGN §12).</summary>
    public const string StateKey = User + "@simulator";

    public static GeneratorOptions Mailbox(int seed, int messages) =>
        GeneratorOptions.Default.WithSeed(seed).WithCount(messages).WithSizes(1024, 64 * 1024).WithLargeMessage(4L * 1024 * 1024);

    public static async Task<Pop3Simulator> StartAsync(SimulatorOptions options, int seed, int messages, CancellationToken cancellationToken)
    {
        var simulator = await Pop3Simulator.StartAsync(options.WithSeed(seed).WithTranscript(false), cancellationToken);
        simulator.Mailbox(User, Password).AddGenerated(Mailbox(seed, messages));
        return simulator;
    }

    /// <summary>A client of <paramref name="simulator"/> over implicit TLS, its certificate pinned.</summary>
    public static Connection Client(Pop3Simulator simulator)
    {
        var check = new CertificateCheck(false, CertificateCheck.ParseFingerprint(simulator.CertificateFingerprint), null);
        var builder = Pop3.Connect(simulator.TlsEndpoint.Address.ToString(), simulator.TlsEndpoint.Port)
            .WithImplicitTls()
            .WithServerName("localhost")
            .WithCertificateValidation(check.Validate)
            .WithCredentials(User, Secrets.FromString(Password))
            .WithTimeout(TimeSpan.FromSeconds(60));
        return new Connection(builder, check, StateKey);
    }
}
