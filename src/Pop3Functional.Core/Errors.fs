namespace Pop3Functional.Core

open System

/// What kind of caller mistake a UsageError reports.
[<RequireQualifiedAccess>]
type UsageErrorKind =
    /// The command is not allowed in the session's current state (RFC 1939 §3–§6, RFC 2595 §4).
    | WrongState
    /// An argument holds CR, LF, NUL, a space where none may be, or is empty.
    | InvalidArgument
    /// The command line would exceed the command-length limit (RFC 2449 §4: 255 octets).
    | CommandTooLong
    /// The message number is 0 or above the mailbox snapshot's count.
    | NoSuchMessage
    /// The message was marked deleted in this session (RFC 1939 §5 DELE).
    | MessageDeleted
    /// TLS is required and not established, so nothing secret may be sent.
    | TlsRequired
    /// A credential would cross a plaintext connection without the caller's explicit opt-in.
    | PlaintextCredentials
    /// APOP was asked for but the greeting carried no valid timestamp (or it was discarded at STLS).
    | ApopUnavailable
    /// The server did not advertise a capability the command needs.
    | CapabilityMissing
    /// The request id is below 1 or already in use.
    | InvalidRequestId
    /// A SASL continuation was sent with no exchange waiting for it.
    | NoSaslExchange
    /// An input arrived that the session cannot take now (for example TLS established unasked).
    | UnexpectedInput

/// The caller asked for something illegal. Refused before any byte is sent; the session is unchanged.
type UsageError =
    {
        /// Which mistake it was; match on it rather than on Message, whose wording may change.
        Kind: UsageErrorKind
        /// The command keyword the request would have sent ("RETR"), or "" when none.
        Command: string
        /// A sentence a person can act on.
        Message: string
    }

    /// The Message, so the error prints as a sentence a person can act on.
    override this.ToString() = this.Message

/// What kind of protocol violation a ProtocolError reports.
[<RequireQualifiedAccess>]
type ProtocolErrorKind =
    /// The greeting was neither +OK nor -ERR (RFC 1939 §4).
    | BadGreeting
    /// A reply did not start with +OK or -ERR (or needed a quirk that is not enabled).
    | BadStatusLine
    /// A line exceeded Limits.MaxLineOctets (CVE-2013-1752).
    | LineTooLong
    /// A status or listing line held a NUL byte.
    | NulInLine
    /// A number was not 1*DIGIT, or did not fit in 64 bits.
    | BadNumber
    /// A LIST/UIDL/LANG line or listing was malformed.
    | BadListing
    /// A listing exceeded its entry or line limit.
    | ListingTooLong
    /// A message number was 0, above the STAT count, or not the one asked for.
    | WrongMessageNumber
    /// A listing named the same message twice.
    | DuplicateMessageNumber
    /// A UID broke RFC 1939 §7, or UIDs were duplicated without the quirk enabled.
    | BadUid
    /// The server sent bytes while no command was outstanding.
    | UnsolicitedData
    /// Bytes arrived after +OK to STLS and before the handshake (CVE-2021-22947).
    | ResponseInjection
    /// The server closed the connection while a reply was awaited.
    | ConnectionClosed
    /// A SASL challenge was not base64 (RFC 5034 §4), or the mechanism the core runs rejected it
    /// (a SCRAM server signature wrong or missing, a nonce not ours, an e= error: RFC 5802 §5).
    | BadSaslChallenge
    /// A SASL challenge or the number of rounds exceeded its limit.
    | SaslLimitExceeded
    /// A body exceeded Limits.MaxMessageOctets.
    | MessageTooLarge
    /// TLS is required and the server did not offer or accept STLS.
    | TlsUnavailable
    /// STAT after login failed, so no mailbox snapshot exists.
    | SnapshotUnavailable

/// The server broke the protocol. The session moves to a sticky Failed state.
type ProtocolError =
    {
        /// Which violation it was; match on it rather than on Message, whose wording may change.
        Kind: ProtocolErrorKind
        /// The command whose reply broke the protocol ("LIST"), or "" for the greeting or unsolicited data.
        Command: string
        /// A sentence a person can act on; server text in it has its control characters escaped.
        Message: string
    }

    /// The Message, so the error prints as a sentence a person can act on.
    override this.ToString() = this.Message

/// The server answered -ERR. A normal value: the session goes on where the protocol allows.
type ServerError =
    {
        /// The command that was refused ("PASS"), or "" for the greeting.
        Command: string
        /// The response code in brackets, when the server sent one (RFC 2449 §8, RFC 3206).
        Code: ResponseCode option
        /// The server's text after the code, exactly as sent (decoded as Latin-1, or UTF-8 in UTF8 mode).
        /// After AUTH whose mechanism got an error challenge (XOAUTH2, OAUTHBEARER: a JSON status,
        /// RFC 7628 §3.2.2), that error follows in parentheses.
        Text: string
    }

    /// A sentence for people: the command, the code and the server's text with controls escaped.
    member this.Message =
        let code =
            match this.Code with
            | Some c -> string c + " "
            | None -> ""

        let what = if this.Command = "" then "the greeting" else this.Command
        $"the server refused {what}: {code}{Bytes.escapeControls this.Text}".TrimEnd()

    /// The Message, so the error prints as a sentence a person can act on.
    override this.ToString() = this.Message

/// A transport failure reported by the shell (connect, DNS, TLS, timeout, reset), kept as data.
type TransportError =
    {
        /// What was being done ("connect", "TLS handshake", "read", "write").
        Operation: string
        /// The remote endpoint, or "" when unknown.
        Endpoint: string
        /// A sentence a person can act on, as the shell wrote it (usually the exception's message).
        Message: string
        /// The underlying exception, for diagnostics only. A time limit (connect timeout, reply
        /// timeout, low-speed rule, operation deadline) is always a TimeoutException.
        Exception: exn option
    }

    /// True when a time limit ended the operation (the shell's timeouts carry a TimeoutException).
    member this.IsTimeout =
        match this.Exception with
        | Some(:? TimeoutException) -> true
        | _ -> false

    /// The Message, so the error prints as a sentence a person can act on.
    override this.ToString() = this.Message

/// Every error a Pop3Functional user can meet: four kinds, never conflated (DESIGN §4).
[<RequireQualifiedAccess>]
type Pop3Error =
    /// The caller asked for something illegal; nothing was sent.
    | Usage of UsageError
    /// The server answered -ERR.
    | Server of ServerError
    /// The server broke the protocol; the session failed.
    | Protocol of ProtocolError
    /// The connection failed (reported by the shell).
    | Transport of TransportError

    /// A sentence a person can act on; never contains a secret.
    member this.Message =
        match this with
        | Usage e -> e.Message
        | Server e -> e.Message
        | Protocol e -> e.Message
        | Transport e -> e.Message

    /// The Message, so the error prints as a sentence a person can act on.
    override this.ToString() = this.Message

[<RequireQualifiedAccess>]
module internal Err =
    let usage kind command message : UsageError =
        {
            Kind = kind
            Command = command
            Message = message
        }

    let protocol kind command message : ProtocolError =
        {
            Kind = kind
            Command = command
            Message = message
        }

    /// Quotes server bytes for an error message: control characters escaped, long text cut.
    let quote (s: string) =
        let s = if s.Length > 120 then s.Substring(0, 120) + "…" else s
        "\"" + Bytes.escapeControls s + "\""

    let n (x: uint64) =
        x.ToString("N0", Globalization.CultureInfo.InvariantCulture)
