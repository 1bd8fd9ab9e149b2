namespace Pop3Functional.Simulator

open System

/// Per-connection settings of the server machine. All inputs: the same settings and the same
/// command bytes give the same replies.
type ServerSettings =
    {
        /// How the server behaves.
        Personality: Personality
        /// Deliberate misbehaviour.
        Faults: FaultPlan
        /// The host name in the APOP timestamp and the CRAM-MD5 challenge.
        Hostname: string
        /// TLS protects the connection from the start (implicit TLS, RFC 8314).
        TlsActive: bool
        /// The host can run a TLS handshake, so STLS is offered (RFC 2595 §4).
        StlsAvailable: bool
        /// Seeds the session's randomness (APOP timestamp, SASL nonces and salts).
        Seed: uint64
        /// The time the connection started (the APOP timestamp's clock part).
        StartTime: DateTimeOffset
        /// Refuse USER/PASS, PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER before TLS (Dovecot's
        /// disable_plaintext_auth).
        RequireTlsForPlaintextAuth: bool
        /// The longest command line accepted, CRLF included (RFC 2449 §4: 255 octets).
        MaxCommandOctets: int
        /// The longest SASL response line accepted (RFC 5034 §4 sets no limit; we must).
        MaxSaslResponseOctets: int
        /// PBKDF2 iterations for SCRAM (RFC 5802 §5.1; RFC 7677 recommends at least 4096).
        ScramIterations: int
        /// The password of an account (None: no such account).
        LookupPassword: string -> string option
        /// The OAuth 2.0 bearer tokens an account accepts (XOAUTH2, OAUTHBEARER; empty: none).
        LookupTokens: string -> string list
        /// With implicit TLS (TlsActive): the tls-server-end-point channel-binding data of the
        /// server's certificate (RFC 5929 §4.1), for SCRAM-*-PLUS; None offers no -PLUS mechanism.
        /// After STLS the data comes with TlsEstablished.
        ChannelBinding: byte[] option
    }

/// How a RETR/TOP body deviates from the stored message, by a fault plan.
[<RequireQualifiedAccess>]
type BodyAlteration =
    /// The stored octets, dot-stuffed, then ".CRLF".
    | Unchanged
    /// This many octets more than LIST announced.
    | Longer of int
    /// This many octets fewer than LIST announced.
    | Shorter of int
    /// Lines forever; no terminator.
    | Endless
    /// Close the connection after this many body octets.
    | DisconnectAfter of int64
    /// The whole body, no terminator, then close.
    | NoTerminatorThenClose

/// A message body to send: the transmitter dot-stuffs it (RFC 1939 §3) while streaming it.
type BodyTransfer =
    {
        /// The message number the client asked for.
        Message: int
        /// The octets to serve.
        Content: MessageContent
        /// For TOP: the header, the blank line and this many body lines (RFC 1939 §7).
        TopLines: int64 option
        /// A fault plan's change.
        Alteration: BodyAlteration
    }

/// What the server machine consumes.
[<RequireQualifiedAccess>]
type ServerInput =
    /// Command bytes from the client, in any chunking.
    | Received of ReadOnlyMemory<byte>
    /// The client closed the connection.
    | EndOfStream
    /// The TLS handshake asked for by StartTls is complete (with channel-binding data, if any).
    | TlsEstablished of channelBinding: byte[] option
    /// The host's answer to OpenMaildrop.
    | MaildropOpened of Result<MaildropSnapshot, OpenRefusal>

/// What the host must do, in order.
[<RequireQualifiedAccess>]
type ServerOutput =
    /// Send these complete reply lines.
    | Reply of byte[]
    /// Send this message body, dot-stuffed and terminated.
    | Body of BodyTransfer
    /// Send a line that never ends (a fault).
    | EndlessLine
    /// Run the server side of a TLS handshake now (after the +OK to STLS).
    | StartTls
    /// Open this account's maildrop (take its lock, fix the snapshot) and answer with MaildropOpened.
    | OpenMaildrop of user: string
    /// The UPDATE state (RFC 1939 §6): remove these messages and release the lock.
    | Commit of user: string * deletedKeys: Set<int64>
    /// Release the maildrop without changes (the client left without QUIT).
    | Release of user: string
    /// A command line the server received, secrets redacted (for transcripts).
    | Heard of string
    /// Close the connection once everything before has been sent.
    | Close
    /// Never send anything again (a fault); close only when the client does.
    | Hang
