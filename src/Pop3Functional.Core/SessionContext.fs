namespace Pop3Functional.Core

open System

/// One output as a step appended it: a body slice kept as a value (Output is null), or any other
/// output.
[<Struct; NoEquality; NoComparison>]
type internal OutputEntry =
    {
        Output: Output
        BodyId: RequestId
        Body: ReadOnlyMemory<byte>
    }

    member e.IsBody = isNull (box e.Output)

    /// The entry as the public Output (a body slice becomes its BodyData event).
    member e.ToOutput() =
        if e.IsBody then
            Output.Emit(Event.BodyData(e.BodyId, e.Body))
        else
            e.Output

/// The outputs of steps in order, appended at the back and taken from the front. Body slices
/// are stored as values: a body that dot-stuffing splits into thousands of slices costs no
/// allocation per slice (each would otherwise be an event, an output and a list cell).
[<Sealed>]
type internal OutputBuffer() =
    let mutable items: OutputEntry array = Array.zeroCreate 16
    let mutable head = 0
    let mutable tail = 0

    let push (entry: OutputEntry) =
        if tail = items.Length then
            let grown = Array.zeroCreate (items.Length * 2)
            Array.blit items 0 grown 0 tail
            items <- grown

        items[tail] <- entry
        tail <- tail + 1

    member _.Count = tail - head

    /// Starts a step: moves what is still queued to the front; returns where this step's outputs begin.
    member _.BeginStep() =
        if head > 0 then
            let count = tail - head
            Array.blit items head items 0 count
            Array.fill items count (tail - count) Unchecked.defaultof<_>
            head <- 0
            tail <- count

        tail

    member _.Add(output: Output) =
        push
            {
                Output = output
                BodyId = 0L
                Body = ReadOnlyMemory.Empty
            }

    member _.AddBody(id: RequestId, slice: ReadOnlyMemory<byte>) =
        push
            {
                Output = Unchecked.defaultof<_>
                BodyId = id
                Body = slice
            }

    /// Whether an output (not a body slice) from index `from` on satisfies the predicate.
    member _.Exists(from: int, predicate: Output -> bool) =
        let mutable found = false
        let mutable i = from

        while not found && i < tail do
            if not items[i].IsBody && predicate items[i].Output then
                found <- true

            i <- i + 1

        found

    /// The outputs from index `from` on, body slices as BodyData events.
    member _.ToList(from: int) =
        [ for i in from .. tail - 1 -> items[i].ToOutput() ]

    /// Takes the front entry; the slot is cleared so that no read buffer stays referenced.
    member _.TryTake(entry: byref<OutputEntry>) =
        if head < tail then
            entry <- items[head]
            items[head] <- Unchecked.defaultof<_>
            head <- head + 1

            if head = tail then
                head <- 0
                tail <- 0

            true
        else
            entry <- Unchecked.defaultof<_>
            false

