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
    | TlsEstablished of channelBinding: byte[] option
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

/// The pure client session: create, then step with inputs. Deterministic and chunking-invariant.
[<RequireQualifiedAccess>]
module Session =
    /// A new session awaiting the greeting.
    let create (options: Options) : SessionState =
        {
            Options = options
            Phase = Phase.AwaitingGreeting
            TlsActive = (options.Tls = TlsMode.Implicit)
            Utf8Active = false
            Capabilities = Capabilities.Empty
            CapaSupported = None
            InFlight = Fifo.Empty
            InFlightOctets = 0
            Waiting = Fifo.Empty
            Reading = Reading.Status
            Partial = PartialLine.Empty
            NextCoreId = -1L
            HighestCallerId = 0L
            QuirksReported = Set.empty
            ChannelBinding = None
        }

    type private Ctx =
        {
            mutable S: SessionState
            Out: ResizeArray<Output>
            /// The request whose reply line is being handled; it may already have left InFlight.
            mutable Replying: Pending option
            /// Requests sent during this step: bytes received in the same chunk cannot answer them.
            mutable SentThisStep: RequestId list
        }

    let private describe (kind: PhaseKind) =
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

    let private emit (c: Ctx) e = c.Out.Add(Output.Emit e)

    /// Moves to a new phase, checking that the transition table has the move.
    let private move (c: Ctx) (trigger: Trigger) (target: Phase) =
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
    let private reportQuirks (c: Ctx) (quirks: Quirk list) =
        for q in quirks do
            if c.S.Options.Quirks.Contains q && not (c.S.QuirksReported.Contains q) then
                c.S <-
                    { c.S with
                        QuirksReported = c.S.QuirksReported.Add q
                    }

                emit c (Event.QuirkTolerated q)

    let private failWith (c: Ctx) (err: Pop3Error) =
        match c.S.Phase with
        | Phase.Failed _ -> ()
        | phase ->
            let pending = c.S.InFlight.ToList() @ c.S.Waiting.ToList()

            let hasFinal (id: RequestId) =
                c.Out
                |> Seq.exists (function
                    | Output.Emit(Event.Answered(_, Reply.MessageFollows _)) -> false
                    | Output.Emit(Event.Answered(i, _) | Event.BodyEnded(i, _) | Event.Rejected(i, _) | Event.Aborted(i,
                                                                                                                      _)) ->
                        i = id
                    | _ -> false)

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

    let private protocolFail (c: Ctx) kind command message =
        failWith c (Pop3Error.Protocol(Err.protocol kind command message))

    let private pipelining (s: SessionState) =
        s.Options.UsePipelining && s.Capabilities.Pipelining

    /// Sends waiting commands: lock-step, or within the pipelining window (RFC 2449 §6.6), never
    /// past a barrier, and QUIT only when every earlier reply has fully arrived (DESIGN §9).
    let private pump (c: Ctx) =
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

    let private expectOf (request: Request) =
        match request with
        | Request.List None
        | Request.Uidl None
        | Request.Capa
        | Request.Lang None -> Expect.Listing
        | Request.Retr _
        | Request.Top _ -> Expect.Body
        | Request.Auth _ -> Expect.Sasl
        | _ -> Expect.SingleLine

    let private isBarrier (request: Request) =
        match request with
        | Request.User _
        | Request.Pass _
        | Request.Apop _
        | Request.Rpop _
        | Request.Auth _
        | Request.Stls
        | Request.Quit
        | Request.Utf8 -> true
        | _ -> false

    let private enqueue (c: Ctx) (id: RequestId) (request: Request) (command: EncodedCommand) =
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
    let private sendByCore (c: Ctx) (request: Request) =
        match Command.encode c.S.Options.Limits.MaxCommandOctets request with
        | Ok command ->
            let id = c.S.NextCoreId
            c.S <- { c.S with NextCoreId = id - 1L }
            enqueue c id request command
            pump c
        | Error e ->
            // Only options that cannot hold the core's own commands get here (a tiny MaxCommandOctets).
            failWith c (Pop3Error.Usage e)

    let private popHead (c: Ctx) =
        match c.S.InFlight.Front with
        | head :: _ ->
            c.S <-
                { c.S with
                    InFlight = c.S.InFlight.Dequeue()
                    InFlightOctets = c.S.InFlightOctets - head.Command.Bytes.Length
                    Reading = Reading.Status
                }
        | [] -> ()

    let private infoOf (phase: Phase) =
        match phase with
        | Phase.AwaitingCapa i
        | Phase.Authorization i
        | Phase.AwaitingUserReply(i, _)
        | Phase.AwaitingPass(i, _)
        | Phase.AwaitingStlsReply(i, _)
        | Phase.AwaitingTlsHandshake i
        | Phase.AwaitingLoginReply(i, _, _) -> Some i
        | _ -> None

    // ----- submitting requests -------------------------------------------------------------

    /// SASL mechanisms whose exchange never reveals the password itself (RFC 2195, 5802, 4422).
    let private isPasswordHiding (mechanism: string) =
        let m = mechanism.ToUpperInvariant()

        m.StartsWith "CRAM-"
        || m.StartsWith "SCRAM-"
        || m = "DIGEST-MD5"
        || m = "GSSAPI"
        || m = "EXTERNAL"
        || m = "ANONYMOUS"

    let private usage kind keyword message : Result<'T, UsageError> = Error(Err.usage kind keyword message)

    let private checkCredentials (s: SessionState) (keyword: string) (revealsPassword: bool) =
        if s.Options.Tls <> TlsMode.NoTls && not s.TlsActive then
            usage
                UsageErrorKind.TlsRequired
                keyword
                $"{keyword} refused: TLS is required and not established, so no credential may be sent"
        elif revealsPassword && not s.TlsActive && not s.Options.AllowPlaintextCredentials then
            usage
                UsageErrorKind.PlaintextCredentials
                keyword
                $"{keyword} refused: it would send a password over a connection without TLS; set AllowPlaintextCredentials to allow it"
        else
            Ok()

    let private checkMessage (snapshot: MailboxSnapshot) (keyword: string) (n: uint64) =
        if snapshot.Count = 0UL then
            usage
                UsageErrorKind.NoSuchMessage
                keyword
                $"{keyword} {n} refused: the mailbox was empty at login (STAT counted 0 messages)"
        elif n = 0UL || n > snapshot.Count then
            usage
                UsageErrorKind.NoSuchMessage
                keyword
                $"{keyword} {n} refused: the mailbox holds messages 1 to {snapshot.Count} (fixed at login)"
        elif snapshot.Deleted.Contains n then
            usage
                UsageErrorKind.MessageDeleted
                keyword
                $"{keyword} {n} refused: message {n} is marked deleted in this session"
        else
            Ok()

    let private checkCapability (s: SessionState) (keyword: string) (has: Capabilities -> bool) (name: string) =
        if s.CapaSupported = Some true && not (has s.Capabilities) then
            usage
                UsageErrorKind.CapabilityMissing
                keyword
                $"{keyword} refused: the server does not advertise {name} in CAPA"
        else
            Ok()

    let private encodeWith (s: SessionState) (request: Request) =
        Command.encode s.Options.Limits.MaxCommandOctets request

    /// Validates a request in the current phase and returns the bytes and the phase after submitting.
    let private prepare
        (s: SessionState)
        (id: RequestId)
        (request: Request)
        : Result<EncodedCommand * Phase, UsageError> =
        let keyword = request.Keyword
        let limit = s.Options.Limits.MaxCommandOctets
        let same = s.Phase
        let (>>=) r f = Result.bind f r

        match request, s.Phase with
        | Request.User name, Phase.Authorization info ->
            checkCredentials s keyword false
            >>= fun () -> encodeWith s request
            >>= fun cmd -> Ok(cmd, Phase.AwaitingUserReply(info, name))
        | Request.Pass _, Phase.AwaitingPass(info, _) ->
            checkCredentials s keyword true
            >>= fun () -> encodeWith s request
            >>= fun cmd -> Ok(cmd, Phase.AwaitingLoginReply(info, id, None))
        | Request.Rpop _, Phase.AwaitingPass(info, _) ->
            checkCredentials s keyword false
            >>= fun () -> encodeWith s request
            >>= fun cmd -> Ok(cmd, Phase.AwaitingLoginReply(info, id, None))
        | Request.Apop(name, secret), Phase.Authorization info ->
            checkCredentials s keyword false
            >>= fun () ->
                (match info.ApopTimestamp with
                 | Some ts -> Command.apop limit ts name secret
                 | None when info.ApopDiscardedByStls ->
                     usage
                         UsageErrorKind.ApopUnavailable
                         keyword
                         "APOP refused: the greeting's timestamp was sent before STLS and cannot be trusted after it (RFC 2595 §4)"
                 | None ->
                     usage
                         UsageErrorKind.ApopUnavailable
                         keyword
                         "APOP refused: the greeting carried no valid APOP timestamp (RFC 1939 §7)")
                >>= fun cmd -> Ok(cmd, Phase.AwaitingLoginReply(info, id, None))
        | Request.Auth(mech, ir), Phase.Authorization info ->
            Command.validateMechanism mech
            >>= fun _ -> checkCredentials s keyword (not (isPasswordHiding mech))
            >>= fun () ->
                match encodeWith s request with
                | Ok cmd ->
                    let sasl =
                        {
                            Mechanism = mech
                            Rounds = 0
                            DeferredInitialResponse = None
                            AwaitingCaller = false
                            Cancelled = false
                        }

                    Ok(cmd, Phase.AwaitingLoginReply(info, id, Some sasl))
                | Error e when e.Kind = UsageErrorKind.CommandTooLong && ir.IsSome ->
                    // RFC 5034 §4: an initial response that does not fit goes after the first "+ ".
                    // Encoded now, so a secret disposed after Submit cannot break the exchange.
                    let deferred = ir |> Option.map (fun secret -> secret.RevealUtf8Bytes())

                    encodeWith s (Request.Auth(mech, None))
                    >>= fun cmd ->
                        Command.saslLine deferred
                        >>= fun line ->
                            let sasl =
                                {
                                    Mechanism = mech
                                    Rounds = 0
                                    DeferredInitialResponse = Some line
                                    AwaitingCaller = false
                                    Cancelled = false
                                }

                            Ok(cmd, Phase.AwaitingLoginReply(info, id, Some sasl))
                | Error e -> Error e
        | Request.Stls, Phase.Authorization info ->
            if s.TlsActive then
                usage UsageErrorKind.WrongState keyword "STLS refused: TLS is already active (RFC 2595 §4)"
            else
                checkCapability s keyword _.Stls "STLS"
                >>= fun () -> encodeWith s request
                >>= fun cmd -> Ok(cmd, Phase.AwaitingStlsReply(info, false))
        | Request.Utf8, Phase.Authorization _ ->
            checkCapability s keyword (fun c -> c.Utf8.IsSome) "UTF8"
            >>= fun () -> encodeWith s request
            >>= fun cmd -> Ok(cmd, same)
        | Request.Lang _, _ ->
            checkCapability s keyword _.Lang "LANG"
            >>= fun () -> encodeWith s request
            >>= fun cmd -> Ok(cmd, same)
        | Request.Quit, Phase.Transaction snapshot ->
            encodeWith s request
            >>= fun cmd -> Ok(cmd, Phase.AwaitingQuitReply(Some snapshot))
        | Request.Quit, _ -> encodeWith s request >>= fun cmd -> Ok(cmd, Phase.AwaitingQuitReply None)
        | (Request.Retr n | Request.Top(n, _) | Request.List(Some n) | Request.Uidl(Some n)), Phase.Transaction snapshot ->
            checkMessage snapshot keyword n
            >>= fun () -> encodeWith s request
            >>= fun cmd -> Ok(cmd, same)
        | Request.Dele n, Phase.Transaction snapshot ->
            checkMessage snapshot keyword n
            >>= fun () -> encodeWith s request
            >>= fun cmd ->
                // Marked now so later requests see it; unmarked again if the server says -ERR.
                Ok(
                    cmd,
                    Phase.Transaction
                        { snapshot with
                            Deleted = snapshot.Deleted.Add n
                        }
                )
        | Request.Rset, Phase.Transaction snapshot ->
            encodeWith s request
            >>= fun cmd -> Ok(cmd, Phase.Transaction { snapshot with Deleted = Set.empty })
        | _ -> encodeWith s request >>= fun cmd -> Ok(cmd, same)

    let private submit (c: Ctx) (id: RequestId) (request: Request) =
        let s = c.S
        let keyword = request.Keyword

        // Scans the queue in place: Waiting.ToList() would copy it on every submit.
        // Callers usually number requests upwards: then no scan at all.
        let isDuplicate () =
            id <= s.HighestCallerId
            && (s.InFlight.Exists(fun p -> p.Id = id)
                || s.Waiting.Exists(fun p -> p.Id = id)
                || (match s.Phase with
                    | Phase.OpeningMailbox(login, _) -> login = id
                    | _ -> false))

        match s.Phase with
        | Phase.Failed err -> emit c (Event.Aborted(id, err))
        | _ when id < 1L ->
            emit c (Event.Refused(id, Err.usage UsageErrorKind.InvalidRequestId keyword "request ids start at 1"))
        | _ when isDuplicate () ->
            emit
                c
                (Event.Refused(
                    id,
                    Err.usage UsageErrorKind.InvalidRequestId keyword $"request id {id} is already in use"
                ))
        | phase when not (Transitions.allows phase.Kind keyword) ->
            let allowed =
                match Transitions.commandsIn phase.Kind with
                | [] -> "none"
                | ks -> String.Join(", ", ks)

            emit
                c
                (Event.Refused(
                    id,
                    Err.usage
                        UsageErrorKind.WrongState
                        keyword
                        $"{keyword} is not allowed now: the session is {describe phase.Kind} (allowed: {allowed})"
                ))
        | phase ->
            match prepare s id request with
            | Error e -> emit c (Event.Refused(id, e))
            | Ok(command, next) ->
                c.S <-
                    { c.S with
                        HighestCallerId = max c.S.HighestCallerId id
                    }

                enqueue c id request command
                move c (Trigger.Submitted keyword) next
                pump c

    // ----- replies -------------------------------------------------------------------------

    let private readyEvent (c: Ctx) (info: AuthorizationInfo) =
        emit
            c
            (Event.AuthorizationReady
                {
                    Greeting = info.Greeting
                    Capabilities = c.S.Capabilities
                    CapaSupported = (c.S.CapaSupported = Some true)
                    TlsActive = c.S.TlsActive
                    ApopAvailable = info.ApopTimestamp.IsSome
                })

    /// After the core's CAPA in AwaitingCapa: STLS when TLS is required and not up, else ready.
    let private afterCapa (c: Ctx) (trigger: Trigger) =
        match c.S.Phase with
        | Phase.AwaitingCapa info ->
            if c.S.Options.Tls = TlsMode.StartTlsRequired && not c.S.TlsActive then
                if c.S.CapaSupported = Some true && not c.S.Capabilities.Stls then
                    protocolFail
                        c
                        ProtocolErrorKind.TlsUnavailable
                        "CAPA"
                        "the server does not offer STLS and TLS is required; nothing was sent in plaintext"
                else
                    move c (Trigger.SentByCore "STLS") (Phase.AwaitingStlsReply(info, true))
                    sendByCore c Request.Stls
            else
                move c trigger (Phase.Authorization info)
                readyEvent c info
        | _ -> ()

    let private answer (c: Ctx) (p: Pending) (reply: Reply) =
        if p.Id > 0L then
            emit c (Event.Answered(p.Id, reply))

    let private parsedOr (c: Ctx) (command: string) (parsed: Parsed<'T>) (onValue: 'T -> unit) =
        match parsed with
        | Ok(struct (v, quirks)) ->
            reportQuirks c quirks
            onValue v
        | Error(struct (kind, reason)) -> protocolFail c kind command $"{command}: {reason}"

    /// Answers LIST n or UIDL n, unless the server answered for another message (DESIGN §12).
    let private answerFor (c: Ctx) (p: Pending) (asked: uint64) (answered: uint64) (reply: Reply) =
        if answered <> asked then
            protocolFail
                c
                ProtocolErrorKind.WrongMessageNumber
                p.Request.Keyword
                $"{p.Request.Keyword} {asked} was answered for message {answered}"
        else
            answer c p reply

    let private statusPayload (line: ReadOnlyMemory<byte>) =
        // After "+OK " (the status keyword is 3 octets whatever its case).
        if line.Length > 4 then
            line.Slice 4
        else
            ReadOnlyMemory.Empty

    /// Applies f to the mailbox snapshot, whether QUIT is queued yet or not.
    let private updateSnapshot (c: Ctx) (f: MailboxSnapshot -> MailboxSnapshot) =
        match c.S.Phase with
        | Phase.Transaction snap ->
            c.S <-
                { c.S with
                    Phase = Phase.Transaction(f snap)
                }
        | Phase.AwaitingQuitReply(Some snap) ->
            c.S <-
                { c.S with
                    Phase = Phase.AwaitingQuitReply(Some(f snap))
                }
        | _ -> ()

    /// The marks after the DELE and RSET requests still pending, in order, over the confirmed ones.
    let private replayMarks (confirmed: Set<uint64>) (pending: Pending list) =
        pending
        |> List.fold
            (fun marks p ->
                match p.Request with
                | Request.Dele n -> Set.add n marks
                | Request.Rset -> Set.empty
                | _ -> marks)
            confirmed

    let private loginSucceeded (c: Ctx) (p: Pending) (status: StatusLine) =
        move c (Trigger.Ok p.Request.Keyword) (Phase.OpeningMailbox(p.Id, status))

        if c.S.CapaSupported = Some true then
            // Capabilities may change after login (Gmail adds PIPELINING; DESIGN §12).
            sendByCore c Request.Capa

        sendByCore c Request.Stat

    let private onOkSingle (c: Ctx) (p: Pending) (status: StatusLine) (line: ReadOnlyMemory<byte>) (moreBytes: bool) =
        let keyword = p.Request.Keyword
        popHead c

        match p.Request, c.S.Phase with
        | Request.Stat, Phase.OpeningMailbox(login, loginStatus) when p.Id < 0L ->
            parsedOr c keyword (ReplyParser.stat c.S.Options.Quirks (statusPayload line).Span) (fun st ->
                let snapshot =
                    {
                        Count = st.Count
                        Octets = st.Octets
                        Deleted = Set.empty
                        Confirmed = Set.empty
                    }

                move c (Trigger.Ok "STAT") (Phase.Transaction snapshot)
                emit c (Event.Answered(login, Reply.LoggedIn(loginStatus, snapshot))))
        | Request.Stat, _ ->
            parsedOr c keyword (ReplyParser.stat c.S.Options.Quirks (statusPayload line).Span) (fun st ->
                answer c p (Reply.Stat st))
        | Request.List(Some n), _ ->
            parsedOr c keyword (ReplyParser.listEntry c.S.Options.Quirks (statusPayload line).Span) (fun e ->
                answerFor c p n e.Number (Reply.ListEntry e))
        | Request.Uidl(Some n), _ ->
            parsedOr c keyword (ReplyParser.uidEntry c.S.Options.Quirks (statusPayload line).Span) (fun e ->
                answerFor c p n e.Number (Reply.UidEntry e))
        | Request.User name, Phase.AwaitingUserReply(info, _) ->
            move c (Trigger.Ok "USER") (Phase.AwaitingPass(info, name))
            answer c p (Reply.Ok status)
        | (Request.Pass _ | Request.Rpop _ | Request.Apop _ | Request.Auth _), Phase.AwaitingLoginReply _ ->
            loginSucceeded c p status
        | Request.Stls, Phase.AwaitingStlsReply(info, _) ->
            if moreBytes then
                // RFC 2595 §4: TLS starts right after the CRLF; anything already here is injected.
                protocolFail
                    c
                    ProtocolErrorKind.ResponseInjection
                    keyword
                    "the server sent bytes after +OK to STLS and before the TLS handshake; they could be injected (CVE-2021-22947), so the session is aborted"
            else
                answer c p (Reply.Ok status)
                move c (Trigger.Ok "STLS") (Phase.AwaitingTlsHandshake info)
                c.Out.Add Output.StartTls
        | Request.Utf8, _ ->
            c.S <- { c.S with Utf8Active = true }
            answer c p (Reply.Ok status)
        | Request.Dele n, _ ->
            updateSnapshot c (fun snap ->
                { snap with
                    Confirmed = snap.Confirmed.Add n
                })

            answer c p (Reply.Ok status)
        | Request.Rset, _ ->
            updateSnapshot c (fun snap -> { snap with Confirmed = Set.empty })
            answer c p (Reply.Reset status)
        | Request.Quit, Phase.AwaitingQuitReply snapshot ->
            let outcome =
                match snapshot with
                | Some snap ->
                    {
                        Text = status.Text
                        UpdateCompleted = true
                        DeletionsCommitted = snap.Confirmed |> Set.toList
                    }
                | None ->
                    {
                        Text = status.Text
                        UpdateCompleted = false
                        DeletionsCommitted = []
                    }

            move c (Trigger.Ok "QUIT") Phase.Closed
            answer c p (Reply.Quit outcome)
            c.Out.Add Output.Close
        | _ -> answer c p (Reply.Ok status)

    let private onErr (c: Ctx) (p: Pending) (status: StatusLine) =
        let keyword = p.Request.Keyword
        popHead c

        let err =
            {
                Command = keyword
                Code = status.Code
                Text = status.Text
            }

        let rejected () =
            if p.Id > 0L then
                emit c (Event.Rejected(p.Id, err))

        match p.Request, c.S.Phase with
        | Request.Capa, phase ->
            // Legal: an RFC 1939-only server (DESIGN §12). Lock-step, no capability assumed.
            reportQuirks c [ Quirk.MissingCapa ]

            c.S <-
                { c.S with
                    CapaSupported = Some false
                    Capabilities = Capabilities.Empty
                }

            rejected ()

            match phase with
            | Phase.AwaitingCapa _ when p.Id < 0L -> afterCapa c (Trigger.Err "CAPA")
            | Phase.OpeningMailbox _ -> move c (Trigger.Err "CAPA") phase
            | _ -> ()
        | Request.User _, Phase.AwaitingUserReply(info, _) ->
            move c (Trigger.Err "USER") (Phase.Authorization info)
            rejected ()
        | (Request.Pass _ | Request.Rpop _ | Request.Apop _ | Request.Auth _), Phase.AwaitingLoginReply(info, _, _) ->
            move c (Trigger.Err keyword) (Phase.Authorization info)
            rejected ()
        | Request.Stls, Phase.AwaitingStlsReply(info, byCore) ->
            if byCore || c.S.Options.Tls = TlsMode.StartTlsRequired then
                protocolFail
                    c
                    ProtocolErrorKind.TlsUnavailable
                    keyword
                    $"{err.Message}; TLS is required, so the session ends without sending anything secret"
            else
                move c (Trigger.Err "STLS") (Phase.Authorization info)
                rejected ()
        | Request.Stat, Phase.OpeningMailbox _ when p.Id < 0L ->
            protocolFail
                c
                ProtocolErrorKind.SnapshotUnavailable
                keyword
                $"STAT after login was refused ({err.Message}); without the mailbox snapshot message numbers cannot be checked"
        | (Request.Dele _ | Request.Rset), _ ->
            // The refused DELE or RSET changed nothing on the server: rebuild the marks later
            // requests see from what the server confirmed and the DELE/RSET still pending.
            updateSnapshot c (fun snap ->
                { snap with
                    Deleted = replayMarks snap.Confirmed (c.S.InFlight.ToList() @ c.S.Waiting.ToList())
                })

            rejected ()
        | Request.Quit, Phase.AwaitingQuitReply _ ->
            move c (Trigger.Err "QUIT") Phase.Closed
            rejected ()
            c.Out.Add Output.Close
        | _ -> rejected ()

    let private initialListing (s: SessionState) (request: Request) =
        match request with
        | Request.List _ -> ListingAcc.Entries([], 0UL)
        | Request.Uidl _ -> ListingAcc.Uids([], 0UL)
        | Request.Capa -> ListingAcc.Capa(Capabilities.Empty, 0)
        | _ -> ListingAcc.Languages([], 0)

    let private cancelAndFail (c: Ctx) kind message =
        match Command.saslLine None with
        | Ok cmd -> c.Out.Add(Output.Send cmd)
        | Error _ -> ()

        protocolFail c kind "AUTH" message

    /// The octets a base64 text decodes to, padding excluded (RFC 4648 §4).
    let private decodedLength (text: string) =
        let padding = text.Length - text.TrimEnd('=').Length
        int64 text.Length / 4L * 3L - int64 (min padding 2)

    let private isBase64 (s: string) =
        s.Length % 4 = 0
        && s
           |> Seq.forall (fun ch -> Char.IsAsciiLetterOrDigit ch || ch = '+' || ch = '/' || ch = '=')
        && (let firstPad = s.IndexOf '='

            firstPad < 0
            || (firstPad >= s.Length - 2 && s.Substring(firstPad) |> Seq.forall ((=) '=')))

    let private onContinuation (c: Ctx) (p: Pending) (line: ReadOnlyMemory<byte>) =
        match c.S.Phase with
        | Phase.AwaitingLoginReply(info, login, Some sasl) ->
            let limits = c.S.Options.Limits

            let text =
                if line.Length > 2 then
                    Bytes.latin1 (line.Span.Slice 2)
                else
                    ""

            if sasl.AwaitingCaller then
                protocolFail
                    c
                    ProtocolErrorKind.UnsolicitedData
                    "AUTH"
                    "the server sent another SASL challenge before the client answered the previous one"
            elif sasl.Rounds + 1 > limits.MaxSaslRounds then
                cancelAndFail
                    c
                    ProtocolErrorKind.SaslLimitExceeded
                    $"the server sent more than {limits.MaxSaslRounds} SASL challenges"
            elif decodedLength text > int64 limits.MaxSaslChallengeOctets then
                cancelAndFail
                    c
                    ProtocolErrorKind.SaslLimitExceeded
                    $"a SASL challenge of {decodedLength text} octets exceeds the limit of {limits.MaxSaslChallengeOctets}"
            elif not (isBase64 text) then
                cancelAndFail
                    c
                    ProtocolErrorKind.BadSaslChallenge
                    $"the SASL challenge {Err.quote text} is not base64 (RFC 5034 §4); the exchange was cancelled"
            else
                let challenge = Convert.FromBase64String text

                match sasl.DeferredInitialResponse with
                | Some cmd when sasl.Rounds = 0 ->
                    move
                        c
                        Trigger.Continuation
                        (Phase.AwaitingLoginReply(
                            info,
                            login,
                            Some
                                { sasl with
                                    Rounds = 1
                                    DeferredInitialResponse = None
                                }
                        ))

                    c.Out.Add(Output.Send cmd)
                    // Sent now: nothing later in this chunk can answer it.
                    c.SentThisStep <- p.Id :: c.SentThisStep
                | _ ->
                    move
                        c
                        Trigger.Continuation
                        (Phase.AwaitingLoginReply(
                            info,
                            login,
                            Some
                                { sasl with
                                    Rounds = sasl.Rounds + 1
                                    AwaitingCaller = true
                                }
                        ))

                    emit c (Event.SaslChallenge(p.Id, challenge))
        | _ -> protocolFail c ProtocolErrorKind.BadStatusLine "AUTH" "a SASL continuation outside an AUTH exchange"

    let private onStatus (c: Ctx) (p: Pending) (line: ReadOnlyMemory<byte>) (moreBytes: bool) =
        let sasl =
            match c.S.Phase with
            | Phase.AwaitingLoginReply(_, _, Some sasl) when p.Expect = Expect.Sasl -> Some sasl
            | _ -> None

        match sasl with
        | Some sasl when sasl.AwaitingCaller ->
            // The server cannot answer a response the client has not sent: a "+OK" here would skip
            // the mechanism's proof of the server (security.md #37).
            protocolFail
                c
                ProtocolErrorKind.UnsolicitedData
                "AUTH"
                "the server answered before the client responded to its SASL challenge"
        | Some sasl when
            sasl.DeferredInitialResponse.IsSome
            && not (ReplyParser.isErr line.Span)
            && not (ReplyParser.isContinuation line.Span)
            ->
            // +OK before the client sent its initial response: a login without credentials.
            protocolFail
                c
                ProtocolErrorKind.UnsolicitedData
                "AUTH"
                "the server answered AUTH before the client sent its initial response"
        | Some sasl when sasl.Cancelled && not (ReplyParser.isErr line.Span) ->
            protocolFail
                c
                ProtocolErrorKind.BadStatusLine
                "AUTH"
                "the client cancelled the SASL exchange with \"*\" and the server did not answer -ERR (RFC 5034 §4)"
        | _ when p.Expect = Expect.Sasl && ReplyParser.isContinuation line.Span -> onContinuation c p line
        | _ ->
            let keyword = p.Request.Keyword

            match ReplyParser.statusLine c.S.Options.Quirks c.S.Utf8Active line.Span with
            | Error(struct (kind, reason)) -> protocolFail c kind keyword $"the reply to {p.Command.LogText}: {reason}"
            | Ok(struct (status, quirks)) ->
                reportQuirks c quirks

                if not status.IsOk then
                    onErr c p status
                else
                    match p.Expect with
                    | Expect.Listing ->
                        c.S <-
                            { c.S with
                                Reading = Reading.Listing(initialListing c.S p.Request)
                            }
                    | Expect.Body ->
                        answer c p (Reply.MessageFollows status)

                        c.S <-
                            { c.S with
                                Reading = Reading.Body(BodyCursor.LineStart, 0UL)
                            }
                    | Expect.SingleLine
                    | Expect.Sasl -> onOkSingle c p status line moreBytes

    let private onGreeting (c: Ctx) (line: ReadOnlyMemory<byte>) =
        match ReplyParser.statusLine c.S.Options.Quirks false line.Span with
        | Error(struct (_, reason)) -> protocolFail c ProtocolErrorKind.BadGreeting "" $"bad greeting: {reason}"
        | Ok(struct (status, quirks)) ->
            reportQuirks c quirks

            if status.IsOk then
                let greeting =
                    {
                        Text = status.Text
                        Code = status.Code
                        ApopTimestamp = ReplyParser.apopTimestamp status.Text
                    }

                let info =
                    {
                        Greeting = greeting
                        ApopTimestamp = greeting.ApopTimestamp
                        ApopDiscardedByStls = false
                    }

                emit c (Event.GreetingReceived greeting)
                move c (Trigger.Ok "greeting") (Phase.AwaitingCapa info)
                sendByCore c Request.Capa
            else
                failWith
                    c
                    (Pop3Error.Server
                        {
                            Command = ""
                            Code = status.Code
                            Text = status.Text
                        })

    let private currentCount (s: SessionState) =
        match s.Phase with
        | Phase.Transaction snap
        | Phase.AwaitingQuitReply(Some snap) -> Some snap
        | _ -> None

    /// Checks a complete LIST/UIDL listing: duplicates and zero are errors; disorder and gaps are quirks.
    let private checkNumbers (c: Ctx) (p: Pending) (keyword: string) (numbers: uint64[]) (onOk: unit -> unit) =
        let quirks = c.S.Options.Quirks
        let mutable ordered = true

        for i in 1 .. numbers.Length - 1 do
            if numbers[i] <= numbers[i - 1] then
                ordered <- false

        let sorted =
            if ordered then
                numbers
            else
                let copy = Array.copy numbers
                Array.sortInPlace copy
                copy

        let duplicate =
            seq { 1 .. sorted.Length - 1 }
            |> Seq.tryFind (fun i -> sorted[i] = sorted[i - 1])

        match duplicate with
        | Some i ->
            protocolFail
                c
                ProtocolErrorKind.DuplicateMessageNumber
                keyword
                $"{keyword} listed message {sorted[i]} twice"
        | None ->
            let disorder = not ordered

            let gaps =
                match currentCount c.S with
                | Some snap ->
                    let deletedNotListed =
                        p.DeletedBefore
                        |> Seq.filter (fun d -> Array.BinarySearch(sorted, d) < 0)
                        |> Seq.length

                    uint64 sorted.Length + uint64 deletedNotListed < snap.Count
                | None -> false

            if disorder && not (quirks.Contains Quirk.ListingOutOfOrder) then
                protocolFail
                    c
                    ProtocolErrorKind.BadListing
                    keyword
                    $"{keyword} listed messages out of order and that quirk is not enabled"
            elif gaps && not (quirks.Contains Quirk.ListingGaps) then
                protocolFail
                    c
                    ProtocolErrorKind.BadListing
                    keyword
                    $"{keyword} skipped messages not deleted in this session and that quirk is not enabled"
            else
                reportQuirks
                    c
                    ((if disorder then [ Quirk.ListingOutOfOrder ] else [])
                     @ (if gaps then [ Quirk.ListingGaps ] else []))

                onOk ()

    let private finishListing (c: Ctx) (p: Pending) (acc: ListingAcc) =
        let keyword = p.Request.Keyword
        popHead c

        match acc with
        | ListingAcc.Entries(entries, _) ->
            let entries = List.rev entries
            let numbers = entries |> List.map _.Number |> Array.ofList
            checkNumbers c p keyword numbers (fun () -> answer c p (Reply.Listing entries))
        | ListingAcc.Uids(entries, _) ->
            let entries = List.rev entries
            let numbers = entries |> List.map _.Number |> Array.ofList

            checkNumbers c p keyword numbers (fun () ->
                let uids = entries |> List.map _.Uid.Value |> Array.ofList
                Array.sortInPlace uids

                let dup =
                    seq { 1 .. uids.Length - 1 } |> Seq.exists (fun i -> uids[i] = uids[i - 1])

                if dup && not (c.S.Options.Quirks.Contains Quirk.DuplicateUids) then
                    protocolFail c ProtocolErrorKind.BadUid keyword "UIDL listed the same UID for two messages"
                else
                    if dup then
                        reportQuirks c [ Quirk.DuplicateUids ]

                    answer c p (Reply.UidListing entries))
        | ListingAcc.Capa(caps, _) ->
            c.S <-
                { c.S with
                    Capabilities = caps
                    CapaSupported = Some true
                }

            emit c (Event.CapabilitiesReceived caps)
            answer c p (Reply.Capabilities caps)

            match c.S.Phase with
            | Phase.AwaitingCapa _ when p.Id < 0L -> afterCapa c (Trigger.Ok "CAPA")
            | Phase.OpeningMailbox _ -> move c (Trigger.Ok "CAPA") c.S.Phase
            | _ -> ()
        | ListingAcc.Languages(entries, _) -> answer c p (Reply.Languages(List.rev entries))

    let private onListingLine (c: Ctx) (p: Pending) (acc: ListingAcc) (line: ReadOnlyMemory<byte>) =
        let span = line.Span

        if span.Length = 1 && span[0] = Bytes.Dot then
            finishListing c p acc
        else
            // RFC 1939 §3: a line starting with "." has it stuffed.
            let item =
                if span.Length > 0 && span[0] = Bytes.Dot then
                    line.Slice 1
                else
                    line

            let keyword = p.Request.Keyword
            let quirks = c.S.Options.Quirks
            let limits = c.S.Options.Limits

            let set acc =
                c.S <-
                    { c.S with
                        Reading = Reading.Listing acc
                    }

            let checkNumber (n: uint64) (onOk: unit -> unit) =
                match currentCount c.S with
                | _ when n = 0UL ->
                    protocolFail c ProtocolErrorKind.WrongMessageNumber keyword $"{keyword} listed message number 0"
                | Some snap when n > snap.Count ->
                    protocolFail
                        c
                        ProtocolErrorKind.WrongMessageNumber
                        keyword
                        $"{keyword} listed message {n}, but STAT counted {snap.Count} at login"
                | _ -> onOk ()

            // DESIGN §5: a listing holds at most the STAT count (numbers are unique), else the limit.
            let maxEntries =
                match currentCount c.S with
                | Some snap -> min snap.Count limits.MaxListingEntries
                | None -> limits.MaxListingEntries

            let tooMany () =
                protocolFail c ProtocolErrorKind.ListingTooLong keyword $"{keyword} sent more than {maxEntries} entries"

            match acc with
            | ListingAcc.Entries(entries, count) ->
                parsedOr c keyword (ReplyParser.listEntry quirks item.Span) (fun e ->
                    checkNumber e.Number (fun () ->
                        if count + 1UL > maxEntries then
                            tooMany ()
                        else
                            set (ListingAcc.Entries(e :: entries, count + 1UL))))
            | ListingAcc.Uids(entries, count) ->
                parsedOr c keyword (ReplyParser.uidEntry quirks item.Span) (fun e ->
                    checkNumber e.Number (fun () ->
                        if count + 1UL > maxEntries then
                            tooMany ()
                        else
                            set (ListingAcc.Uids(e :: entries, count + 1UL))))
            | ListingAcc.Capa(caps, lines) ->
                if lines + 1 > limits.MaxCapaLines then
                    protocolFail
                        c
                        ProtocolErrorKind.ListingTooLong
                        keyword
                        $"CAPA sent more than {limits.MaxCapaLines} lines"
                else
                    let text = ReplyParser.decode c.S.Utf8Active item.Span
                    set (ListingAcc.Capa(ReplyParser.capabilityLine caps text, lines + 1))
            | ListingAcc.Languages(entries, count) ->
                if count + 1 > limits.MaxCapaLines then
                    protocolFail
                        c
                        ProtocolErrorKind.ListingTooLong
                        keyword
                        $"LANG sent more than {limits.MaxCapaLines} lines"
                else
                    parsedOr c keyword (ReplyParser.languageEntry c.S.Utf8Active item.Span) (fun e ->
                        set (ListingAcc.Languages(e :: entries, count + 1)))

    let private onLine (c: Ctx) (line: ReadOnlyMemory<byte>) (bareLf: bool) (moreBytes: bool) =
        let command =
            match c.S.InFlight.Front with
            | p :: _ -> p.Request.Keyword
            | [] -> ""

        if bareLf && not (c.S.Options.Quirks.Contains Quirk.BareLineFeed) then
            protocolFail
                c
                ProtocolErrorKind.BadStatusLine
                command
                "a line ended in a bare LF and the bare-lf quirk is not enabled"
        elif line.Span.IndexOf Bytes.Nul >= 0 then
            protocolFail c ProtocolErrorKind.NulInLine command "a protocol line contains a NUL byte"
        else
            if bareLf then
                reportQuirks c [ Quirk.BareLineFeed ]

            match c.S.Phase, c.S.InFlight.Front with
            | Phase.AwaitingGreeting, [] -> onGreeting c line
            | _, [] ->
                protocolFail
                    c
                    ProtocolErrorKind.UnsolicitedData
                    ""
                    $"the server sent {Err.quote (Bytes.latin1 line.Span)} with no command outstanding"
            | _, p :: _ when List.contains p.Id c.SentThisStep ->
                // The server answered before it could have read the command (security.md #22): the
                // line would otherwise be paired with a command sent after it arrived.
                protocolFail
                    c
                    ProtocolErrorKind.UnsolicitedData
                    p.Request.Keyword
                    $"the server sent {Err.quote (Bytes.latin1 line.Span)} before {p.Command.LogText} was sent"
            | _, p :: _ ->
                c.Replying <- Some p

                match c.S.Reading with
                | Reading.Listing acc -> onListingLine c p acc line
                | _ -> onStatus c p line moreBytes

                c.Replying <- None

                // A reply may have completed: the window has room again.
                match c.S.Phase with
                | Phase.Failed _ -> ()
                | _ -> pump c

    let private bodyStep (c: Ctx) (chunk: ReadOnlyMemory<byte>) (pos: int) (cursor: BodyCursor) (octets: uint64) =
        match c.S.InFlight.Front with
        | [] -> chunk.Length
        | p :: _ ->
            let cap = c.S.Options.Limits.MaxMessageOctets
            let total = ref octets
            let exceeded = ref false

            let sink (segment: ReadOnlyMemory<byte>) =
                if not exceeded.Value then
                    let after = total.Value + uint64 segment.Length

                    match cap with
                    | Some limit when after > limit ->
                        let room = int (limit - total.Value)

                        if room > 0 && p.Id > 0L then
                            emit c (Event.BodyData(p.Id, segment.Slice(0, room)))

                        total.Value <- limit
                        exceeded.Value <- true
                    | _ ->
                        total.Value <- after

                        if p.Id > 0L then
                            emit c (Event.BodyData(p.Id, segment))

            let progress =
                BodyDecoder.decode (c.S.Options.Quirks.Contains Quirk.BareLineFeed) cursor chunk pos sink

            if progress.BareLfTerminator then
                reportQuirks c [ Quirk.BareLineFeed ]

            if exceeded.Value then
                protocolFail
                    c
                    ProtocolErrorKind.MessageTooLarge
                    p.Request.Keyword
                    $"{p.Command.LogText}: the message exceeds the limit of {Err.n cap.Value} octets"

                chunk.Length
            elif progress.Ended then
                popHead c

                if p.Id > 0L then
                    emit c (Event.BodyEnded(p.Id, total.Value))

                pump c
                progress.Next
            else
                c.S <-
                    { c.S with
                        Reading = Reading.Body(progress.Cursor, total.Value)
                    }

                chunk.Length

    let private received (c: Ctx) (chunk: ReadOnlyMemory<byte>) =
        let len = chunk.Length
        let mutable pos = 0
        let mutable go = true

        while go && pos < len do
            match c.S.Phase with
            | Phase.Failed _
            | Phase.Closed -> go <- false
            | Phase.AwaitingTlsHandshake _ ->
                protocolFail
                    c
                    ProtocolErrorKind.ResponseInjection
                    "STLS"
                    "the server sent plaintext bytes while the TLS handshake was awaited; they could be injected"

                go <- false
            | _ ->
                match c.S.Reading with
                | Reading.Body(cursor, octets) -> pos <- bodyStep c chunk pos cursor octets
                | _ ->
                    // RFC 5034 §4: a SASL challenge is bounded by its own limit, not the line limit.
                    let maxLine =
                        match c.S.InFlight.Front with
                        | p :: _ when p.Expect = Expect.Sasl ->
                            let base64 = (int64 c.S.Options.Limits.MaxSaslChallengeOctets + 2L) / 3L * 4L + 4L
                            max c.S.Options.Limits.MaxLineOctets (int (min base64 (int64 Int32.MaxValue)))
                        | _ -> c.S.Options.Limits.MaxLineOctets

                    match LineFramer.next maxLine c.S.Partial chunk pos with
                    | FramedLine.NeedMore partial ->
                        c.S <- { c.S with Partial = partial }
                        pos <- len
                    | FramedLine.TooLong ->
                        let command =
                            match c.S.InFlight.Front with
                            | p :: _ -> p.Request.Keyword
                            | [] -> ""

                        protocolFail
                            c
                            ProtocolErrorKind.LineTooLong
                            command
                            $"a line from the server exceeds the limit of {maxLine} octets"

                        go <- false
                    | FramedLine.Line(line, next, bareLf) ->
                        c.S <- { c.S with Partial = PartialLine.Empty }
                        pos <- next
                        onLine c line bareLf (next < len)

    let private endOfStream (c: Ctx) =
        match c.S.Phase with
        | Phase.Closed
        | Phase.Failed _ -> ()
        | phase ->
            let detail =
                match c.S.Reading, c.S.InFlight.Front with
                | Reading.Body(_, octets), p :: _ ->
                    $"the server closed the connection after {Err.n octets} octets of the reply to {p.Command.LogText}; the message is incomplete"
                | _, p :: _ -> $"the server closed the connection while the reply to {p.Command.LogText} was awaited"
                | _, [] when phase.Kind = PhaseKind.AwaitingGreeting ->
                    "the server closed the connection before its greeting"
                | _ -> "the server closed the connection"

            let detail =
                match phase with
                | Phase.AwaitingQuitReply(Some snap) when not (snap.Deleted.IsEmpty && snap.Confirmed.IsEmpty) ->
                    detail
                    + "; QUIT was not confirmed, so the deletions may not have been committed"
                | _ -> detail

            let command =
                match c.S.InFlight.Front with
                | p :: _ -> p.Request.Keyword
                | [] -> ""

            protocolFail c ProtocolErrorKind.ConnectionClosed command detail

    let private tlsEstablished (c: Ctx) (binding: byte[] option) =
        match c.S.Phase with
        | Phase.AwaitingTlsHandshake info ->
            // RFC 2595 §4: forget everything learnt before TLS and ask CAPA again.
            c.S <-
                { c.S with
                    TlsActive = true
                    // RFC 2595 §4: everything negotiated before TLS is forgotten, UTF8 mode included.
                    Utf8Active = false
                    Capabilities = Capabilities.Empty
                    CapaSupported = None
                    ChannelBinding = binding
                    Partial = PartialLine.Empty
                }

            let info =
                { info with
                    ApopTimestamp = None
                    ApopDiscardedByStls = info.ApopTimestamp.IsSome || info.ApopDiscardedByStls
                }

            move c Trigger.TlsEstablished (Phase.AwaitingCapa info)
            sendByCore c Request.Capa
        | phase ->
            emit
                c
                (Event.Refused(
                    0L,
                    Err.usage
                        UsageErrorKind.UnexpectedInput
                        ""
                        $"TLS was reported established, but the session is {describe phase.Kind}"
                ))

    let private saslAnswer (c: Ctx) (payload: byte[] option) =
        match c.S.Phase with
        | Phase.AwaitingLoginReply(info, login, Some sasl) when sasl.AwaitingCaller ->
            match Command.saslLine payload with
            | Ok cmd ->
                c.S <-
                    { c.S with
                        Phase =
                            Phase.AwaitingLoginReply(
                                info,
                                login,
                                Some
                                    { sasl with
                                        AwaitingCaller = false
                                        Cancelled = payload.IsNone
                                    }
                            )
                    }

                c.Out.Add(Output.Send cmd)
            | Error e -> emit c (Event.Refused(0L, e))
        | phase ->
            emit
                c
                (Event.Refused(
                    0L,
                    Err.usage
                        UsageErrorKind.NoSaslExchange
                        "AUTH"
                        $"no SASL challenge awaits an answer: the session is {describe phase.Kind}"
                ))

    /// Takes one input and returns the next session and the outputs, in order. Never throws for
    /// any input (a broken server or a misusing caller is an event).
    let step (state: SessionState) (input: Input) : struct (SessionState * Output list) =
        let c =
            {
                S = state
                Out = ResizeArray()
                Replying = None
                SentThisStep = []
            }

        match input with
        | Input.Received chunk -> received c chunk
        | Input.EndOfStream -> endOfStream c
        | Input.Submit(id, request) -> submit c id request
        | Input.SaslRespond secret ->
            if isNull secret || secret.IsDisposed then
                emit
                    c
                    (Event.Refused(
                        0L,
                        Err.usage
                            UsageErrorKind.InvalidArgument
                            "AUTH"
                            "the SASL response is null or was disposed; answer with an empty Secret for an empty response"
                    ))
            else
                saslAnswer c (Some(secret.RevealUtf8Bytes()))
        | Input.SaslCancel -> saslAnswer c None
        | Input.TlsEstablished binding -> tlsEstablished c binding
        | Input.WriteFailed err ->
            match c.S.Phase with
            | Phase.Closed -> ()
            | _ -> failWith c (Pop3Error.Transport err)

        struct (c.S, List.ofSeq c.Out)

    /// Steps through several inputs, concatenating the outputs.
    let run (state: SessionState) (inputs: Input seq) : struct (SessionState * Output list) =
        let mutable s = state
        let all = ResizeArray()

        for i in inputs do
            let struct (next, outs) = step s i
            s <- next
            all.AddRange outs

        struct (s, List.ofSeq all)
