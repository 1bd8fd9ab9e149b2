using LanguageExt;

namespace Pop3Functional;

/// <summary>The maildrop as STAT reports it, or as fixed at login (RFC 1939 §5).</summary>
/// <param name="Count">Messages in the maildrop.</param>
/// <param name="Octets">Their total size in octets.</param>
public sealed record MaildropStat(ulong Count, ulong Octets);

/// <summary>What the server advertises (RFC 2449 §5, RFC 2595, RFC 6856).</summary>
/// <param name="Top">TOP is supported.</param>
/// <param name="User">USER/PASS login is supported.</param>
/// <param name="SaslMechanisms">The SASL mechanisms offered for AUTH.</param>
/// <param name="RespCodes">Response codes in brackets may be sent.</param>
/// <param name="AuthRespCode">A login refused for bad credentials carries [AUTH].</param>
/// <param name="Pipelining">The server accepts pipelined commands (the session uses it unless told not to).</param>
/// <param name="Uidl">UIDL is supported.</param>
/// <param name="Stls">STLS is offered.</param>
/// <param name="Lang">LANG is supported.</param>
/// <param name="Utf8">UTF8 is offered.</param>
/// <param name="Utf8User">UTF-8 user names and passwords are accepted.</param>
/// <param name="Implementation">The IMPLEMENTATION text, when sent.</param>
/// <param name="LoginDelaySeconds">The LOGIN-DELAY seconds, when sent.</param>
/// <param name="LoginDelayPerUser">LOGIN-DELAY may differ per user.</param>
/// <param name="ExpireNever">EXPIRE NEVER was sent.</param>
/// <param name="ExpireDays">The EXPIRE days, when sent (none for NEVER).</param>
/// <param name="ExpirePerUser">EXPIRE may differ per user.</param>
/// <param name="Other">Capabilities this version does not know, as sent.</param>
/// <param name="Lines">Every capability line as received.</param>
public sealed record ServerCapabilities(
    bool Top,
    bool User,
    Seq<string> SaslMechanisms,
    bool RespCodes,
    bool AuthRespCode,
    bool Pipelining,
    bool Uidl,
    bool Stls,
    bool Lang,
    bool Utf8,
    bool Utf8User,
    Option<string> Implementation,
    Option<ulong> LoginDelaySeconds,
    bool LoginDelayPerUser,
    bool ExpireNever,
    Option<ulong> ExpireDays,
    bool ExpirePerUser,
    Seq<string> Other,
    Seq<string> Lines);

/// <summary>What the server said before login (poplib's <c>getwelcome</c>, and more).</summary>
/// <param name="Text">The greeting text after +OK.</param>
/// <param name="ApopAvailable">The greeting carried a strict APOP timestamp (and STLS did not discard it).</param>
/// <param name="CapaSupported">False when the server answered CAPA with -ERR (an RFC 1939-only server).</param>
/// <param name="Capabilities">The capabilities in force (after STLS, those advertised over TLS).</param>
/// <param name="TlsActive">TLS protects the connection.</param>
public sealed record ServerGreeting(string Text, bool ApopAvailable, bool CapaSupported, ServerCapabilities Capabilities, bool TlsActive);

/// <summary>One retrieved message or TOP result, its octets already delivered to the caller.</summary>
/// <param name="Message">The message number.</param>
/// <param name="Octets">Octets delivered (dot-unstuffed, CRLF line ends as sent).</param>
/// <param name="ListedOctets">The size LIST announced when it differs from what arrived (a server quirk, DESIGN §9).</param>
public sealed record Retrieval(ulong Message, ulong Octets, Option<ulong> ListedOctets);

/// <summary>One message of <see cref="Pop3Session.RetrieveAllAsync"/>, whole in memory.</summary>
/// <param name="Message">The message number.</param>
/// <param name="Octets">The message (dot-unstuffed, CRLF line ends as sent).</param>
public sealed record RetrievedMessage(ulong Message, byte[] Octets);

/// <summary>What QUIT achieved (RFC 1939 §6).</summary>
/// <param name="Text">The server's text.</param>
/// <param name="UpdateCompleted">The server entered UPDATE: the deletions it confirmed are committed.</param>
/// <param name="DeletionsCommitted">The messages whose deletion took effect.</param>
public sealed record QuitResult(string Text, bool UpdateCompleted, Seq<ulong> DeletionsCommitted);

/// <summary>The answer to an extension command (RFC 2449 §8).</summary>
/// <param name="Text">The status text after +OK.</param>
/// <param name="Lines">The lines of a multi-line reply, dot-unstuffed; empty for a single-line one.</param>
public sealed record ExtensionReply(string Text, Seq<string> Lines);