/// The machinery every part of the session step shares: the step context, events, moves
/// checked against the transition table, failure, and the send queue with its pipelining window.
module internal SessionContext =
    type Ctx =
        {
            mutable S: SessionState
            Out: OutputBuffer
            /// Where this step's outputs begin in Out (earlier ones belong to earlier steps).
            Start: int
            /// The request whose reply line is being handled; it may already have left InFlight.
            mutable Replying: Pending option
            /// Requests sent during this step: bytes received in the same chunk cannot answer them.
            mutable SentThisStep: RequestId list
        }

    let describe (kind: PhaseKind) =
        match kind with
        | PhaseKind.AwaitingGreeting -> "awaiting the greeting"
        | PhaseKind.AwaitingCapa -> "negotiating capabilities"
        | PhaseKind.Authorization -> "in the authorization state (not logged in)"
        | PhaseKind.AwaitingUserReply -> "awaiting the reply to USER"
        | PhaseKind.AwaitingPass -> "awaiting PASS or RPOP after USER"
        | PhaseKind.AwaitingStlsReply -> "awaiting the reply to STLS"
        | PhaseKind.AwaitingTlsHandshake -> "awaiting the TLS handshake"
        | PhaseKind.AwaitingLoginReply -> "awaiting the reply to the login"
        | PhaseKind.OpeningMailbox -> "opening the mailbox after login"
        | PhaseKind.Transaction -> "in the transaction state (logged in)"
        | PhaseKind.AwaitingQuitReply -> "awaiting the reply to QUIT"
        | PhaseKind.Closed -> "closed"
        | PhaseKind.Failed -> "failed"

    let emit (c: Ctx) e = c.Out.Add(Output.Emit e)

    /// Moves to a new phase, checking that the transition table has the move.
    let move (c: Ctx) (trigger: Trigger) (target: Phase) =
        let from = c.S.Phase.Kind

        if not (Transitions.has from trigger target.Kind) then
            raise (
                InvalidOperationException $"transition {from} --{trigger}--> {target.Kind} is missing from the table"
            )

        c.S <- { c.S with Phase = target }

    /// Emits QuirkTolerated once per session for each quirk the options list. Parsers return a
    /// quirk only when the options tolerate it, except the three legal ones (empty status text,
    /// numbers above 2^31-1, CAPA -ERR: DESIGN §12), which are accepted always and reported only
    /// when listed.
    let reportQuirks (c: Ctx) (quirks: Quirk list) =
        for q in quirks do
            if c.S.Options.Quirks.Contains q && not (c.S.QuirksReported.Contains q) then
                c.S <-
                    { c.S with
                        QuirksReported = c.S.QuirksReported.Add q
                    }

                emit c (Event.QuirkTolerated q)

    let failWith (c: Ctx) (err: Pop3Error) =
        match c.S.Phase with
        | Phase.Failed _ -> ()
        | phase ->
            let pending = c.S.InFlight.ToList() @ c.S.Waiting.ToList()

            let hasFinal (id: RequestId) =
                c.Out.Exists(
                    c.Start,
                    function
                    | Output.Emit(Event.Answered(_, Reply.MessageFollows _)) -> false
                    | Output.Emit(Event.Answered(i, _) | Event.BodyEnded(i, _) | Event.Rejected(i, _) | Event.Aborted(i,
                                                                                                                      _)) ->
                        i = id
                    | _ -> false
                )

            // A reply can break the protocol after its request left InFlight (a bad STAT or LIST n
            // payload, a bad listing, bytes after +OK to STLS); that request still needs its one
            // final event.
            let pending =
                match c.Replying with
                | Some p when not (pending |> List.exists (fun q -> q.Id = p.Id)) && not (hasFinal p.Id) -> p :: pending
                | _ -> pending

            // The login request is answered only once the snapshot is fixed (DESIGN §12).
            match phase with
            | Phase.OpeningMailbox(login, _) when not (hasFinal login) -> emit c (Event.Aborted(login, err))
            | _ -> ()

            for p in pending do
                if p.Id > 0L then
                    emit c (Event.Aborted(p.Id, err))

            c.S <-
                { c.S with
                    Phase = Phase.Failed err
                    InFlight = Fifo.Empty
                    InFlightOctets = 0
                    Waiting = Fifo.Empty
                    Reading = Reading.Status
                    Partial = PartialLine.Empty
                }

            emit c (Event.Failed err)
            c.Out.Add Output.Close

    let protocolFail (c: Ctx) kind command message =
        failWith c (Pop3Error.Protocol(Err.protocol kind command message))

    let pipelining (s: SessionState) =
        s.Options.UsePipelining && s.Capabilities.Pipelining

    /// Sends waiting commands: lock-step, or within the pipelining window (RFC 2449 §6.6), never
    /// past a barrier, and QUIT only when every earlier reply has fully arrived (DESIGN §9).
    let pump (c: Ctx) =
        let mutable go = true

        while go do
            let s = c.S

            match s.Waiting.Head with
            | None -> go <- false
            | Some p ->
                let limits = s.Options.Limits

                let canSend =
                    if s.InFlight.IsEmpty then
                        true
                    elif p.Barrier then
                        false
                    elif s.InFlight.Exists _.Barrier then
                        false
                    elif pipelining s then
                        s.InFlight.Count < limits.PipelineMaxCommands
                        && s.InFlightOctets + p.Command.Bytes.Length <= limits.PipelineMaxOctets
                    else
                        false

                if canSend then
                    c.S <-
                        { s with
                            Waiting = s.Waiting.Dequeue()
                            InFlight = s.InFlight.Enqueue p
                            InFlightOctets = s.InFlightOctets + p.Command.Bytes.Length
                        }

                    c.Out.Add(Output.Send p.Command)
                    c.SentThisStep <- p.Id :: c.SentThisStep
                else
                    go <- false

    let expectOf (request: Request) =
        match request with
        | Request.List None
        | Request.Uidl None
        | Request.Capa
        | Request.Lang None
        | Request.Extension(_, _, true) -> Expect.Listing
        | Request.Retr _
        | Request.Top _ -> Expect.Body
        | Request.Auth _
        | Request.Authenticate _ -> Expect.Sasl
        | _ -> Expect.SingleLine

    let isBarrier (request: Request) =
        match request with
        | Request.User _
        | Request.Pass _
        | Request.Apop _
        | Request.Rpop _
        | Request.Auth _
        | Request.Authenticate _
        | Request.Stls
        | Request.Quit
        | Request.Utf8
        // Nothing is known of what an extension changes: it is never pipelined.
        | Request.Extension _ -> true
        | _ -> false

    let enqueue (c: Ctx) (id: RequestId) (request: Request) (command: EncodedCommand) =
        let p =
            {
                Id = id
                Request = request
                Command = command
                Expect = expectOf request
                Barrier = isBarrier request
                DeletedBefore =
                    match c.S.Phase with
                    | Phase.Transaction snapshot -> snapshot.Deleted
                    | _ -> Set.empty
            }

        c.S <-
            { c.S with
                Waiting = c.S.Waiting.Enqueue p
            }

    /// Queues a command of the core's own (CAPA, STAT, STLS); ids are negative.
    let sendByCore (c: Ctx) (request: Request) =
        match Command.encode c.S.Options.Limits.MaxCommandOctets request with
        | Ok command ->
            let id = c.S.NextCoreId
            c.S <- { c.S with NextCoreId = id - 1L }
            enqueue c id request command
            pump c
        | Error e ->
            // Only options that cannot hold the core's own commands get here (a tiny MaxCommandOctets).
            failWith c (Pop3Error.Usage e)

    let popHead (c: Ctx) =
        match c.S.InFlight.Front with
        | head :: _ ->
            c.S <-
                { c.S with
                    InFlight = c.S.InFlight.Dequeue()
                    InFlightOctets = c.S.InFlightOctets - head.Command.Bytes.Length
                    Reading = Reading.Status
                }
        | [] -> ()

    let infoOf (phase: Phase) =
        match phase with
        | Phase.AwaitingCapa i
        | Phase.Authorization i
        | Phase.AwaitingUserReply(i, _)
        | Phase.AwaitingPass(i, _)
        | Phase.AwaitingStlsReply(i, _)
        | Phase.AwaitingTlsHandshake i
        | Phase.AwaitingLoginReply(i, _, _) -> Some i
        | _ -> None
