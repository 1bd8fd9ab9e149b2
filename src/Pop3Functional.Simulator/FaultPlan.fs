namespace Pop3Functional.Simulator

open System

/// Which replies a fault applies to.
[<RequireQualifiedAccess>]
type FaultTrigger =
    /// Every command (or every one the fault can apply to).
    | Always
    /// The nth command line of the session, counting from 1 (SASL response lines included).
    | NthCommand of int
    /// Every command with this keyword ("RETR", "LIST", ...), case-insensitive.
    | Verb of string
    /// The nth command with this keyword, counting from 1.
    | NthOfVerb of string * int

/// One deliberate misbehaviour. Faults are data and combine in a FaultPlan; a session under the
/// same plan and seed misbehaves the same way every time.
[<RequireQualifiedAccess>]
type Fault =
    // --- on the wire: applied to the octets the server sends ---
    /// Wait this long before sending each reply.
    | Latency of TimeSpan
    /// Send one octet per write, waiting this long between octets (zero: no wait).
    | Drip of TimeSpan
    /// Close the connection once this many octets have been sent.
    | DisconnectAfterOctets of int64
    /// Send every CRLF as a bare LF ("broken UNIX servers", peers.md §4.1).
    | BareLineFeeds
    /// Send these octets right after the +OK to STLS, before the handshake (response injection,
    /// security.md; peers.md §4.20).
    | InjectAfterStls of byte[]

    // --- in replies: applied by the server machine to a triggered command ---
    /// Answer with -ERR, an optional response code (e.g. "SYS/TEMP") and this text.
    | ErrorReply of FaultTrigger * code: string option * text: string
    /// Answer with a line that is not a status line.
    | GarbageLine of FaultTrigger
    /// Answer with a status line of this many octets.
    | OversizedLine of FaultTrigger * octets: int
    /// Answer with a line that never ends.
    | NeverEndingLine of FaultTrigger
    /// Never answer this command, or anything after it.
    | Silence of FaultTrigger
    /// Close the connection after this many body octets of a RETR/TOP.
    | DisconnectInBody of FaultTrigger * afterOctets: int64
    /// Send a RETR/TOP body without the terminating ".CRLF", then close.
    | MissingTerminatorThenClose of FaultTrigger
    /// Send a RETR body this many octets longer than LIST announced.
    | BodyLonger of FaultTrigger * extraOctets: int
    /// Send a RETR body this many octets shorter than LIST announced.
    | BodyShorter of FaultTrigger * missingOctets: int
    /// Send a RETR body that never ends.
    | NeverEndingMessage of FaultTrigger
    /// Multi-line LIST/UIDL skip every second message.
    | ListingGaps
    /// Multi-line LIST/UIDL repeat the first entry.
    | ListingDuplicates
    /// Multi-line LIST/UIDL in reverse order.
    | ListingDisorder
    /// Multi-line LIST reports sizes above 2^32.
    | ListingHugeNumbers
    /// Multi-line UIDL gives every message the same UID.
    | DuplicateUids
    /// SASL challenges that are not base64.
    | SaslNotBase64

/// A composable, deterministic list of faults (empty: an honest server).
type FaultPlan =
    {
        /// The faults, applied together.
        Faults: Fault list
    }

    /// An honest server.
    static member None = { Faults = [] }

    /// A plan with these faults.
    static member Of([<ParamArray>] faults: Fault[]) = { Faults = List.ofArray faults }

    /// This plan and another, applied together.
    member this.And(other: FaultPlan) = { Faults = this.Faults @ other.Faults }

    /// This plan with one more fault.
    member this.With(fault: Fault) = { Faults = this.Faults @ [ fault ] }

    /// True when the plan has no faults.
    member this.IsEmpty = List.isEmpty this.Faults
