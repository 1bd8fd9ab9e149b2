namespace Pop3Functional.Core

open System

/// Something that happens to a session: bytes from the server, a request from the caller, or a
/// report from the shell.
[<RequireQualifiedAccess>]
type Input =
    /// Bytes from the server, in any chunking. Valid only during this step: body events point into it.
    | Received of ReadOnlyMemory<byte>
    /// The server closed the connection.
    | EndOfStream
    /// A caller request with the caller's id (1 or above).
    | Submit of RequestId * Request
    /// The caller's answer to the latest SaslChallenge (RFC 5034 §4).
    | SaslRespond of Secret
    /// The caller cancels the SASL exchange: "*" is sent, the server answers -ERR (RFC 5034 §4).
    | SaslCancel
    /// The TLS handshake the core asked for (StartTls) is complete; optional channel-binding data.
    | TlsEstablished of channelBinding: ChannelBinding option
    /// Writing to the connection failed.
    | WriteFailed of TransportError

/// What the caller learns once the session may log in.
type AuthorizationReady =
    {
        /// The server's greeting.
        Greeting: Greeting
        /// The capabilities in force now (after STLS, the ones advertised over TLS).
        Capabilities: Capabilities
        /// False when the server answered CAPA -ERR (an RFC 1939-only server).
        CapaSupported: bool
        /// True when TLS protects the connection; without it, passwords need AllowPlaintextCredentials.
        TlsActive: bool
        /// True when APOP can be used (the greeting had a strict timestamp, not discarded by STLS).
        ApopAvailable: bool
    }

/// What the session reports. Every request gets exactly one final event: Answered (for RETR and
/// TOP: Answered, BodyData..., BodyEnded), Rejected, Refused or Aborted.
[<RequireQualifiedAccess>]
type Event =
    /// The server's +OK greeting (RFC 1939 §4); a -ERR greeting is a Failed event instead.
    | GreetingReceived of Greeting
    /// Every CAPA answer, the core's own included.
    | CapabilitiesReceived of Capabilities
    /// Negotiation is over (greeting, CAPA, STLS and CAPA again when required): log in now.
    | AuthorizationReady of AuthorizationReady
    /// The server answered +OK; the reply carries the parsed payload. For RETR and TOP the body follows.
    | Answered of RequestId * Reply
    /// A slice of the message body, dot-unstuffed, pointing into the bytes of the current Received.
    | BodyData of RequestId * ReadOnlyMemory<byte>
    /// The body is complete; octets delivered (after unstuffing).
    | BodyEnded of RequestId * octets: uint64
    /// A RETR delivered another number of octets than LIST announced for the message in this
    /// session; informational, just before BodyEnded. Servers do this (Courier rewrites raw 8-bit
    /// headers, Exchange lists compressed sizes: DESIGN §9, peers.md §4.9): never size anything
    /// from LIST alone.
    | SizeMismatch of RequestId * message: uint64 * listed: uint64 * delivered: uint64
    /// A decoded SASL challenge; answer with SaslRespond or SaslCancel.
    | SaslChallenge of RequestId * byte[]
    /// The server answered -ERR.
    | Rejected of RequestId * ServerError
    /// Refused before any byte was sent; the session is unchanged. RequestId 0 for input misuse.
    | Refused of RequestId * UsageError
    /// The request cannot complete: the session failed (and says why).
    | Aborted of RequestId * Pop3Error
    /// The server needed this enabled quirk; reported the first time in a session only.
    | QuirkTolerated of Quirk
    /// The session failed; sticky.
    | Failed of Pop3Error

/// What the shell must do, in order.
[<RequireQualifiedAccess>]
type Output =
    /// Write this command line to the connection; log its LogText, never its Bytes.
    | Send of EncodedCommand
    /// Handshake TLS now; feed nothing until TlsEstablished.
    | StartTls
    /// Report this event to the caller.
    | Emit of Event
    /// Close the connection.
    | Close
