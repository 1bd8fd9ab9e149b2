using LanguageExt;
using LanguageExt.Common;
using Pop3Functional.Core;

namespace Pop3Functional;

/// <summary>
/// The LanguageExt <see cref="Error"/> of every façade failure: a stable <see cref="Error.Code"/>
/// from <see cref="Pop3ErrorCodes"/>, a message a person can act on (never a secret), and the
/// details behind it. Match on <see cref="Error.Code"/> (or <see cref="Kind"/>); reach the core's
/// original error through <see cref="Cause"/>.
/// </summary>
public sealed record Pop3Failure : Expected
{
    internal Pop3Failure(
        int code, string message, Pop3ErrorKind kind, Option<Pop3Error> cause, Option<ResponseCode> responseCode, string command, Option<string> endpoint, Option<Exception> underlying)
        : base(message, code, default)
    {
        Kind = kind;
        Cause = cause;
        ResponseCode = responseCode;
        Command = command;
        Endpoint = endpoint;
        Underlying = underlying;
    }

    /// <summary>Which of the kinds this failure is.</summary>
    public Pop3ErrorKind Kind { get; }

    /// <summary>The core's error (usage, server, protocol or transport), when one caused this failure.</summary>
    public Option<Pop3Error> Cause { get; }

    /// <summary>The response code of a -ERR reply (RFC 2449 §8, RFC 3206), when the server sent one.</summary>
    public Option<ResponseCode> ResponseCode { get; }

    /// <summary>The command the failure belongs to ("RETR", "PASS"), or "" when none.</summary>
    public string Command { get; }

    /// <summary>The server's endpoint ("host:port"), for transport failures.</summary>
    public Option<string> Endpoint { get; }

    /// <summary>The exception behind a transport failure or a timeout, for diagnostics only.</summary>
    public Option<Exception> Underlying { get; }

    /// <summary>The message, so the failure prints as a sentence a person can act on.</summary>
    public override string ToString() => Message;
}
