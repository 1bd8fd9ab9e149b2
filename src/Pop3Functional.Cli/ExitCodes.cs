using System.Security.Authentication;
using LanguageExt.Common;

namespace Pop3Functional.Cli;

/// <summary>The exit codes of <c>pop3</c>, one per kind of failure users meet (docs/cli.md).</summary>
internal static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>Any other failure: a server error, the server breaking the protocol.</summary>
    public const int Failure = 1;

    /// <summary>The command line is wrong (or a password was given on it), or a request was refused before it was sent.</summary>
    public const int Usage = 2;

    /// <summary>The server refused the user name, password or token.</summary>
    public const int AuthenticationFailed = 3;

    /// <summary>TLS failed: the certificate problem is named, or the server cannot do TLS.</summary>
    public const int Tls = 4;

    /// <summary>The server is busy with this mailbox: [IN-USE] or [LOGIN-DELAY] (RFC 2449, 3206).</summary>
    public const int ServerBusy = 5;

    /// <summary>No connection, the connection broke, or the server was too slow.</summary>
    public const int Connection = 6;

    /// <summary>The disk is full (nothing unrecorded was deleted; rerun when there is room).</summary>
    public const int DiskFull = 7;

    /// <summary>The Maildir (or the output file) cannot be written.</summary>
    public const int NotWritable = 8;

    /// <summary>Another <c>pop3 fetch</c> of the same account into the same Maildir is running.</summary>
    public const int MaildirBusy = 9;

    /// <summary>Stopped by Ctrl+C (what was stored is recorded).</summary>
    public const int Interrupted = 130;
}

/// <summary>A failure as the user sees it: an exit code, a kind for <c>--json</c>, a sentence.</summary>
internal sealed record CliFailure(int ExitCode, string Kind, string Message)
{
    public static CliFailure Usage(string message) => new(ExitCodes.Usage, "usage", message);

    /// <summary>Classifies a POP3 failure; <paramref name="certificateProblem"/> is what the certificate check found, if it ran and refused.</summary>
    public static CliFailure FromPop3(Error error, string? certificateProblem)
    {
        if (error.Code == Pop3ErrorCodes.Cancelled)
        {
            return new(ExitCodes.Interrupted, "interrupted", "interrupted");
        }

        if (error is not Pop3Failure failure)
        {
            return new(ExitCodes.Failure, "error", error.Message);
        }

        var command = failure.Command ?? "";
        var login = command.StartsWith("USER", StringComparison.OrdinalIgnoreCase)
            || command.StartsWith("PASS", StringComparison.OrdinalIgnoreCase)
            || command.StartsWith("APOP", StringComparison.OrdinalIgnoreCase)
            || command.StartsWith("AUTH", StringComparison.OrdinalIgnoreCase);
        return failure.Code switch
        {
            Pop3ErrorCodes.Auth => new(ExitCodes.AuthenticationFailed, "authentication", $"authentication failed: {failure.Message}"),
            Pop3ErrorCodes.InUse => new(ExitCodes.ServerBusy, "in-use", $"the mailbox is in use by another session (IN-USE): {failure.Message}"),
            Pop3ErrorCodes.LoginDelay => new(ExitCodes.ServerBusy, "login-delay", $"logging in again so soon is refused (LOGIN-DELAY): {failure.Message}"),
            Pop3ErrorCodes.TlsUnavailable or Pop3ErrorCodes.TlsRequired =>
                new(ExitCodes.Tls, "tls", $"TLS failed: {failure.Message}"),
            Pop3ErrorCodes.TimedOut => new(ExitCodes.Connection, "timeout", failure.Message),
            _ when failure.Kind == Pop3ErrorKind.Server && login =>
                new(ExitCodes.AuthenticationFailed, "authentication", $"authentication failed: {failure.Message}"),
            _ when failure.Kind == Pop3ErrorKind.Transport && (certificateProblem is not null || IsTls(failure)) =>
                new(ExitCodes.Tls, "tls", certificateProblem is null
                    ? $"TLS failed: {failure.Message}"
                    : $"TLS failed: {certificateProblem}"),
            _ when failure.Kind == Pop3ErrorKind.Transport => new(ExitCodes.Connection, "connection", failure.Message),
            _ when failure.Kind == Pop3ErrorKind.Usage => new(ExitCodes.Usage, "usage", failure.Message),
            _ => new(ExitCodes.Failure, failure.Kind == Pop3ErrorKind.Server ? "server" : "protocol", failure.Message),
        };
    }

    private static bool IsTls(Pop3Failure failure) =>
        failure.Underlying.Match(e => e is AuthenticationException || e.InnerException is AuthenticationException, () => false);

    /// <summary>Classifies a local failure (the Maildir, an output file); null when it is none of those.</summary>
    public static CliFailure? FromLocal(Exception exception, string what) => exception switch
    {
        MaildirBusyException busy => new(ExitCodes.MaildirBusy, "maildir-busy", busy.Message),
        IOException io when IsDiskFull(io) =>
            new(ExitCodes.DiskFull, "disk-full", $"the disk is full writing {what}: {io.Message} (nothing unrecorded was deleted; rerun when there is room)"),
        UnauthorizedAccessException or IOException { HResult: 30 } or DirectoryNotFoundException =>
            new(ExitCodes.NotWritable, "not-writable", $"{what} cannot be written: {exception.Message}"),
        InvalidDataException => new(ExitCodes.Failure, "state", exception.Message),
        IOException io => new(ExitCodes.Failure, "io", $"writing {what} failed: {io.Message}"),
        _ => null,
    };

    // ENOSPC (28) and EDQUOT (122) as .NET's Unix IOExceptions carry them; ERROR_DISK_FULL (112)
    // and ERROR_HANDLE_DISK_FULL (39) in a Windows HRESULT.
    private static bool IsDiskFull(IOException io) =>
        io.HResult is 28 or 122 || (io.HResult & 0xFFFF) is 112 or 39 && (io.HResult >>> 16) == 0x8007;
}
