using System.Runtime.InteropServices;

namespace Pop3Functional.Cli;

/// <summary>
/// The few file-system operations the Maildir writer and the UID state store make, and nothing
/// else: the seam through which the tests record their order (DESIGN §12, crash safety) and make
/// them fail (a full disk).
/// </summary>
internal interface IFileSystem
{
    /// <summary>Creates the directory and its parents when missing.</summary>
    void CreateDirectory(string path);

    /// <summary>Creates (or truncates) a file for writing.</summary>
    Stream Create(string path);

    /// <summary>Flushes a stream made by <see cref="Create"/> to the disk (fsync) and closes it.</summary>
    void SyncAndClose(Stream file);

    /// <summary>Renames a file atomically within one file system, replacing the destination.</summary>
    void Rename(string source, string destination);

    /// <summary>Makes a directory's entries (renames into it) durable (fsync of the directory).</summary>
    void SyncDirectory(string path);

    /// <summary>Deletes a file; a missing one is not an error.</summary>
    void Delete(string path);

    /// <summary>The names (not paths) of the files in a directory; none when it does not exist.</summary>
    IEnumerable<string> FileNames(string directory);

    /// <summary>The text of a file, or null when it does not exist.</summary>
    string? ReadText(string path);
}

/// <summary>The real file system.</summary>
internal sealed class PhysicalFileSystem : IFileSystem
{
    public static readonly PhysicalFileSystem Instance = new();

    public void CreateDirectory(string path) => Directory.CreateDirectory(path);

    public Stream Create(string path) =>
        new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 64 * 1024, FileOptions.None);

    public void SyncAndClose(Stream file)
    {
        using (file)
        {
            // Flush(true) is fsync(2) on Unix and FlushFileBuffers on Windows.
            if (file is FileStream stream)
            {
                stream.Flush(flushToDisk: true);
            }
            else
            {
                file.Flush();
            }
        }
    }

    public void Rename(string source, string destination) => File.Move(source, destination, overwrite: true);

    public void SyncDirectory(string path)
    {
        // A rename is durable only once the directory holding the new name is fsynced (rename(2)
        // and fsync(2) on Linux; ext4 and xfs otherwise may lose the entry at a power cut, leaving
        // the file in neither directory). .NET has no API for it, and only Linux is known to need
        // and allow it this way (Windows cannot open a directory for flushing; macOS would need
        // F_FULLFSYNC), so elsewhere this is a documented no-op (docs/cli.md).
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var fd = LinuxFileCalls.open(path, LinuxFileCalls.ReadOnly);
        if (fd < 0)
        {
            throw LinuxFileCalls.Failure("open", path, Marshal.GetLastPInvokeError());
        }

        try
        {
            if (LinuxFileCalls.fsync(fd) != 0)
            {
                throw LinuxFileCalls.Failure("fsync", path, Marshal.GetLastPInvokeError());
            }
        }
        finally
        {
            _ = LinuxFileCalls.close(fd);
        }
    }

    public void Delete(string path) => File.Delete(path);

    public IEnumerable<string> FileNames(string directory) =>
        Directory.Exists(directory)
            ? Directory.EnumerateFiles(directory).Select(p => Path.GetFileName(p))
            : [];

    public string? ReadText(string path) => File.Exists(path) ? File.ReadAllText(path) : null;

    private static class LinuxFileCalls
    {
        // O_RDONLY: opening a directory read-only is allowed and enough for fsync(2).
        public const int ReadOnly = 0;

        [DllImport("libc", SetLastError = true)]
        public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", SetLastError = true)]
        public static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true)]
        public static extern int close(int fd);

        public static IOException Failure(string call, string path, int errno) =>
            // The errno as HResult, as .NET's own Unix IOExceptions carry it (ENOSPC is 28).
            new($"{call} of the directory {path} failed (errno {errno}: {Marshal.GetPInvokeErrorMessage(errno)})", errno);
    }
}
