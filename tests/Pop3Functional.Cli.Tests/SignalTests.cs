using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Cli.Tests;

/// <summary>
/// Issue #9: Ctrl+C (SIGINT) and SIGTERM stop the built <c>pop3 fetch --delete</c> after the
/// current message with the state saved, exit 130, and a rerun completes the fetch with every
/// message exactly once.
/// </summary>
public sealed class SignalTests
{
    private const int Messages = 200;
    private const int GroupSize = 4;
    private const string User = "signalled";
    private const string Password = "pw-for-signal-tests";
    private const string PasswordVariable = "POP3_CLI_SIGNAL_TESTS_PASSWORD";
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);

    [Fact(SkipUnless = nameof(CanSignal), Skip = "POSIX signals are sent on Linux and macOS only")]
    public Task Sigint_stops_fetch_delete_after_the_current_message_with_the_state_saved_and_a_rerun_completes_it() =>
        InterruptAndRerunAsync(Pop3Process.SigInt);

    [Fact(SkipUnless = nameof(CanSignal), Skip = "POSIX signals are sent on Linux and macOS only")]
    public Task Sigterm_stops_fetch_delete_like_ctrl_c() =>
        InterruptAndRerunAsync(Pop3Process.SigTerm);

    public static bool CanSignal => Pop3Process.CanSignal;

    private static async Task InterruptAndRerunAsync(int signal)
    {
        var cancel = TestContext.Current.CancellationToken;
        var generated = MailboxGenerator.Generate(GeneratorOptions.Default.WithSeed(4242).WithCount(Messages).WithSizes(256, 4096));
        var uidOf = generated.ToDictionary(m => Key(Server.Lf(m.Content.ToArray())), m => m.Uid);
        Assert.Equal(Messages, uidOf.Count);
        using var dir = new TempDir();
        var maildir = dir.Sub("mail");

        // A slow server (50 ms before every reply, about 15 s for the whole mailbox): the signal
        // lands long before the fetch could end, however loaded the machine is.
        var slowOptions = SimulatorOptions.Default.WithoutTls().WithRequireTlsForPlaintextAuth(false).WithTranscript(false)
            .WithFaults(Faults.Latency(TimeSpan.FromMilliseconds(50)));
        await using var slow = await Pop3Simulator.StartAsync(slowOptions, cancel);
        slow.Mailbox(User, Password).AddRange(generated);

        using var process = Pop3Process.Start(Command(slow.Endpoint.Port, maildir), Environment());
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(cancel);
        var stderr = process.StandardError.ReadToEndAsync(cancel);

        // Once the first group is stored (durable, recorded): the signal.
        await Pop3Process.WaitUntilAsync(
            () => process.HasExited || StoredFiles(maildir).Length >= GroupSize, Limit, "the first group stored", cancel);
        // (No await in an assertion's message: it would be evaluated first, and wait for the end.)
        Assert.False(process.HasExited, "pop3 ended before the signal");
        Pop3Process.Signal(process, signal);
        await Pop3Process.WaitForExitAsync(process, Limit, "the interrupted fetch", cancel);

        var error = await stderr;
        Assert.True(process.ExitCode == ExitCodes.Interrupted, $"exit code {process.ExitCode}: {error}");
        Assert.Contains("stopping after the current message", error);
        using (var summary = JsonDocument.Parse(await stdout))
        {
            Assert.True(summary.RootElement.GetProperty("interrupted").GetBoolean());
            var fetched = summary.RootElement.GetProperty("fetched").GetInt32();
            Assert.InRange(fetched, GroupSize, Messages - 1);
            Assert.Equal(fetched, StoredFiles(maildir).Length);
        }

        await Pop3Process.WaitUntilAsync(() => slow.ActiveSessions == 0, Limit, "the server ends the interrupted session", cancel);

        // What was stored is complete, once each, and exactly what the state records.
        var stored = StoredFiles(maildir).Select(f => Key(File.ReadAllBytes(f))).ToList();
        Assert.Equal(stored.Count, stored.Distinct().Count());
        Assert.All(stored, key => Assert.True(uidOf.ContainsKey(key), "a stored file is no message of the mailbox (incomplete?)"));
        var storedUids = stored.Select(key => uidOf[key]).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(storedUids.Order(StringComparer.Ordinal), StateUids(maildir));
        Assert.Empty(Directory.GetFiles(Path.Combine(maildir, "tmp")));

        // Nothing the server no longer has is missing from the Maildir.
        var remaining = slow.Mailbox(User).Messages;
        var onServer = remaining.Select(m => m.Uid).ToHashSet(StringComparer.Ordinal);
        Assert.All(uidOf.Values.Where(uid => !onServer.Contains(uid)), uid => Assert.Contains(uid, storedUids));

        // The rerun, against the same mailbox served without the latency (the same messages, UIDs,
        // user and host: the same state key), completes the fetch.
        var fastOptions = SimulatorOptions.Default.WithoutTls().WithRequireTlsForPlaintextAuth(false).WithTranscript(false);
        await using var fast = await Pop3Simulator.StartAsync(fastOptions, cancel);
        var later = fast.Mailbox(User, Password);
        foreach (var message in remaining)
        {
            later.Add(message.Content.ToArray(), message.Uid);
        }

        var rerun = await Pop3Process.RunAsync(Command(fast.Endpoint.Port, maildir), Environment(), null, Limit, cancel);
        Assert.True(rerun.ExitCode == 0, $"the rerun exited {rerun.ExitCode}: {rerun.Error}");
        using (var summary = JsonDocument.Parse(rerun.Out))
        {
            Assert.Equal(Messages - stored.Count, summary.RootElement.GetProperty("fetched").GetInt32());
            Assert.False(summary.RootElement.GetProperty("interrupted").GetBoolean());
        }

        MaildirAssert.HoldsExactly(maildir, generated.Select(m => Server.Lf(m.Content.ToArray())));
        Assert.Equal(0, later.Count);
    }

    private static string[] Command(int port, string maildir) =>
    [
        "fetch", maildir, "--delete", "--json", "--group-size", GroupSize.ToString(CultureInfo.InvariantCulture),
        "--host", "127.0.0.1", "--port", port.ToString(CultureInfo.InvariantCulture),
        "--tls", "none", "--allow-plaintext-password", "--user", User, "--password-env", PasswordVariable,
    ];

    private static Dictionary<string, string> Environment() => new() { [PasswordVariable] = Password };

    private static string[] StoredFiles(string maildir)
    {
        var directory = Path.Combine(maildir, "new");
        return Directory.Exists(directory) ? Directory.GetFiles(directory) : [];
    }

    /// <summary>The UIDs the state file records (after its two header lines), sorted.</summary>
    private static List<string> StateUids(string maildir)
    {
        var state = Directory.GetFiles(maildir, "pop3-uidl.*").Single(f => Path.GetExtension(f) is not ".lock" and not ".tmp");
        return File.ReadAllLines(state).Skip(2).Where(l => l.Length > 0).Order(StringComparer.Ordinal).ToList();
    }

    private static string Key(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes));
}
