using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Cli.Tests;

/// <summary>
/// Issue #9: the built <c>pop3</c> program is killed with SIGKILL at a random moment of
/// <c>fetch --delete</c> against a simulator on TCP, once per round with its own seed, then run
/// again to completion. Every message must end up in the Maildir exactly once, and the server must
/// never have lost a message that was not stored durably (DESIGN §12: the built program, not
/// <c>dotnet run</c>).
/// </summary>
public sealed class CrashTests(ITestOutputHelper output)
{
    /// <summary>SIGKILLs that must land on a running fetch (issue #9: at least 100).</summary>
    private const int Kills = 100;

    /// <summary>At most this many rounds to get them (a fetch that finishes first is not a kill).</summary>
    private const int MaxRounds = 160;
    private const int Messages = 50;
    private const int GroupSize = 5;
    private const string Password = "pw-for-crash-tests";
    private const string PasswordVariable = "POP3_CLI_CRASH_TESTS_PASSWORD";
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task Sigkill_at_random_moments_of_fetch_delete_loses_nothing_duplicates_nothing_and_deletes_only_stored_messages()
    {
        var cancel = TestContext.Current.CancellationToken;
        var options = SimulatorOptions.Default
            .WithoutTls()
            .WithRequireTlsForPlaintextAuth(false)
            .WithTranscript(false)
            .WithFaults(Faults.Latency(TimeSpan.FromMilliseconds(1)));
        await using var simulator = await Pop3Simulator.StartAsync(options, cancel);
        var generated = MailboxGenerator.Generate(GeneratorOptions.Default.WithSeed(909).WithCount(Messages).WithSizes(256, 4096));

        // What each message must look like in the Maildir (LF line ends), keyed by its UID.
        var stored = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var message in generated)
        {
            stored[message.Uid] = Key(Server.Lf(message.Content.ToArray()));
        }

        Assert.Equal(Messages, stored.Count);
        Assert.Equal(Messages, stored.Values.Distinct().Count());
        var expected = stored.Values.Order(StringComparer.Ordinal).ToList();

        using var root = new TempDir();
        var total = Stopwatch.StartNew();

        // One uninterrupted run sizes the window the kills are drawn from.
        var calibration = Stopwatch.StartNew();
        var full = await FreshRoundAsync(simulator, generated, root, "calibrate");
        var complete = await RunAsync(Command(simulator.Endpoint.Port, full.User, full.Maildir, json: true), cancel);
        calibration.Stop();
        Assert.True(complete.ExitCode == 0, complete.Error);
        Assert.Equal(expected, StoredKeys(full.Maildir));
        Assert.Equal(0, simulator.Mailbox(full.User).Count);
        // 0.8 of one whole run (process start included): nearly every kill lands on a running fetch.
        var window = calibration.Elapsed * 0.8;

        int before = 0, during = 0, storedNotCommitted = 0, committed = 0, finishedFirst = 0, recovered = 0, retried = 0;
        var round = 0;
        for (; round - finishedFirst < Kills; round++)
        {
            Assert.True(round < MaxRounds, $"only {round - finishedFirst} of {round} rounds ended in a SIGKILL");
            var seed = 1000 + round;
            var random = new Random(seed);
            var delay = TimeSpan.FromTicks((long)(random.NextDouble() * window.Ticks));
            var (user, maildir) = await FreshRoundAsync(simulator, generated, root, "crash" + seed);
            var context = $"round {round} (seed {seed}, kill after {delay.TotalMilliseconds:F0} ms)";

            // The killed run.
            using (var process = Start(Command(simulator.Endpoint.Port, user, maildir, json: false)))
            {
                Drain(process);
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                wait.CancelAfter(delay);
                try
                {
                    await process.WaitForExitAsync(wait.Token);
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    // The moment has come.
                }

                var exitedByItself = process.HasExited;
                if (!exitedByItself)
                {
                    process.Kill(entireProcessTree: true);
                }

                await process.WaitForExitAsync(cancel);
                if (exitedByItself)
                {
                    finishedFirst++;
                }
            }

            // The server has finished with the dead client's session (EOF, or a QUIT it had sent).
            await WaitUntilAsync(() => simulator.ActiveSessions == 0, context, cancel);

            // After the kill, before the rerun: what is in new/ and cur/ is complete, known and
            // unique; and whatever the server no longer has is among it.
            var atKill = StoredKeys(maildir);
            Assert.True(atKill.Distinct().Count() == atKill.Count, $"{context}: a message is stored twice after the kill");
            Assert.All(atKill, key => Assert.True(expected.Contains(key), $"{context}: a stored file is no message of the mailbox (incomplete?)"));
            var onServer = simulator.Mailbox(user).Uids.ToHashSet(StringComparer.Ordinal);
            var gone = stored.Keys.Where(uid => !onServer.Contains(uid)).ToList();
            Assert.All(gone, uid => Assert.True(atKill.Contains(stored[uid]), $"{context}: the server deleted {uid}, which is not in the Maildir"));

            // Deletions commit only at QUIT, and QUIT follows the last group: a killed fetch leaves
            // the server either untouched or (killed after its QUIT) empty with everything stored.
            Assert.True(gone.Count == 0 || (gone.Count == Messages && atKill.Count == Messages), $"{context}: {gone.Count} message(s) deleted with {atKill.Count} stored");

            if (gone.Count > 0)
            {
                committed++;
            }
            else if (atKill.Count == 0)
            {
                before++;
            }
            else if (atKill.Count < Messages)
            {
                during++;
            }
            else
            {
                storedNotCommitted++;
            }

            // The rerun, to completion. A server that has not yet released the account answers
            // [IN-USE] (exit 5): wait and try again.
            Run rerun;
            var attempts = 0;
            while (true)
            {
                rerun = await RunAsync(Command(simulator.Endpoint.Port, user, maildir, json: true), cancel);
                if (rerun.ExitCode != 5 || ++attempts == 10)
                {
                    break;
                }

                retried++;
                await Task.Delay(200, cancel);
            }

            Assert.True(rerun.ExitCode == 0, $"{context}: the rerun exited {rerun.ExitCode}: {rerun.Error}");
            using (var summary = JsonDocument.Parse(rerun.Out))
            {
                recovered += summary.RootElement.GetProperty("recovered").GetInt32();
            }

            await WaitUntilAsync(() => simulator.ActiveSessions == 0, context, cancel);
            Assert.True(expected.SequenceEqual(StoredKeys(maildir)), $"{context}: the Maildir does not hold every message exactly once after the rerun");
            Assert.True(simulator.Mailbox(user).Count == 0, $"{context}: the rerun left {simulator.Mailbox(user).Count} message(s) on the server");
            var leftInTmp = Directory.GetFiles(Path.Combine(maildir, "tmp"));
            Assert.True(leftInTmp.Length == 0, $"{context}: the rerun left {leftInTmp.Length} file(s) in tmp/ (the killed run's partial files must be removed)");
            Directory.Delete(maildir, recursive: true);
        }

