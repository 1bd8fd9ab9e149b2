namespace Pop3Functional.Core

open System

/// What the session knows before login (RFC 1939 §4 AUTHORIZATION).
type AuthorizationInfo =
    {
        Greeting: Greeting
        /// The greeting's APOP timestamp; None when there was none or after STLS discarded it.
        ApopTimestamp: string option
        /// True when STLS discarded the timestamp (RFC 2595 §4), so APOP can say why it is refused.
        ApopDiscardedByStls: bool
    }

/// The state of a SASL exchange (RFC 5034 §4).
type SaslExchange =
    {
        Mechanism: string
        Rounds: int
        /// An initial response that did not fit on the AUTH line; sent after the first "+ ".
        DeferredInitialResponse: Secret option
        /// True when a challenge was handed to the caller and the server now waits for the answer.
        AwaitingCaller: bool
    }

/// A state and the data valid in it (DESIGN §3). See Transitions for the moves between them.
[<RequireQualifiedAccess>]
type Phase =
    | AwaitingGreeting
    | AwaitingCapa of AuthorizationInfo
    | Authorization of AuthorizationInfo
    | AwaitingUserReply of AuthorizationInfo * user: string
    | AwaitingPass of AuthorizationInfo * user: string
    | AwaitingStlsReply of AuthorizationInfo * byCore: bool
    | AwaitingTlsHandshake of AuthorizationInfo
    | AwaitingLoginReply of AuthorizationInfo * login: RequestId * sasl: SaslExchange option
    /// Logged in; the core's CAPA and STAT are fixing the snapshot. The login request is answered after.
    | OpeningMailbox of login: RequestId * loginStatus: StatusLine
    | Transaction of MailboxSnapshot
    | AwaitingQuitReply of MailboxSnapshot option
    | Closed
    | Failed of Pop3Error

    member this.Kind =
        match this with
        | AwaitingGreeting -> PhaseKind.AwaitingGreeting
        | AwaitingCapa _ -> PhaseKind.AwaitingCapa
        | Authorization _ -> PhaseKind.Authorization
        | AwaitingUserReply _ -> PhaseKind.AwaitingUserReply
        | AwaitingPass _ -> PhaseKind.AwaitingPass
        | AwaitingStlsReply _ -> PhaseKind.AwaitingStlsReply
        | AwaitingTlsHandshake _ -> PhaseKind.AwaitingTlsHandshake
        | AwaitingLoginReply _ -> PhaseKind.AwaitingLoginReply
        | OpeningMailbox _ -> PhaseKind.OpeningMailbox
        | Transaction _ -> PhaseKind.Transaction
        | AwaitingQuitReply _ -> PhaseKind.AwaitingQuitReply
        | Closed -> PhaseKind.Closed
        | Failed _ -> PhaseKind.Failed

/// The shape of the reply a command expects.
[<RequireQualifiedAccess>]
type Expect =
    | SingleLine
    /// LIST, UIDL, CAPA or LANG without argument: lines up to "." (RFC 1939 §3).
    | Listing
    /// RETR or TOP: a streamed body.
    | Body
    /// AUTH: continuations until +OK or -ERR (RFC 5034 §4).
    | Sasl

/// A command submitted and not yet fully answered.
type Pending =
    {
        Id: RequestId
        Request: Request
        Command: EncodedCommand
        Expect: Expect
        /// Commands that change the state (or the meaning of later replies) are never pipelined.
        Barrier: bool
        /// The deletion marks when the command was accepted: what a LIST/UIDL listing omits, since
        /// the server answers it before any DELE or RSET queued behind it (RFC 1939 §5).
        DeletedBefore: Set<uint64>
    }

/// A listing being collected (newest first).
[<RequireQualifiedAccess>]
type ListingAcc =
    | Entries of ListEntry list * count: uint64
    | Uids of UidEntry list * count: uint64
    | Capa of Capabilities * lines: int
    | Languages of LanguageEntry list * count: int

/// What the reader expects next from the server.
[<RequireQualifiedAccess>]
type Reading =
    /// A status line (or the greeting).
    | Status
    | Listing of ListingAcc
    | Body of BodyCursor * octets: uint64

/// A persistent FIFO queue (two lists).
type Fifo<'T> =
    {
        Front: 'T list
        Back: 'T list
    }

    static member Empty: Fifo<'T> = { Front = []; Back = [] }

    member q.IsEmpty = q.Front.IsEmpty && q.Back.IsEmpty

    member q.Enqueue x = { q with Back = x :: q.Back }

    member q.TryPeek =
        match q.Front with
        | x :: _ -> Some(x, { q with Front = q.Front.Tail })
        | [] ->
            match List.rev q.Back with
            | x :: rest -> Some(x, { Front = rest; Back = [] })
            | [] -> None

    member q.ToList() = q.Front @ List.rev q.Back

/// The whole client session: an immutable value stepped by Session.step.
type SessionState =
    {
        Options: Options
        Phase: Phase
        TlsActive: bool
        /// UTF8 was accepted (RFC 6856): texts decode as UTF-8.
        Utf8Active: bool
        /// The latest capabilities (Empty before CAPA or after it failed).
        Capabilities: Capabilities
        /// None before the first CAPA answer; Some false after CAPA -ERR.
        CapaSupported: bool option
        /// Sent, awaiting their replies; the oldest first.
        InFlight: Pending list
        InFlightOctets: int
        /// Accepted, not yet sent (pipelining window, barriers).
        Waiting: Fifo<Pending>
        Reading: Reading
        /// The bytes of an incomplete line, copied between steps (bounded by MaxLineOctets).
        Partial: byte[]
        NextCoreId: RequestId
        QuirksReported: Set<Quirk>
        /// Channel-binding data from the TLS layer, for SCRAM-*-PLUS (RFC 5929).
        ChannelBinding: byte[] option
    }
