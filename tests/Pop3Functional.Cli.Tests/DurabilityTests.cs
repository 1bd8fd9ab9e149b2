using System.Text;
using Xunit;

namespace Pop3Functional.Cli.Tests;

/// <summary>
/// The file-system seam, recorded: every operation of the Maildir writer and the state store in
/// order, with the UIDs each state write records and the protocol log's DELE lines in the same list.
/// </summary>
internal sealed class RecordingFileSystem(string root) : IFileSystem
{
    private readonly PhysicalFileSystem real = PhysicalFileSystem.Instance;
    private readonly HashSet<string> recorded = new(StringComparer.Ordinal);

    public List<string> Events { get; } = [];

    /// <summary>Throws this instead of the Nth call (1-based) that <see cref="FailWhen"/> matches.</summary>
    public Func<string, bool> FailWhen { get; set; } = _ => false;

    public int FailOnMatch { get; set; }

    public Exception Failure { get; set; } = new IOException("No space left on device", 28);

    private int matches;

    public void Add(string text)
    {
        lock (Events)
        {
            Events.Add(text);
        }
    }

    private string Rel(string path) => Path.GetRelativePath(root, path);

    private void Step(string text)
    {
        lock (Events)
        {
            if (FailWhen(text) && ++matches == FailOnMatch)
            {
                Events.Add("FAILED " + text);
                throw Failure;
            }

            Events.Add(text);
        }
    }

    public void CreateDirectory(string path) => real.CreateDirectory(path);

    public Stream Create(string path)
    {
        Step("write " + Rel(path));
        var stream = real.Create(path);
        streams[stream] = Rel(path);
        return stream;
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<Stream, string> streams = new();

    public void SyncAndClose(Stream file)
    {
        Step("fsync " + streams[file]);
        real.SyncAndClose(file);
    }

    public void Rename(string source, string destination)
    {
        Step($"rename {Rel(source)} {Rel(destination)}");
        real.Rename(source, destination);
        if (Path.GetFileName(destination).StartsWith("pop3-uidl.", StringComparison.Ordinal))
        {
            foreach (var line in File.ReadAllLines(destination).Skip(2))
            {
                if (recorded.Add(line))
                {
                    Add("recorded " + line);
                }
            }
        }
    }

    public void SyncDirectory(string path) => Step("fsyncdir " + Rel(path));

    public void Delete(string path)
    {
        Step("delete " + Rel(path));
        real.Delete(path);
    }

    public IEnumerable<string> FileNames(string directory) => real.FileNames(directory);

    public string? ReadText(string path) => real.ReadText(path);
}

/// <summary>The protocol log (-v) into the same event list: "DELE n" lines mark when each DELE was sent.</summary>
internal sealed class LogIntoEvents(RecordingFileSystem fileSystem) : TextWriter
{
    public override Encoding Encoding => Encoding.UTF8;

    public override void WriteLine(string? value)
    {
        var at = value?.IndexOf(" C: DELE ", StringComparison.Ordinal) ?? -1;
        if (at >= 0)
        {
            fileSystem.Add("DELE " + value![(at + " C: DELE ".Length)..].Trim());
        }
    }
}

public sealed class DurabilityTests
{
    [Fact]
    public async Task Every_message_is_written_fsynced_renamed_and_its_directory_fsynced_before_its_uid_is_recorded_and_its_dele_sent()
    {
        await using var server = await Server.StartAsync(messages: 40, seed: 5);
        using var dir = new TempDir();
        var uids = server.Mailbox.Uids.ToList();
        var expected = server.MessagesAsStored();
        var fs = new RecordingFileSystem(dir.Path);

        var run = await Pop3Cli.RunAsync(fs, new LogIntoEvents(fs), ["fetch", dir.Path, "--delete", "--group-size", "6", "-v", .. server.Connection()]);

        Assert.Equal(0, run.ExitCode);
        MaildirAssert.HoldsExactly(dir.Path, expected);
        var events = fs.Events;
        int IndexOf(Func<string, bool> match, int after = -1)
        {
            var i = events.FindIndex(after + 1, e => match(e));
            Assert.True(i >= 0, "missing event after " + after + ": " + string.Join("\n", events));
            return i;
        }

        var key = Simulation.User + "@127.0.0.1";
        for (var n = 1; n <= uids.Count; n++)
        {
            var tag = Maildir.Tag(key, uids[n - 1]);
            var rename = IndexOf(e => e.StartsWith("rename tmp", StringComparison.Ordinal) && e.Contains(",U=" + tag, StringComparison.Ordinal));
            var tmp = events[rename].Split(' ')[1];
            var write = IndexOf(e => e == "write " + tmp);
            var fsync = IndexOf(e => e == "fsync " + tmp);
            var dirSync = IndexOf(e => e == "fsyncdir new", rename);
            var stateSync = IndexOf(e => e == "fsyncdir .", dirSync);
            var recorded = IndexOf(e => e == "recorded " + uids[n - 1]);
            var dele = IndexOf(e => e == $"DELE {n}");
            Assert.True(write < fsync && fsync < rename && rename < dirSync && dirSync < recorded && recorded <= stateSync && stateSync < dele,
                $"message {n}: write {write}, fsync {fsync}, rename {rename}, fsync(new) {dirSync}, recorded {recorded}, state durable {stateSync}, DELE {dele}");
        }

        // A group commit: one directory fsync and one state write per group of 6, not per message.
        Assert.Equal((uids.Count + 5) / 6, events.Count(e => e == "fsyncdir new"));
    }

