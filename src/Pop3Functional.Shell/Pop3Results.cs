using Pop3Functional.Core;

namespace Pop3Functional.Shell;

/// <summary>What a server said before login: its greeting and capabilities (RFC 1939 §4, RFC 2449 §5).</summary>
/// <param name="Text">The greeting text after +OK.</param>
/// <param name="ApopAvailable">The greeting carried a strict APOP timestamp (and STLS did not discard it).</param>
/// <param name="CapaSupported">False when the server answered CAPA with -ERR (an RFC 1939-only server).</param>
/// <param name="Capabilities">The capabilities in force (after STLS, those advertised over TLS).</param>
/// <param name="TlsActive">TLS protects the connection.</param>
public sealed record Pop3Greeting(string Text, bool ApopAvailable, bool CapaSupported, Pop3Capabilities Capabilities, bool TlsActive);

/// <summary>The answer to STAT, or the maildrop at login (RFC 1939 §5).</summary>
/// <param name="Count">Messages in the maildrop.</param>
/// <param name="Octets">Their total size in octets.</param>
public readonly record struct Pop3Stat(ulong Count, ulong Octets);

/// <summary>One retrieved message or TOP result, its octets already in the caller's sink.</summary>
/// <param name="Message">The message number.</param>
/// <param name="Octets">Octets delivered (dot-unstuffed, CRLF line ends as sent).</param>
/// <param name="ListedOctets">The size LIST announced in this session when it differs (a server quirk, DESIGN §9); null otherwise.</param>
public sealed record Pop3Retrieval(ulong Message, ulong Octets, ulong? ListedOctets);

/// <summary>What QUIT achieved (RFC 1939 §6).</summary>
/// <param name="Text">The server's text.</param>
/// <param name="UpdateCompleted">The server entered UPDATE: the deletions it confirmed are committed.</param>
/// <param name="DeletionsCommitted">The messages whose deletion took effect.</param>
public sealed record Pop3QuitResult(string Text, bool UpdateCompleted, IReadOnlyList<ulong> DeletionsCommitted);

/// <summary>Progress of a retrieval: octets of a message so far, and when it is complete.</summary>
/// <param name="Message">The message number.</param>
/// <param name="OctetsReceived">Octets delivered so far (dot-unstuffed).</param>
/// <param name="Completed">The message is complete (its terminator arrived).</param>
public readonly record struct Pop3Progress(ulong Message, ulong OctetsReceived, bool Completed);

/// <summary>The answer to an extension command (RFC 2449 §8).</summary>
/// <param name="Text">The status text after +OK.</param>
/// <param name="Lines">The lines of a multi-line reply, dot-unstuffed; empty for a single-line one.</param>
public sealed record Pop3ExtensionReply(string Text, IReadOnlyList<string> Lines);
