using LanguageExt;
using LanguageExt.Common;

namespace Pop3Functional;

/// <summary>
/// The façade's error catalogue: the failures it makes itself. Every failure from the core or the
/// shell is a <see cref="Pop3Failure"/> too, with a code from <see cref="Pop3ErrorCodes"/>.
/// Compare with <c>error.Is(Pop3Errors.Cancelled)</c>, or match on <see cref="Error.Code"/>.
/// </summary>
public static class Pop3Errors
{
    /// <summary>The caller's token fired: the operation stopped and the connection was closed (code <see cref="Pop3ErrorCodes.Cancelled"/>).</summary>
    public static readonly Pop3Failure Cancelled = Make(
        Pop3ErrorCodes.Cancelled, Pop3ErrorKind.Cancelled, "The operation was cancelled by the caller; the connection was closed.");

    /// <summary>A time limit ran out (code <see cref="Pop3ErrorCodes.TimedOut"/>); the failures the shell reports carry a message saying which limit.</summary>
    public static readonly Pop3Failure TimedOut = Make(
        Pop3ErrorCodes.TimedOut, Pop3ErrorKind.TimedOut, "The operation did not complete within its time limit; the connection was closed.");

    /// <summary>A usage failure of the façade's own: an option out of range, a missing credential; nothing was sent.</summary>
    public static Pop3Failure Usage(int code, string message) => Make(code, Pop3ErrorKind.Usage, message);

    /// <summary>A secret that could not be read (code <see cref="Pop3ErrorCodes.SecretUnavailable"/>).</summary>
    public static Pop3Failure SecretUnavailable(string message, Exception? exception = null) =>
        new(Pop3ErrorCodes.SecretUnavailable, message, Pop3ErrorKind.Usage, default, default, "", default, Prelude.Optional(exception));

    private static Pop3Failure Make(int code, Pop3ErrorKind kind, string message) =>
        new(code, message, kind, default, default, "", default, default);
}
