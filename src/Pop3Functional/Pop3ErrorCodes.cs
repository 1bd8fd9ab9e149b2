using LanguageExt.Common;

namespace Pop3Functional;

/// <summary>
/// The stable error codes of every <see cref="Pop3Failure"/>: one per error kind, one per sub-kind
/// and one per RFC 2449/3206 response code. Match on these, never on messages (their wording may
/// change). A code divided by 1,000 and multiplied back gives its kind (<see cref="KindOf"/>).
/// <see cref="Cancelled"/> and <see cref="TimedOut"/> are LanguageExt's own codes, so
/// <c>error.Is(Errors.Cancelled)</c> and <c>error.Is(Errors.TimedOut)</c> work as well.
/// </summary>
public static class Pop3ErrorCodes
{
    /// <summary>A usage error of no more specific kind: the caller asked for something illegal; nothing was sent.</summary>
    public const int Usage = 1000;

    /// <summary>The command is not allowed in the session's current state.</summary>
    public const int WrongState = 1001;

    /// <summary>An argument holds CR, LF, NUL, a space where none may be, or is empty; or an option is out of range (a zero timeout).</summary>
    public const int InvalidArgument = 1002;

    /// <summary>The command line would exceed 255 octets (RFC 2449 §4).</summary>
    public const int CommandTooLong = 1003;

    /// <summary>The message number is 0 or above the count fixed at login.</summary>
    public const int NoSuchMessage = 1004;

    /// <summary>The message was marked deleted in this session.</summary>
    public const int MessageDeleted = 1005;

    /// <summary>TLS is required and not established, so nothing secret was sent.</summary>
    public const int TlsRequired = 1006;

    /// <summary>A credential would cross a plaintext connection without <c>AllowPlaintextCredentials()</c>.</summary>
    public const int PlaintextCredentials = 1007;

    /// <summary>APOP was asked for but the greeting had no valid timestamp (or STLS discarded it).</summary>
    public const int ApopUnavailable = 1008;

    /// <summary>The server did not advertise a capability the command needs.</summary>
    public const int CapabilityMissing = 1009;

    /// <summary>An internal request id was refused (a bug: please report it).</summary>
    public const int InvalidRequestId = 1010;

    /// <summary>A SASL continuation was sent with no exchange waiting for it.</summary>
    public const int NoSaslExchange = 1011;

    /// <summary>An input arrived that the session cannot take now.</summary>
    public const int UnexpectedInput = 1012;

    /// <summary>A secret could not be read (an unset or empty environment variable, an unreadable file, a failing callback).</summary>
    public const int SecretUnavailable = 1013;

    /// <summary>The server answered -ERR with no response code.</summary>
    public const int Server = 2000;

    /// <summary>-ERR [IN-USE]: the maildrop is locked by another session (RFC 2449 §8.1.1); try again later.</summary>
    public const int InUse = 2001;

    /// <summary>-ERR [LOGIN-DELAY]: logged in too soon after the previous session (RFC 2449 §8.1.2).</summary>
    public const int LoginDelay = 2002;

    /// <summary>-ERR [SYS/TEMP]: a temporary failure on the server; retry later (RFC 3206 §4).</summary>
    public const int SysTemp = 2003;

    /// <summary>-ERR [SYS/PERM]: a permanent failure on the server; retrying will not help (RFC 3206 §4).</summary>
    public const int SysPerm = 2004;

    /// <summary>-ERR [AUTH]: the credentials were wrong (RFC 3206 §5).</summary>
    public const int Auth = 2005;

    /// <summary>-ERR [UTF8]: the request needs UTF-8 mode (RFC 6856 §2).</summary>
    public const int Utf8Required = 2006;

    /// <summary>-ERR with a response code this version does not know (kept verbatim in <see cref="Pop3Failure.ResponseCode"/>).</summary>
    public const int OtherResponseCode = 2099;

    /// <summary>A protocol error of no more specific kind: the server broke the protocol; the session failed.</summary>
    public const int Protocol = 3000;

    /// <summary>The greeting was neither +OK nor -ERR.</summary>
    public const int BadGreeting = 3001;

    /// <summary>A reply did not start with +OK or -ERR.</summary>
    public const int BadStatusLine = 3002;

    /// <summary>A line exceeded the line limit.</summary>
    public const int LineTooLong = 3003;

    /// <summary>A status or listing line held a NUL byte.</summary>
    public const int NulInLine = 3004;

    /// <summary>A number was not digits, or did not fit in 64 bits.</summary>
    public const int BadNumber = 3005;

    /// <summary>A LIST, UIDL or LANG listing was malformed.</summary>
    public const int BadListing = 3006;

    /// <summary>A listing exceeded its entry or line limit.</summary>
    public const int ListingTooLong = 3007;

    /// <summary>A message number was 0, above the STAT count, or not the one asked for.</summary>
    public const int WrongMessageNumber = 3008;

    /// <summary>A listing named the same message twice.</summary>
    public const int DuplicateMessageNumber = 3009;

    /// <summary>A UID broke RFC 1939 §7.</summary>
    public const int BadUid = 3010;

    /// <summary>The server sent bytes while no command was outstanding.</summary>
    public const int UnsolicitedData = 3011;

    /// <summary>Bytes arrived after +OK to STLS and before the handshake (response injection).</summary>
    public const int ResponseInjection = 3012;

    /// <summary>The server closed the connection while a reply was awaited (a truncated body says how many octets arrived).</summary>
    public const int ConnectionClosed = 3013;

    /// <summary>A SASL challenge was not base64.</summary>
    public const int BadSaslChallenge = 3014;

    /// <summary>A SASL challenge or the number of rounds exceeded its limit.</summary>
    public const int SaslLimitExceeded = 3015;

    /// <summary>A body exceeded the configured maximum message size.</summary>
    public const int MessageTooLarge = 3016;

    /// <summary>TLS is required and the server did not offer or accept STLS; nothing secret was sent.</summary>
    public const int TlsUnavailable = 3017;

    /// <summary>STAT after login failed, so no mailbox snapshot exists.</summary>
    public const int SnapshotUnavailable = 3018;

    /// <summary>The connection failed: DNS, connect, TLS handshake or certificate, reset, a failing sink.</summary>
    public const int Transport = 4000;

    /// <summary>The caller's <see cref="CancellationToken"/> fired; the connection was closed. LanguageExt's <c>Errors.CancelledCode</c>.</summary>
    public const int Cancelled = Errors.CancelledCode;

    /// <summary>A time limit ran out (connect, reply, low-speed rule, deadline); the connection was closed. LanguageExt's <c>Errors.TimedOutCode</c>.</summary>
    public const int TimedOut = Errors.TimedOutCode;

    /// <summary>The kind a code belongs to: <see cref="Usage"/>, <see cref="Server"/>, <see cref="Protocol"/> or <see cref="Transport"/>; <see cref="Cancelled"/> and <see cref="TimedOut"/> are their own kinds.</summary>
    public static int KindOf(int code) => code is Cancelled or TimedOut ? code : code / 1000 * 1000;

}
