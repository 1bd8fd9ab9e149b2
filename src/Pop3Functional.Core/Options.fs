namespace Pop3Functional.Core

open System

/// How the connection is protected (RFC 8314, RFC 2595). There is no silent opportunistic mode.
type TlsMode =
    /// TLS from the first byte (POP3S, port 995). The shell handshakes before feeding any byte.
    | Implicit = 0
    /// Plaintext greeting, then STLS before anything secret; the core sends STLS itself and fails
    /// the session if the server cannot upgrade (RFC 9325 §3.2 strict local policy).
    | StartTlsRequired = 1
    /// No TLS, chosen explicitly. Passwords still need AllowPlaintextCredentials.
    | NoTls = 2

/// A deviation from the RFCs that real servers show; each is tolerated only when enabled, and
/// reported with a QuirkTolerated event the first time it fires in a session.
[<RequireQualifiedAccess>]
type Quirk =
    /// Lines end in a bare LF, including the ".LF" terminator (MailKit: "broken UNIX servers").
    | BareLineFeed
    /// "+ok" or "-err" instead of "+OK" or "-ERR".
    | LowercaseStatus
    /// "+OK" or "-ERR" with no text. Legal (RFC 1939's own NOOP example), so always accepted;
    /// listing it only asks for the event.
    | EmptyStatusText
    /// Several spaces between the fields of STAT, LIST or UIDL (thunderbird-android#323).
    | ExtraSpaces
    /// A LIST or UIDL listing whose numbers are not in increasing order.
    | ListingOutOfOrder
    /// A LIST or UIDL listing that skips numbers not deleted in this session.
    | ListingGaps
    /// The same UID for two messages (getmail's delete_dup_msgids). Listed, but never used to address.
    | DuplicateUids
    /// A count, size or message number above 2^31-1 (MailKit rejects these). Legal (64-bit parse),
    /// so always accepted; listing it only asks for the event.
    | NumbersAbove2Pow31
    /// CAPA answered -ERR: an RFC 1939-only server (lock-step, USER/PASS or APOP). Legal, so always
    /// accepted; listing it only asks for the event.
    | MissingCapa
    /// UIDs longer than 70 octets (printable ASCII still required). Off by default.
    | LongUids

    /// The quirk's name as shown in logs and option files.
    member this.Name =
        match this with
        | BareLineFeed -> "bare-lf"
        | LowercaseStatus -> "lowercase-status"
        | EmptyStatusText -> "empty-status-text"
        | ExtraSpaces -> "extra-spaces"
        | ListingOutOfOrder -> "listing-out-of-order"
        | ListingGaps -> "listing-gaps"
        | DuplicateUids -> "duplicate-uids"
        | NumbersAbove2Pow31 -> "numbers-above-2^31"
        | MissingCapa -> "missing-capa"
        | LongUids -> "long-uids"

    /// Every quirk, in declaration order.
    static member All =
        [
            BareLineFeed
            LowercaseStatus
            EmptyStatusText
            ExtraSpaces
            ListingOutOfOrder
            ListingGaps
            DuplicateUids
            NumbersAbove2Pow31
            MissingCapa
            LongUids
        ]

