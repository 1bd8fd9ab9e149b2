using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Pop3Functional.Cli;

/// <summary>
/// A Maildir (<c>tmp/ new/ cur/</c>) that messages are delivered into with the durability protocol
/// of docs/cli.md: written to <c>tmp/</c>, fsynced, renamed into <c>new/</c>, and <c>new/</c>
/// fsynced once per group. Names are the standard unique names
/// (<c>seconds.MmicrosecondsPpidQn.host</c>) with two fields: <c>,U=</c> (16 hex digits of a
/// SHA-256 of the state key and the UID, so a message stored but not yet recorded is recognised
/// after a crash) and <c>,S=</c> (the size on disk, as Dovecot reads it).
/// </summary>
internal sealed class Maildir
{
    /// <summary>This machine's name as unique names carry it (the last field of <see cref="Begin"/>'s names).</summary>
    internal static readonly string Host = SafeHostName();
    private readonly IFileSystem fileSystem;
    private long sequence;

    public Maildir(IFileSystem fileSystem, string root)
    {
        this.fileSystem = fileSystem;
        Root = root;
    }

    public string Root { get; }

    public string Tmp => Path.Combine(Root, "tmp");

    public string New => Path.Combine(Root, "new");

    public string Cur => Path.Combine(Root, "cur");

    /// <summary>Creates the Maildir's directories when missing.</summary>
    public void Create()
    {
        fileSystem.CreateDirectory(Tmp);
        fileSystem.CreateDirectory(New);
        fileSystem.CreateDirectory(Cur);
    }

    /// <summary>The tag a message's file name carries for <paramref name="uid"/> of the account <paramref name="key"/>.</summary>
    public static string Tag(string key, string uid) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key + "\n" + uid)))[..16];

    /// <summary>The tags of every message in <c>new/</c> and <c>cur/</c> (a mail reader moves them to cur/).</summary>
    public HashSet<string> StoredTags()
    {
        var tags = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in fileSystem.FileNames(New).Concat(fileSystem.FileNames(Cur)))
        {
            var at = name.IndexOf(",U=", StringComparison.Ordinal);
            if (at >= 0 && name.Length >= at + 3 + 16)
            {
                tags.Add(name.Substring(at + 3, 16));
            }
        }

        return tags;
    }

    /// <summary>Starts a message in <c>tmp/</c>.</summary>
    public MessageFile Begin(bool hashContent)
    {
        var now = DateTimeOffset.UtcNow;
        var micros = now.Ticks / 10 % 1_000_000;
        var unique = string.Create(
            CultureInfo.InvariantCulture,
            $"{now.ToUnixTimeSeconds()}.M{micros}P{Environment.ProcessId}Q{Interlocked.Increment(ref sequence)}.{Host}");
        var path = Path.Combine(Tmp, unique);
        return new MessageFile(fileSystem, unique, path, fileSystem.Create(path), hashContent);
    }

    /// <summary>Moves a durable message from tmp/ into new/ under its final name; returns that name.</summary>
    public string Deliver(MessageFile message, string tag)
    {
        var name = string.Create(CultureInfo.InvariantCulture, $"{message.Unique},U={tag},S={message.SizeOnDisk}");
        fileSystem.Rename(message.TmpPath, Path.Combine(New, name));
        return name;
    }

    /// <summary>Makes the renames into new/ durable: one directory fsync for a whole group.</summary>
    public void SyncNew() => fileSystem.SyncDirectory(New);

    /// <summary>Makes cur/ durable (after recognising messages a crash left unrecorded).</summary>
    public void SyncCur() => fileSystem.SyncDirectory(Cur);

    private static string SafeHostName()
    {
        // Maildir's rule: '/' and ':' in the host name become \057 and \072; ',' too (\054), since
        // the fields after the unique part are separated by commas.
        var host = Environment.MachineName;
        return string.IsNullOrEmpty(host) ? "localhost" : host.Replace("/", @"\057").Replace(":", @"\072").Replace(",", @"\054");
    }
}

/// <summary>
/// One message being written to <c>tmp/</c>: CRLF line ends become LF on the way (the Maildir
/// convention, DESIGN §12); nothing is added.
/// </summary>
internal sealed class MessageFile
{
    private const byte Cr = (byte)'\r';
    private const byte Lf = (byte)'\n';
    private readonly IFileSystem fileSystem;
    private readonly Stream stream;
    private readonly IncrementalHash? hash;
    private bool pendingCr;
    private bool closed;

    public MessageFile(IFileSystem fileSystem, string unique, string tmpPath, Stream stream, bool hashContent)
    {
        this.fileSystem = fileSystem;
        Unique = unique;
        TmpPath = tmpPath;
        this.stream = stream;
        hash = hashContent ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
    }

    public string Unique { get; }

    public string TmpPath { get; }

    public long SizeOnDisk { get; private set; }

    /// <summary>Octets as received (CRLF line ends).</summary>
    public long ReceivedOctets { get; private set; }

    /// <summary>Appends received octets, CRLF turned into LF (a CR split from its LF across two calls too).</summary>
    public ValueTask WriteAsync(ReadOnlyMemory<byte> received, CancellationToken cancellationToken)
    {
        hash?.AppendData(received.Span);
        ReceivedOctets += received.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(received.Length + 1);
        try
        {
            var length = Convert(received.Span, buffer);
            if (length > 0)
            {
                // A synchronous write: it only copies into the file's buffer or the page cache
                // (the fsync comes later, on a durability worker), and an asynchronous one would
                // hop to the thread pool and back for every 64 KiB.
                stream.Write(buffer, 0, length);
                SizeOnDisk += length;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return ValueTask.CompletedTask;
    }

    private int Convert(ReadOnlySpan<byte> input, Span<byte> output)
    {
        var written = 0;
        if (pendingCr && !input.IsEmpty)
        {
            pendingCr = false;
            if (input[0] != Lf)
            {
                output[written++] = Cr; // a lone CR is data: kept
            }
        }

        // Copies the runs between CRs whole (IndexOf is vectorised); each CR is dropped when an LF
        // follows it, kept otherwise, and decided by the next call when it ends the input.
        while (!input.IsEmpty)
        {
            var cr = input.IndexOf(Cr);
            if (cr < 0)
            {
                input.CopyTo(output[written..]);
                return written + input.Length;
            }

            input[..cr].CopyTo(output[written..]);
            written += cr;
            if (cr + 1 == input.Length)
            {
                pendingCr = true;
                return written;
            }

            if (input[cr + 1] != Lf)
            {
                output[written++] = Cr;
            }

            input = input[(cr + 1)..];
        }

        return written;
    }

    /// <summary>The content's identity when the server has no UIDL: "sha256:" and the hex digest of the octets received.</summary>
    public string ContentUid() =>
        hash is null ? throw new InvalidOperationException("the content was not hashed") : "sha256:" + System.Convert.ToHexStringLower(hash.GetCurrentHash());

    /// <summary>Writes a trailing lone CR, flushes and fsyncs the file, and closes it.</summary>
    public void CompleteDurably()
    {
        if (pendingCr)
        {
            pendingCr = false;
            stream.WriteByte(Cr);
            SizeOnDisk++;
        }

        closed = true;
        fileSystem.SyncAndClose(stream);
    }

    /// <summary>Closes (when still open) and deletes the temporary file: the message is not kept.</summary>
    public void Discard()
    {
        if (!closed)
        {
            closed = true;
            stream.Dispose();
        }

        fileSystem.Delete(TmpPath);
    }
}
