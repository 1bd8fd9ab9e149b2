using System.Diagnostics;
using System.Text.Json;
using Xunit;

namespace Pop3Functional.Cli.Tests;

/// <summary>
/// A fetch starts by removing what interrupted runs left in tmp/: our own files whose writer is
/// gone at once, anyone's after 36 hours (the Maildir specification), nothing else.
/// </summary>
public sealed class TmpCleanupTests
{
    [Fact]
    public async Task A_fetch_removes_the_tmp_files_of_dead_writers_and_old_foreign_files_and_keeps_the_rest()
    {
        await using var server = await Server.StartAsync(messages: 8, seed: 31);
        using var dir = new TempDir();
        var tmp = Path.Combine(dir.Path, "tmp");
        Directory.CreateDirectory(tmp);
        var seconds = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string Ours(int pid, int n, string host) => $"{seconds}.M{n}P{pid}Q{n}.{host}";

        var deadPid = await DeadProcessIdAsync();
        var self = Environment.ProcessId;
        var selfStarted = Process.GetCurrentProcess().StartTime.ToUniversalTime();
        var removed = new[]
        {
            Write(Ours(deadPid, 1, Maildir.Host)), // its writer has exited
            Write(Ours(self, 2, Maildir.Host), selfStarted.AddMinutes(-10)), // written before this process began: an earlier process with the same PID
            Write("1700000000.courier-leftover", DateTime.UtcNow.AddHours(-40)), // anyone's, older than 36 h
        };
        var kept = new[]
        {
            Write(Ours(self, 3, Maildir.Host)), // a live writer (this process) may still rename it
            Write(Ours(deadPid, 4, "another-host")), // another machine's (a shared Maildir): its PIDs mean nothing here
            Write("1700000001.courier-in-progress", DateTime.UtcNow.AddHours(-35)), // anyone's, younger than 36 h
        };

        var run = await Pop3Cli.RunAsync(["fetch", dir.Path, "--json", .. server.Connection()]);

        Assert.True(run.ExitCode == 0, run.Error);
        using (var doc = JsonDocument.Parse(run.Out))
        {
            Assert.Equal(removed.Length, doc.RootElement.GetProperty("tmpRemoved").GetInt32());
            Assert.Equal(8, doc.RootElement.GetProperty("fetched").GetInt32());
        }

        Assert.Equal(kept.Order(), Directory.GetFiles(tmp).Select(Path.GetFileName).Order());
        var text = await Pop3Cli.RunAsync(["fetch", dir.Path, .. server.Connection()]);
        Assert.Contains("Nothing new", text.Out);
        Assert.DoesNotContain("left in tmp/", text.Out);

        string Write(string name, DateTime? lastWriteUtc = null)
        {
            var path = Path.Combine(tmp, name);
            File.WriteAllText(path, "partial message\n");
            if (lastWriteUtc is { } time)
            {
                File.SetLastWriteTimeUtc(path, time);
            }

            return name;
        }
    }

    [Fact]
    public async Task The_text_summary_says_how_many_leftover_files_were_removed()
    {
        await using var server = await Server.StartAsync(messages: 2, seed: 32);
        using var dir = new TempDir();
        Directory.CreateDirectory(Path.Combine(dir.Path, "tmp"));
        var deadPid = await DeadProcessIdAsync();
        File.WriteAllText(Path.Combine(dir.Path, "tmp", $"{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}.M5P{deadPid}Q1.{Maildir.Host}"), "partial");

        var run = await Pop3Cli.RunAsync(["fetch", dir.Path, .. server.Connection()]);

        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Contains("1 file(s) an interrupted run left in tmp/ removed", run.Out);
        MaildirAssert.HoldsExactly(dir.Path, server.MessagesAsStored());
    }

    /// <summary>The PID of a process that has run and exited (and been reaped).</summary>
    private static async Task<int> DeadProcessIdAsync()
    {
        using var process = Process.Start(new ProcessStartInfo(Pop3Process.DotnetHost(), "--version")
        {
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        await process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        await process.WaitForExitAsync(TestContext.Current.CancellationToken);
        return process.Id;
    }
}