    [Theory]
    [InlineData("write tmp", 9)]
    [InlineData("fsync tmp", 14)]
    [InlineData("rename tmp", 3)]
    [InlineData("fsyncdir new", 2)]
    [InlineData("write pop3-uidl", 2)]
    [InlineData("rename pop3-uidl", 3)]
    public async Task A_full_disk_at_any_step_loses_nothing_deletes_nothing_unrecorded_and_the_rerun_stores_each_message_once(string step, int nth)
    {
        await using var server = await Server.StartAsync(messages: 30, seed: 9);
        using var dir = new TempDir();
        var expected = server.MessagesAsStored();
        var fs = new RecordingFileSystem(dir.Path) { FailWhen = e => e.StartsWith(step, StringComparison.Ordinal), FailOnMatch = nth };

        var failed = await Pop3Cli.RunAsync(fs, null, ["fetch", dir.Path, "--delete", "--group-size", "4", .. server.Connection()]);

        Assert.Equal(ExitCodes.DiskFull, failed.ExitCode);
        Assert.Contains("disk is full", failed.Error);
        Assert.Contains(fs.Events, e => e.StartsWith("FAILED", StringComparison.Ordinal));
        // Nothing the server dropped is missing from the Maildir.
        var left = server.MessagesAsStored().Select(Convert.ToHexString).ToHashSet();
        var stored = Directory.GetFiles(Path.Combine(dir.Path, "new")).Select(f => Convert.ToHexString(File.ReadAllBytes(f))).ToHashSet();
        Assert.All(expected.Select(Convert.ToHexString), m => Assert.True(left.Contains(m) || stored.Contains(m)));

        var rerun = await Pop3Cli.RunAsync(["fetch", dir.Path, "--delete", .. server.Connection()]);

        Assert.True(rerun.ExitCode == 0, rerun.Error);
        Assert.Equal(0, server.Mailbox.Count);
        MaildirAssert.HoldsExactly(dir.Path, expected);
    }

    [Fact]
    public async Task A_message_stored_but_not_recorded_is_recognised_not_stored_twice()
    {
        await using var server = await Server.StartAsync(messages: 20, seed: 13);
        using var dir = new TempDir();
        var expected = server.MessagesAsStored();
        // The first state write fails after its group's files are in new/ (a crash at that point).
        var fs = new RecordingFileSystem(dir.Path) { FailWhen = e => e.StartsWith("rename pop3-uidl", StringComparison.Ordinal), FailOnMatch = 1 };
        var crashed = await Pop3Cli.RunAsync(fs, null, ["fetch", dir.Path, "--group-size", "8", .. server.Connection()]);
        Assert.NotEqual(0, crashed.ExitCode);
        Assert.Equal(8, Directory.GetFiles(Path.Combine(dir.Path, "new")).Length);

        var rerun = await Pop3Cli.RunAsync(["fetch", dir.Path, "--json", .. server.Connection()]);

        Assert.True(rerun.ExitCode == 0, rerun.Error);
        Assert.Contains("\"recovered\":8", rerun.Out);
        Assert.Contains("\"fetched\":12", rerun.Out);
        MaildirAssert.HoldsExactly(dir.Path, expected);
    }
}
