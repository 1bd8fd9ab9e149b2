namespace Pop3Functional.Core

open System

/// What the session knows before login (RFC 1939 §4 AUTHORIZATION).
type AuthorizationInfo =
    {
        /// The greeting as received; kept for AuthorizationReady.
        Greeting: Greeting
        /// The greeting's APOP timestamp; None when there was none or after STLS discarded it.
        ApopTimestamp: string option
        /// True when STLS discarded the timestamp (RFC 2595 §4), so APOP can say why it is refused.
        ApopDiscardedByStls: bool
    }

/// The state of a SASL exchange (RFC 5034 §4).
type SaslExchange =
    {
        /// The SASL mechanism name sent with AUTH (RFC 4422 §3.1).
        Mechanism: string
        /// Challenges received so far; bounded by Limits.MaxSaslRounds.
        Rounds: int
        /// An initial response that did not fit on the AUTH line, encoded at submission as a
        /// continuation line; sent after the first "+ " (RFC 5034 §4).
        DeferredInitialResponse: EncodedCommand option
        /// True when a challenge was handed to the caller and the server now waits for the answer.
        AwaitingCaller: bool
        /// True once the client sent "*": the server must answer -ERR (RFC 5034 §4).
        Cancelled: bool
        /// The mechanism the core runs itself (Request.Authenticate): it answers the challenges and
        /// checks the server's proof at +OK. None when the caller answers them (Request.Auth).
        Client: SaslClient option
    }

/// A state and the data valid in it (DESIGN §3). See Transitions for the moves between them.
[<RequireQualifiedAccess>]
type Phase =
    /// Connected; the server's first line has not arrived yet (RFC 1939 §4).
    | AwaitingGreeting
    /// The core's CAPA is outstanding (RFC 2449 §5).
    | AwaitingCapa of AuthorizationInfo
    /// Ready for a login or another authorization-state command (RFC 1939 §4).
    | Authorization of AuthorizationInfo
    /// USER was sent for this user name (RFC 1939 §7).
    | AwaitingUserReply of AuthorizationInfo * user: string
    /// USER was accepted; PASS or RPOP must follow.
    | AwaitingPass of AuthorizationInfo * user: string
    /// STLS is outstanding; byCore is true when the core sent it because TLS is required (RFC 2595 §4).
    | AwaitingStlsReply of AuthorizationInfo * byCore: bool
    /// STLS was accepted; waiting for the shell's TlsEstablished.
    | AwaitingTlsHandshake of AuthorizationInfo
    /// The login request is outstanding; sasl holds the exchange when it is AUTH (RFC 5034 §4).
    | AwaitingLoginReply of AuthorizationInfo * login: RequestId * sasl: SaslExchange option
    /// Logged in; the core's CAPA and STAT are fixing the snapshot. The login request is answered after.
    | OpeningMailbox of login: RequestId * loginStatus: StatusLine
    /// Logged in; the snapshot fixes message numbers and tracks deletion marks (RFC 1939 §5).
    | Transaction of MailboxSnapshot
    /// QUIT is outstanding; the snapshot is there when QUIT was sent in the transaction state,
    /// so its +OK can report which deletions were committed (RFC 1939 §6).
    | AwaitingQuitReply of MailboxSnapshot option
    /// QUIT was answered; no more requests are accepted.
    | Closed
    /// The session failed with this error; every later request is aborted with it.
    | Failed of Pop3Error

    /// The state without its data, as the transition table names it.
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
    /// One status line.
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
        /// The caller's id, or a negative id for a command the core sent itself.
        Id: RequestId
        /// The request as submitted, used to interpret its reply.
        Request: Request
        /// The encoded line; its length counts against the pipelining window.
        Command: EncodedCommand
        /// The shape of the reply to read.
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
    /// LIST lines so far and their number (bounded by the snapshot count or MaxListingEntries).
    | Entries of ListEntry list * count: uint64
    /// UIDL lines so far and their number (bounded like Entries).
    | Uids of UidEntry list * count: uint64
    /// CAPA lines so far, folded into capabilities, and their number (bounded by MaxCapaLines).
    | Capa of Capabilities * lines: int
    /// LANG lines so far and their number (bounded by MaxCapaLines).
    | Languages of LanguageEntry list * count: int
    /// An extension's status line, its lines so far and their number (bounded by MaxCapaLines).
    | Lines of StatusLine * lines: string list * count: int

