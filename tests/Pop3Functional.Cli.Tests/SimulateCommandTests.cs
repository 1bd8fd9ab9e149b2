using System.Diagnostics;
using System.Text.Json;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Cli.Tests;

/// <summary><c>pop3 simulate</c> as a process of its own: what it prints is enough to reach it, its options are honoured, a signal ends it cleanly.</summary>
public sealed class SimulateCommandTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    public static bool CanSignal => Pop3Process.CanSignal;

    [Fact(SkipUnless = nameof(CanSignal), Skip = "POSIX signals are sent on Linux and macOS only")]
    public async Task Simulate_json_prints_how_to_reach_it_honours_its_options_serves_a_fetch_and_ends_cleanly_on_ctrl_c()
    {
        var cancel = TestContext.Current.CancellationToken;
        const int Messages = 9;
        const int Seed = 5;
        using var process = Pop3Process.Start(
            ["simulate", "--json", "--messages", "9", "--seed", "5", "--personality", "dovecot", "--fault", "duplicate-uids"]);
        try
        {
            var stderr = process.StandardError.ReadToEndAsync(cancel);
            var first = await process.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(Limit, cancel);
            Assert.NotNull(first);
            using var info = JsonDocument.Parse(first);
            var root = info.RootElement;
            Assert.Equal("dovecot", root.GetProperty("personality").GetString());
            Assert.Equal(Messages, root.GetProperty("messages").GetInt32());
            Assert.Equal(Simulation.User, root.GetProperty("user").GetString());
            Assert.StartsWith("127.0.0.1:", root.GetProperty("plain").GetString());
            var tlsPort = root.GetProperty("implicitTls").GetString()!.Split(':')[1];
            var fingerprint = root.GetProperty("fingerprint").GetString()!;
            Assert.NotNull(CertificateCheck.ParseFingerprint(fingerprint));
            Environment.SetEnvironmentVariable("POP3_CLI_TESTS_SIMULATE_PASSWORD", root.GetProperty("password").GetString());
            string[] connection =
            [
                "--host", "127.0.0.1", "--port", tlsPort, "--tls", "implicit", "--fingerprint", fingerprint,
                "--user", Simulation.User, "--password-env", "POP3_CLI_TESTS_SIMULATE_PASSWORD",
            ];

            // --personality: Dovecot's greeting.
            var capa = await Pop3Cli.RunAsync(["capa", "--json", .. connection[..8]]);
            Assert.True(capa.ExitCode == 0, capa.Error);
            using (var doc = JsonDocument.Parse(capa.Out))
            {
                Assert.StartsWith("Dovecot (Debian) ready.", doc.RootElement.GetProperty("greeting").GetString());
            }

            // --messages and --seed: exactly the generated mailbox; --fault duplicate-uids: every
            // message has the same UID, so the fetch says so and tells them apart by content.
            using var dir = new TempDir();
            var fetch = await Pop3Cli.RunAsync(["fetch", dir.Path, "--json", .. connection]);
            Assert.True(fetch.ExitCode == 0, fetch.Error);
            using (var doc = JsonDocument.Parse(fetch.Out))
            {
                Assert.Equal(Messages, doc.RootElement.GetProperty("fetched").GetInt32());
                Assert.Contains(doc.RootElement.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.Contains("more than one message", StringComparison.Ordinal));
            }

            MaildirAssert.HoldsExactly(dir.Path, MailboxGenerator.Generate(Simulation.Mailbox(Seed, Messages)).Select(m => Server.Lf(m.Content.ToArray())));

            Pop3Process.Signal(process, Pop3Process.SigInt);
            await Pop3Process.WaitForExitAsync(process, Limit, "pop3 simulate after SIGINT", cancel);
            Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}: {await stderr}");
            Assert.Equal("", (await process.StandardOutput.ReadToEndAsync(cancel)).Trim());
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact(SkipUnless = nameof(CanSignal), Skip = "POSIX signals are sent on Linux and macOS only")]
    public async Task Simulate_prints_its_endpoints_fingerprint_and_account_as_text_and_ends_cleanly_on_sigterm()
    {
        var cancel = TestContext.Current.CancellationToken;
        using var process = Pop3Process.Start(["simulate", "--messages", "3"]);
        try
        {
            var lines = new List<string>();
            while (lines.LastOrDefault() != "Ctrl+C stops it.")
            {
                var line = await process.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(Limit, cancel);
                Assert.True(line is not null, "pop3 simulate ended early: " + string.Join("\n", lines));
                lines.Add(line);
            }

            Assert.Equal($"POP3 simulator, personality simulator, 3 generated messages (seed {Simulation.DefaultSeed})", lines[0]);
            string Field(string name) => lines.Single(l => l.TrimStart().StartsWith(name, StringComparison.Ordinal)).Split(':', 2)[1].Trim();
            var tls = Field("implicit TLS:");
            var fingerprint = Field("certificate:");
            Assert.Equal($"alice, password {Simulation.Password}", Field("account:"));
            Assert.StartsWith("127.0.0.1:", Field("plaintext + STLS:"));

            Environment.SetEnvironmentVariable("POP3_CLI_TESTS_SIMULATE_TEXT_PASSWORD", Simulation.Password);
            var stat = await Pop3Cli.RunAsync(
                ["stat", "--host", "127.0.0.1", "--port", tls.Split(':')[1], "--tls", "implicit", "--fingerprint", fingerprint,
                 "--user", Simulation.User, "--password-env", "POP3_CLI_TESTS_SIMULATE_TEXT_PASSWORD"]);
            Assert.True(stat.ExitCode == 0, stat.Error);
            Assert.StartsWith("3 message(s)", stat.Out);

            Pop3Process.Signal(process, Pop3Process.SigTerm);
            await Pop3Process.WaitForExitAsync(process, Limit, "pop3 simulate after SIGTERM", cancel);
            Assert.Equal(0, process.ExitCode);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }
}
