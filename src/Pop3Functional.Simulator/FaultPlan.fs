namespace Pop3Functional.Simulator

open System
open System.Runtime.InteropServices

/// Which replies a fault applies to.
[<RequireQualifiedAccess>]
type FaultTrigger =
    /// Every command (or every one the fault can apply to).
    | Always
    /// The nth command line of the session, counting from 1 (SASL response lines included); 0 is
    /// the greeting.
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
    /// SASL challenges of this many octets of base64 (rounded up to a multiple of 4), whatever the
    /// mechanism would send: a client must bound what it accepts.
    | SaslHugeChallenge of octets: int
    /// Every AUTH exchange goes on forever: each response gets another challenge, never +OK or
    /// -ERR (until the client cancels with "*"): a client must give up after its round limit.
    | SaslEndlessChallenges
    /// SCRAM's server-final-message with a wrong server signature (v= with a bit flipped) after a
    /// correct proof: the client must refuse the session (RFC 5802 §5).
    | ScramBadServerSignature
    /// SCRAM answered +OK right after a correct proof, without server-final-message (no v=): the
    /// client cannot authenticate the server and must refuse the session (RFC 5802 §5).
    | ScramMissingServerSignature

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

/// C#-friendly factories for faults and their triggers (F# code can use the union cases directly).
[<AbstractClass; Sealed>]
type Faults =
    /// Every command.
    static member Always = FaultTrigger.Always

    /// The nth command line of the session, counting from 1 (0 is the greeting).
    static member OnCommand(n: int) = FaultTrigger.NthCommand n

    /// Every command with this keyword ("RETR", "LIST", ...).
    static member OnVerb(verb: string) = FaultTrigger.Verb verb

    /// The nth command with this keyword, counting from 1.
    static member OnVerb(verb: string, n: int) = FaultTrigger.NthOfVerb(verb, n)

    /// Wait this long before sending each reply.
    static member Latency(delay: TimeSpan) = Fault.Latency delay

    /// Send one octet per write, waiting this long between octets.
    static member Drip(pause: TimeSpan) = Fault.Drip pause

    /// Close the connection once this many octets have been sent.
    static member DisconnectAfterOctets(octets: int64) = Fault.DisconnectAfterOctets octets

    /// Send every CRLF as a bare LF.
    static member BareLineFeeds = Fault.BareLineFeeds

    /// Send these octets right after the +OK to STLS, before the handshake.
    static member InjectAfterStls(bytes: byte[]) = Fault.InjectAfterStls bytes

    /// Answer the triggered command with "-ERR [code] text" (code null or empty: no code).
    static member ErrorReply(trigger: FaultTrigger, code: string, text: string) =
        Fault.ErrorReply(trigger, (if String.IsNullOrEmpty code then None else Some code), text)

    /// Answer with a line that is not a status line.
    static member GarbageLine(trigger: FaultTrigger) = Fault.GarbageLine trigger

    /// Answer with a status line of this many octets.
    static member OversizedLine(trigger: FaultTrigger, octets: int) = Fault.OversizedLine(trigger, octets)

    /// Answer with a line that never ends.
    static member NeverEndingLine(trigger: FaultTrigger) = Fault.NeverEndingLine trigger

    /// Never answer this command, or anything after it.
    static member Silence(trigger: FaultTrigger) = Fault.Silence trigger

    /// Close the connection after this many body octets of a RETR/TOP.
    static member DisconnectInBody(trigger: FaultTrigger, afterOctets: int64) =
        Fault.DisconnectInBody(trigger, afterOctets)

    /// Send a RETR/TOP body without its terminator, then close.
    static member MissingTerminatorThenClose(trigger: FaultTrigger) =
        Fault.MissingTerminatorThenClose trigger

    /// Send a RETR body this many octets longer than LIST announced.
    static member BodyLonger(trigger: FaultTrigger, extraOctets: int) = Fault.BodyLonger(trigger, extraOctets)

    /// Send a RETR body this many octets shorter than LIST announced.
    static member BodyShorter(trigger: FaultTrigger, missingOctets: int) =
        Fault.BodyShorter(trigger, missingOctets)

    /// Send a RETR body that never ends.
    static member NeverEndingMessage(trigger: FaultTrigger) = Fault.NeverEndingMessage trigger

    /// Multi-line LIST/UIDL skip every second message.
    static member ListingGaps = Fault.ListingGaps

    /// Multi-line LIST/UIDL repeat the first entry.
    static member ListingDuplicates = Fault.ListingDuplicates

    /// Multi-line LIST/UIDL in reverse order.
    static member ListingDisorder = Fault.ListingDisorder

    /// Multi-line LIST reports sizes above 2^32.
    static member ListingHugeNumbers = Fault.ListingHugeNumbers

    /// Multi-line UIDL gives every message the same UID.
    static member DuplicateUids = Fault.DuplicateUids

    /// SASL challenges that are not base64.
    static member SaslNotBase64 = Fault.SaslNotBase64

    /// SASL challenges of this many octets of base64.
    static member SaslHugeChallenge(octets: int) = Fault.SaslHugeChallenge octets

    /// AUTH exchanges that never end: a challenge for every response.
    static member SaslEndlessChallenges = Fault.SaslEndlessChallenges

    /// SCRAM's server signature falsified (v= with a bit flipped).
    static member ScramBadServerSignature = Fault.ScramBadServerSignature

    /// SCRAM's server signature left out: +OK right after the client's proof.
    static member ScramMissingServerSignature = Fault.ScramMissingServerSignature

    /// Finds a named fault plan for command lines and demos: "none", "latency", "drip",
    /// "disconnect", "bare-lf", "stls-injection", "err-retr", "garbage", "oversized", "endless-line",
    /// "silence", "cut-body", "no-terminator", "longer", "shorter", "endless-message", "gaps",
    /// "duplicates", "disorder", "huge-numbers", "duplicate-uids", "sasl-not-base64",
    /// "sasl-huge-challenge" (70,000 octets), "sasl-endless", "scram-bad-signature",
    /// "scram-no-signature".
    static member TryParse(name: string, [<Out>] plan: byref<FaultPlan>) : bool =
        let retr = FaultTrigger.Verb "RETR"

        let fault =
            match (if isNull name then "" else name.Trim().ToLowerInvariant()) with
            | "none" -> Some None
            | "latency" -> Some(Some(Fault.Latency(TimeSpan.FromMilliseconds 50.0)))
            | "drip" -> Some(Some(Fault.Drip(TimeSpan.FromMilliseconds 1.0)))
            | "disconnect" -> Some(Some(Fault.DisconnectAfterOctets 4096L))
            | "bare-lf" -> Some(Some Fault.BareLineFeeds)
            | "stls-injection" -> Some(Some(Fault.InjectAfterStls "+OK injected\r\n"B))
            | "err-retr" -> Some(Some(Fault.ErrorReply(retr, Some "SYS/TEMP", "Try again later.")))
            | "garbage" -> Some(Some(Fault.GarbageLine(FaultTrigger.Verb "STAT")))
            | "oversized" -> Some(Some(Fault.OversizedLine(FaultTrigger.Verb "STAT", 100_000)))
            | "endless-line" -> Some(Some(Fault.NeverEndingLine(FaultTrigger.Verb "STAT")))
            | "silence" -> Some(Some(Fault.Silence(FaultTrigger.Verb "RETR")))
            | "cut-body" -> Some(Some(Fault.DisconnectInBody(FaultTrigger.NthOfVerb("RETR", 2), 1000L)))
            | "no-terminator" -> Some(Some(Fault.MissingTerminatorThenClose(FaultTrigger.NthOfVerb("RETR", 2))))
            | "longer" -> Some(Some(Fault.BodyLonger(retr, 100)))
            | "shorter" -> Some(Some(Fault.BodyShorter(retr, 10)))
            | "endless-message" -> Some(Some(Fault.NeverEndingMessage(FaultTrigger.NthOfVerb("RETR", 1))))
            | "gaps" -> Some(Some Fault.ListingGaps)
            | "duplicates" -> Some(Some Fault.ListingDuplicates)
            | "disorder" -> Some(Some Fault.ListingDisorder)
            | "huge-numbers" -> Some(Some Fault.ListingHugeNumbers)
            | "duplicate-uids" -> Some(Some Fault.DuplicateUids)
            | "sasl-not-base64" -> Some(Some Fault.SaslNotBase64)
            | "sasl-huge-challenge" -> Some(Some(Fault.SaslHugeChallenge 70_000))
            | "sasl-endless" -> Some(Some Fault.SaslEndlessChallenges)
            | "scram-bad-signature" -> Some(Some Fault.ScramBadServerSignature)
            | "scram-no-signature" -> Some(Some Fault.ScramMissingServerSignature)
            | _ -> None

        match fault with
        | Some f ->
            plan <- { Faults = Option.toList f }
            true
        | None ->
            plan <- FaultPlan.None
            false

    /// The names TryParse knows.
    static member Names: string[] =
        [|
            "none"
            "latency"
            "drip"
            "disconnect"
            "bare-lf"
            "stls-injection"
            "err-retr"
            "garbage"
            "oversized"
            "endless-line"
            "silence"
            "cut-body"
            "no-terminator"
            "longer"
            "shorter"
            "endless-message"
            "gaps"
            "duplicates"
            "disorder"
            "huge-numbers"
            "duplicate-uids"
            "sasl-not-base64"
            "sasl-huge-challenge"
            "sasl-endless"
            "scram-bad-signature"
            "scram-no-signature"
        |]