/// What the reader expects next from the server.
[<RequireQualifiedAccess>]
type Reading =
    /// A status line (or the greeting).
    | Status
    /// The lines of a multi-line listing, up to "." (RFC 1939 §3).
    | Listing of ListingAcc
    /// A streamed body: the decoder's cursor and the octets delivered so far (checked against MaxMessageOctets).
    | Body of BodyCursor * octets: uint64

/// A persistent FIFO queue (two lists).
type Fifo<'T> =
    {
        /// The oldest items, in dequeue order; empty only when the whole queue is.
        Front: 'T list
        /// The newest items, newest first; reversed into Front when Front runs out.
        Back: 'T list
        /// How many items are queued.
        Count: int
    }

    /// A queue with nothing in it.
    static member Empty: Fifo<'T> = { Front = []; Back = []; Count = 0 }

    /// True when nothing is queued.
    member q.IsEmpty = q.Count = 0

    /// A copy with x added at the back, in O(1). Keeps Front non-empty whenever an item is queued,
    /// so Head never has to reverse anything.
    member q.Enqueue x =
        if q.Front.IsEmpty then
            { Front = [ x ]; Back = []; Count = 1 }
        else
            { q with
                Back = x :: q.Back
                Count = q.Count + 1
            }

    /// The oldest item, or None when empty, in O(1) without allocating.
    member q.Head =
        match q.Front with
        | x :: _ -> Some x
        | [] -> None

    /// A copy without the oldest item (amortised O(1): each item is reversed at most once).
    member q.Dequeue() =
        match q.Front with
        | [] -> q
        | [ _ ] ->
            {
                Front = List.rev q.Back
                Back = []
                Count = q.Count - 1
            }
        | _ :: rest ->
            { q with
                Front = rest
                Count = q.Count - 1
            }

    /// True when any queued item satisfies the predicate.
    member q.Exists(predicate: 'T -> bool) =
        List.exists predicate q.Front || List.exists predicate q.Back

    /// Every item, oldest first.
    member q.ToList() = q.Front @ List.rev q.Back

/// The whole client session: an immutable value stepped by Session.step.
type SessionState =
    {
        /// The options the session was created with; they never change within a session.
        Options: Options
        /// The current state and its data.
        Phase: Phase
        /// True once TLS protects the connection (from the start with Implicit, after STLS otherwise).
        TlsActive: bool
        /// UTF8 was accepted (RFC 6856): texts decode as UTF-8.
        Utf8Active: bool
        /// The latest capabilities (Empty before CAPA or after it failed).
        Capabilities: Capabilities
        /// None before the first CAPA answer; Some false after CAPA -ERR.
        CapaSupported: bool option
        /// Sent, awaiting their replies; the oldest first.
        InFlight: Fifo<Pending>
        /// The octets of InFlight, bounded by PipelineMaxOctets when pipelining.
        InFlightOctets: int
        /// Accepted, not yet sent (pipelining window, barriers).
        Waiting: Fifo<Pending>
        /// What the next line from the server is expected to be.
        Reading: Reading
        /// The bytes of an incomplete line, copied between steps (bounded by MaxLineOctets).
        Partial: PartialLine
        /// The id for the core's next own command: -1, -2, ... so it never meets a caller's id.
        NextCoreId: RequestId
        /// The highest caller id accepted so far: a higher id cannot be in use, so the duplicate
        /// check scans the pending requests only for ids at or below it.
        HighestCallerId: RequestId
        /// Quirks already reported by a QuirkTolerated event; each is reported once per session.
        QuirksReported: Set<Quirk>
        /// Channel-binding type and data from the TLS layer, for SCRAM-*-PLUS (RFC 5929, RFC 9266).
        ChannelBinding: ChannelBinding option
        /// Message sizes LIST announced in this session, to report a RETR that delivers another
        /// size (Courier's 8-bit header rewrite, Exchange's compressed sizes: DESIGN §9).
        ListedSizes: Map<uint64, uint64>
    }
