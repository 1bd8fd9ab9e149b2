using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Pop3Functional.Cli;

/// <summary>
/// What interrupted runs left in a Maildir's <c>tmp/</c>, removed at the start of a fetch once its
/// lock is held (docs/cli.md). A file in <c>tmp/</c> is only ever renamed by the process that wrote
/// it, so one of ours whose writer is gone is garbage at once; a file of another program is left
/// alone until it is 36 hours old, the age after which the Maildir specification lets a reader
/// delete it.
/// </summary>
internal static partial class TmpCleanup
{
    /// <summary>The age after which any file in tmp/ may be deleted (the Maildir specification).</summary>
    public static readonly TimeSpan ForeignAge = TimeSpan.FromHours(36);

    // Maildir.Begin's unique names: seconds.MmicrosecondsPpidQn.host (nothing appended in tmp/).
    [GeneratedRegex(@"^[0-9]+\.M[0-9]+P(?<pid>[0-9]+)Q[0-9]+\.(?<host>.+)$", RegexOptions.CultureInvariant)]
    private static partial Regex OurName();

    /// <summary>
    /// Deletes from <paramref name="maildir"/>'s tmp/ the files of ours whose writing process is
    /// gone, and anyone's older than <see cref="ForeignAge"/>; returns how many it deleted. A file
    /// that cannot be deleted is reported through <paramref name="warn"/> and does not stop the fetch.
    /// </summary>
    public static int Run(IFileSystem fileSystem, Maildir maildir, DateTime nowUtc, Action<string> warn)
    {
        var removed = 0;
        foreach (var name in fileSystem.FileNames(maildir.Tmp).ToList())
        {
            var path = Path.Combine(maildir.Tmp, name);
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                continue; // renamed or deleted by its writer meanwhile
            }

            var lastWrite = info.LastWriteTimeUtc;
            var ours = OurName().Match(name);
            var garbage = ours.Success && ours.Groups["host"].Value == Maildir.Host
                && int.TryParse(ours.Groups["pid"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                    ? !WriterAlive(pid, lastWrite)
                    : nowUtc - lastWrite > ForeignAge;
            if (!garbage)
            {
                continue;
            }

            try
            {
                fileSystem.Delete(path);
                removed++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                warn($"{path} was left by an interrupted run and cannot be removed: {e.Message}");
            }
        }

        return removed;
    }

    /// <summary>
    /// Whether the process <paramref name="pid"/> may still be writing a file last written at
    /// <paramref name="lastWriteUtc"/>. When in doubt, yes: a file kept costs nothing, a file
    /// deleted under its writer fails that writer's fetch.
    /// </summary>
    private static bool WriterAlive(int pid, DateTime lastWriteUtc)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            // PIDs are reused: a process that started after the file was last written is not its
            // writer (a few seconds of slack for the clocks the two times come from).
            return process.StartTime.ToUniversalTime() <= lastWriteUtc + TimeSpan.FromSeconds(5);
        }
        catch (ArgumentException)
        {
            return false; // no such process
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or System.ComponentModel.Win32Exception)
        {
            return true; // it exists, but cannot be inspected
        }
    }
}