/// Limits on everything a server can make the client hold (DESIGN §5). Each is configurable.
type Limits =
    {
        /// Longest status line or listing line, CRLF included. RFC 2449 allows 512; real servers send more.
        MaxLineOctets: int
        /// Longest command line we send, CRLF included (RFC 2449 §4).
        MaxCommandOctets: int
        /// Most lines in a CAPA answer, a LANG listing or a multi-line extension reply.
        MaxCapaLines: int
        /// Most entries in a LIST/UIDL listing when no STAT count bounds it.
        MaxListingEntries: uint64
        /// Largest decoded SASL challenge (RFC 5034 §4 leaves it to the mechanism).
        MaxSaslChallengeOctets: int
        /// Most SASL challenges in one AUTH exchange.
        MaxSaslRounds: int
        /// Largest message body delivered; None for unlimited (the body is streamed, never buffered).
        MaxMessageOctets: uint64 option
        /// Most commands in flight when the server offers PIPELINING.
        PipelineMaxCommands: int
        /// Most command octets in flight when the server offers PIPELINING.
        PipelineMaxOctets: int
    }

    /// The defaults of DESIGN §5.
    static member Default =
        {
            MaxLineOctets = 8192
            MaxCommandOctets = 255
            MaxCapaLines = 1000
            MaxListingEntries = 10_000_000UL
            MaxSaslChallengeOctets = 65536
            MaxSaslRounds = 16
            MaxMessageOctets = None
            PipelineMaxCommands = 32
            PipelineMaxOctets = 4096
        }

    /// A copy with another line limit (status and listing lines, CRLF included).
    member l.WithMaxLineOctets(octets: int) = { l with MaxLineOctets = octets }

    /// A copy with another cap on one message body; null for unlimited (the default).
    member l.WithMaxMessageOctets(octets: Nullable<uint64>) =
        { l with
            MaxMessageOctets = Option.ofNullable octets
        }

    /// A copy with another cap on LIST/UIDL entries when no STAT count bounds them.
    member l.WithMaxListingEntries(entries: uint64) = { l with MaxListingEntries = entries }

    /// A copy with other SASL bounds: decoded challenge octets and rounds (RFC 5034 §4).
    member l.WithSaslLimits(challengeOctets: int, rounds: int) =
        { l with
            MaxSaslChallengeOctets = challengeOctets
            MaxSaslRounds = rounds
        }

    /// A copy with another pipelining window: commands and command octets in flight.
    member l.WithPipelineWindow(commands: int, octets: int) =
        { l with
            PipelineMaxCommands = commands
            PipelineMaxOctets = octets
        }

    /// RFC 2449's 512-octet response lines, for a strict profile.
    static member Strict =
        { Limits.Default with
            MaxLineOctets = 512
        }

/// Everything that shapes a session. Build one with Options.Default and copy-and-update.
type Options =
    {
        /// How the connection is protected; Implicit by default. The core never falls back to plaintext.
        Tls: TlsMode
        /// Allows USER/PASS and password-revealing SASL mechanisms over a connection without TLS.
        AllowPlaintextCredentials: bool
        /// Quirks tolerated; any quirk not listed is a ProtocolError when met.
        Quirks: Set<Quirk>
        /// Bounds on what a server can make the client hold; Limits.Default unless changed.
        Limits: Limits
        /// Pipelines commands when the server advertises PIPELINING (RFC 2449 §6.6).
        UsePipelining: bool
    }

    /// Implicit TLS, every quirk but LongUids tolerated, DESIGN §5 limits, pipelining when offered.
    static member Default =
        {
            Tls = TlsMode.Implicit
            AllowPlaintextCredentials = false
            Quirks = Set.ofList Quirk.All |> Set.remove Quirk.LongUids
            Limits = Limits.Default
            UsePipelining = true
        }

    /// RFC behaviour only: 512-octet lines and no deviation tolerated. The three deviations RFC 1939
    /// itself allows (empty status text, 64-bit numbers, no CAPA) are accepted and reported.
    static member Strict =
        { Options.Default with
            Quirks = Set.ofList [ Quirk.EmptyStatusText; Quirk.NumbersAbove2Pow31; Quirk.MissingCapa ]
            Limits = Limits.Strict
        }

    /// A copy with another TLS mode (for C# callers; F# callers use copy-and-update).
    member o.WithTls(mode: TlsMode) = { o with Tls = mode }

    /// A copy that allows or forbids passwords over a connection without TLS.
    member o.WithPlaintextCredentials(allow: bool) =
        { o with
            AllowPlaintextCredentials = allow
        }

    /// A copy with a quirk tolerated (true) or refused (false).
    member o.WithQuirk(quirk: Quirk, tolerated: bool) =
        { o with
            Quirks =
                (if tolerated then
                     o.Quirks.Add quirk
                 else
                     o.Quirks.Remove quirk)
        }

    /// A copy with other limits.
    member o.WithLimits(limits: Limits) = { o with Limits = limits }

    /// A copy with pipelining used when offered (true) or never (false).
    member o.WithPipelining(enabled: bool) = { o with UsePipelining = enabled }
