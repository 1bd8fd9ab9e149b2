using System.Security.Cryptography;
using System.Text;

namespace Pop3Functional.Cli;

/// <summary>
/// The UIDs already stored from one account into one Maildir: a text file in the Maildir's root,
/// <c>pop3-uidl.&lt;hash of the key&gt;</c>, rewritten atomically (temporary file, fsync, rename,
/// fsync of the directory), so after a crash it holds either the old or the new list, never half.
/// </summary>
internal sealed class UidState : IDisposable
{
    private const string Header = "# pop3 UIDL state v1";
    private readonly IFileSystem fileSystem;
    private readonly string maildir;
    private readonly HashSet<string> uids;
    private readonly FileStream? lockFile;

    private UidState(IFileSystem fileSystem, string maildir, string key, string path, HashSet<string> uids, FileStream? lockFile)
    {
        this.fileSystem = fileSystem;
        this.maildir = maildir;
        Key = key;
        Path = path;
        this.uids = uids;
        this.lockFile = lockFile;
    }

    /// <summary>The account this state belongs to (user@host, no port; DESIGN §12).</summary>
    public string Key { get; }

    /// <summary>The state file.</summary>
    public string Path { get; }

    /// <summary>The UIDs recorded.</summary>
    public IReadOnlySet<string> Uids => uids;

    /// <summary>A short, file-name-safe hash of the key.</summary>
    public static string KeyHash(string key) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..16];

    /// <summary>
    /// Loads the state of <paramref name="key"/> in <paramref name="maildir"/> and takes its lock
    /// (an exclusive lock file: two fetches of one account into one Maildir would store twice).
    /// Null when another process holds the lock.
    /// </summary>
    public static UidState? Open(IFileSystem fileSystem, string maildir, string key)
    {
        var path = System.IO.Path.Combine(maildir, $"pop3-uidl.{KeyHash(key)}");
        FileStream lockFile;
        try
        {
            // FileShare.None is an exclusive advisory lock (flock) on Unix, a share lock on Windows.
            lockFile = new FileStream(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException) when (File.Exists(path + ".lock"))
        {
            return null;
        }

        try
        {
            return new UidState(fileSystem, maildir, key, path, Parse(fileSystem.ReadText(path), key, path), lockFile);
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
    }

    private static HashSet<string> Parse(string? text, string key, string path)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        if (text is null)
        {
            return set;
        }

        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length < 2 || lines[0] != Header || lines[1] != "key " + key)
        {
            throw new InvalidDataException($"{path} is not a pop3 state file for {key}; move it away to fetch again");
        }

        foreach (var line in lines.Skip(2))
        {
            set.Add(line);
        }

        return set;
    }

    /// <summary>Forgets (at the next write) the UIDs the server no longer lists.</summary>
    public void RetainOnly(IReadOnlySet<string> serverUids) => uids.IntersectWith(serverUids);

    /// <summary>
    /// Adds UIDs and writes the whole list atomically. Call only once the messages are durable:
    /// from then on they are never fetched again.
    /// </summary>
    public void Record(IReadOnlyCollection<string> added)
    {
        foreach (var uid in added)
        {
            uids.Add(uid);
        }

        var text = new StringBuilder(Header).Append('\n').Append("key ").Append(Key).Append('\n');
        foreach (var uid in uids.Order(StringComparer.Ordinal))
        {
            text.Append(uid).Append('\n');
        }

        var temporary = Path + ".tmp";
        var file = fileSystem.Create(temporary);
        try
        {
            file.Write(Encoding.UTF8.GetBytes(text.ToString()));
        }
        catch
        {
            file.Dispose();
            fileSystem.Delete(temporary);
            throw;
        }

        fileSystem.SyncAndClose(file);
        fileSystem.Rename(temporary, Path);
        fileSystem.SyncDirectory(maildir);
    }

    public void Dispose() => lockFile?.Dispose();
}