        Assert.Equal(round, before + during + storedNotCommitted + committed);
        var report =
            $"{round} rounds ({round - finishedFirst} SIGKILLs of a running fetch) of {Messages} messages (groups of {GroupSize}), kill window {window.TotalMilliseconds:F0} ms: " +
            $"killed before anything was stored {before}, while storing {during}, after storing but before QUIT committed {storedNotCommitted}, " +
            $"after QUIT committed {committed} (of which the process had already exited {finishedFirst}); " +
            $"messages recognised by their ,U= tag on a rerun {recovered}; [IN-USE] retries {retried}; {total.Elapsed.TotalSeconds:F0} s";
        output.WriteLine(report);
        TestContext.Current.SendDiagnosticMessage(report);
    }

    /// <summary>A new account holding the whole mailbox, and a Maildir path that does not exist yet.</summary>
    private static async Task<(string User, string Maildir)> FreshRoundAsync(Pop3Simulator simulator, IEnumerable<GeneratedMessage> messages, TempDir root, string user)
    {
        await WaitUntilAsync(() => simulator.ActiveSessions == 0, user, TestContext.Current.CancellationToken);
        var mailbox = simulator.Mailbox(user, Password);
        Assert.Equal(0, mailbox.Count);
        mailbox.AddRange(messages);
        Assert.Equal(Messages, mailbox.Count);
        return (user, root.Sub(user));
    }

    private static string[] Command(int port, string user, string maildir, bool json) =>
    [
        "fetch", maildir, "--delete", "--group-size", GroupSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "--host", "127.0.0.1", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "--tls", "none", "--allow-plaintext-password", "--user", user, "--password-env", PasswordVariable,
        .. json ? new[] { "--json" } : [],
    ];

    private static Process Start(string[] args) =>
        Pop3Process.Start(args, new Dictionary<string, string> { [PasswordVariable] = Password });

    private static void Drain(Process process)
    {
        process.StandardInput.Close();
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    private static Task<Run> RunAsync(string[] args, CancellationToken cancel) =>
        Pop3Process.RunAsync(args, new Dictionary<string, string> { [PasswordVariable] = Password }, null, RunTimeout, cancel);

    private static async Task WaitUntilAsync(Func<bool> condition, string context, CancellationToken cancel)
    {
        var limit = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(limit.Elapsed < TimeSpan.FromSeconds(60), $"{context}: the simulator still has a session open after 60 s");
            await Task.Delay(10, cancel);
        }
    }

    /// <summary>The content keys of the files in new/ and cur/ (tmp/ is not delivered mail), sorted; each file's ,S= checked.</summary>
    private static List<string> StoredKeys(string maildir)
    {
        var keys = new List<string>();
        foreach (var sub in new[] { "new", "cur" })
        {
            var dir = Path.Combine(maildir, sub);
            if (!Directory.Exists(dir))
            {
                continue;
            }

            foreach (var file in Directory.GetFiles(dir))
            {
                var name = Path.GetFileName(file);
                var at = name.IndexOf(",S=", StringComparison.Ordinal);
                Assert.True(at > 0, $"{name} has no ,S= field");
                var size = long.Parse(name[(at + 3)..].Split(':', ',')[0], System.Globalization.CultureInfo.InvariantCulture);
                var bytes = File.ReadAllBytes(file);
                Assert.True(bytes.Length == size, $"{name} holds {bytes.Length} octets");
                keys.Add(Key(bytes));
            }
        }

        keys.Sort(StringComparer.Ordinal);
        return keys;
    }

    private static string Key(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes));
}
