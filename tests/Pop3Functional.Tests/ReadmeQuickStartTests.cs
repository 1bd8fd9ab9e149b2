using LanguageExt;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Tests;

/// <summary>The README's C# quick start, compiled and run; and a check that the README shows exactly this code.</summary>
public sealed class ReadmeQuickStartTests
{
    private const string Begin = "// README quick start: begin";
    private const string End = "// README quick start: end";

    [Fact]
    public async Task Quick_start_runs()
    {
        var ct = TestContext.Current.CancellationToken;
        // README quick start: begin
        // A server to talk to: the simulator, over implicit TLS with its own certificate.
        await using var sim = await Pop3Simulator.StartAsync(SimulatorOptions.Default, ct);
        sim.Mailbox("alice", "s3cret").Add("Subject: hello\n\nfirst message\n");

        // With a real server: Pop3.Connect("pop.example.com"), implicit TLS on 995, certificates checked.
        var pop3 = Pop3.Connect(sim.TlsEndpoint.Address.ToString(), sim.TlsEndpoint.Port)
            .WithImplicitTls()                                         // a port other than 995: say so
            .WithServerName("localhost")
            .WithCertificateValidation((_, certificate, _, _) => certificate?.GetCertHashString() == sim.Certificate.GetCertHashString())
            .WithCredentials("alice", Secrets.FromString("s3cret"))   // or Secrets.FromEnvironment("POP3_PASSWORD")
            .WithTimeout(TimeSpan.FromSeconds(30));

        Fin<string> result = await pop3.RunAsync(async session =>
        {
            var stat = await session.StatAsync(ct);                   // Fin<MaildropStat>
            var first = await session.RetrieveBytesAsync(1, ct);      // Fin<byte[]>
            return from s in stat
                   from bytes in first
                   select $"{s.Count} message(s); the first has {bytes.Length} octets";
        }, ct);                                                        // QUIT sent, connection closed

        Console.WriteLine(result.Match(
            Succ: text => text,
            Fail: error => $"POP3 failed ({error.Code}): {error.Message}"));
        // README quick start: end
        Assert.Equal("1 message(s); the first has 33 octets", result.Match(text => text, error => error.Message));
    }

    [Fact]
    public void Readme_shows_the_quick_start_exactly()
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Pop3Functional.sln")))
        {
            root = Path.GetDirectoryName(root) ?? throw new Xunit.Sdk.XunitException("the repository root was not found");
        }

        var source = File.ReadAllLines(Path.Combine(root, "tests", "Pop3Functional.Tests", "ReadmeQuickStartTests.cs"));
        var start = Array.FindIndex(source, l => l.Trim() == Begin) + 1;
        var stop = Array.FindIndex(source, l => l.Trim() == End);
        var indent = source[start].Length - source[start].TrimStart().Length;
        var snippet = source[start..stop].Select(l => l.Length >= indent ? l[indent..] : l.TrimStart()).ToArray();
        Assert.True(snippet.Length > 10);

        var readme = File.ReadAllText(Path.Combine(root, "README.md")).ReplaceLineEndings("\n");
        Assert.Contains("```csharp\n" + string.Join("\n", snippet) + "\n```", readme, StringComparison.Ordinal);
    }
}
