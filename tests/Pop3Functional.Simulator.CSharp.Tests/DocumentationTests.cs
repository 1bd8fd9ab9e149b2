using Xunit;
using static Pop3Functional.Simulator.CSharp.Tests.Support;

namespace Pop3Functional.Simulator.CSharp.Tests;

/// <summary>The C# examples of docs/simulator.md, as written there (the client in between is ours).</summary>
public class DocumentationTests
{
    [Fact]
    public async Task The_start_one_example()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;

        // --- docs/simulator.md, "Start one (C#)" ---
        // (xUnit's analyzer wants TestContext's token passed; the example is not xUnit-specific.)
#pragma warning disable xUnit1051
        await using var sim = await Pop3Simulator.StartAsync(
            SimulatorOptions.Default.WithPersonality(Personalities.dovecot));
#pragma warning restore xUnit1051

        sim.Mailbox("alice", "secret").Add("Subject: hello\n\nfirst message\n");

        // sim.Endpoint: plaintext with STLS (127.0.0.1, ephemeral port)
        // sim.TlsEndpoint: implicit TLS (POP3S); trust sim.Certificate (or sim.CertificateFingerprint)
        // sim.ConnectInMemory(): a Stream to the same server with no socket at all
        // ... run your client ...
        await RunClient(sim, ct);
        Assert.Equal(0, sim.Mailbox("alice").Count);           // what QUIT committed
        Console.WriteLine(sim.Transcript);                     // "S1 C: USER alice", "S1 S: +OK", ...
        // --- end of the example ---

        Assert.StartsWith("S1 S: +OK Dovecot", sim.Transcript.ToString(), StringComparison.Ordinal);
        Assert.Contains("S1 C: USER alice", sim.Transcript.ToString(), StringComparison.Ordinal);
    }

    private static async Task RunClient(Pop3Simulator sim, CancellationToken ct)
    {
        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        await client.ReadLineAsync(ct);
        await client.LoginAsync("alice", "secret", ct);
        var (_, message) = await client.RetrAsync(1, ct);
        SameOctets(Crlf("Subject: hello\n\nfirst message\n"), message, "the example's message");
        await client.CommandAsync("DELE 1", ct);
        await client.CommandAsync("QUIT", ct);
    }

    [Fact]
    public async Task The_personality_fault_and_generator_examples()
    {
        using var deadline = Deadline();
        var ct = deadline.Token;

        // --- docs/simulator.md, "Start one (C#)", the second example ---
#pragma warning disable xUnit1051
        var quiet = Personalities.dovecot.WithApop(false).WithGreeting("ready");
        Faults.TryParse("err-retr", out var plan);
        var options = SimulatorOptions.Default
            .WithPersonality(quiet)
            .WithFaults(plan.With(Faults.Latency(TimeSpan.FromMilliseconds(1))));
        await using var sim = await Pop3Simulator.StartAsync(options);
        sim.Mailbox("bob", "pw").AddGenerated(GeneratorOptions.Default.WithSeed(7).WithCount(30));
#pragma warning restore xUnit1051
        // --- end of the example ---

        Assert.Equal(30, sim.Mailbox("bob").Count);
        await using var client = await RawPop3Client.ConnectAsync(sim.Endpoint, ct);
        Assert.Equal("+OK ready", await client.ReadLineAsync(ct));
        await client.LoginAsync("bob", "pw", ct);
        Assert.StartsWith("-ERR [SYS/TEMP]", await client.CommandAsync("RETR 1", ct), StringComparison.Ordinal);
    }
}
