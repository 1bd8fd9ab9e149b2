namespace Pop3Functional.Core

open System
open Pop3Functional.Core.SessionContext

/// Status-line replies: +OK and -ERR to each command, SASL continuations and the greeting.
module internal Replies =
    // ----- replies -------------------------------------------------------------------------

    let readyEvent (c: Ctx) (info: AuthorizationInfo) =
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
    let afterCapa (c: Ctx) (trigger: Trigger) =
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

    let answer (c: Ctx) (p: Pending) (reply: Reply) =
        if p.Id > 0L then
            emit c (Event.Answered(p.Id, reply))

    let parsedOr (c: Ctx) (command: string) (parsed: Parsed<'T>) (onValue: 'T -> unit) =
        match parsed with
        | Ok(struct (v, quirks)) ->
            reportQuirks c quirks
            onValue v
        | Error(struct (kind, reason)) -> protocolFail c kind command $"{command}: {reason}"

    /// Answers LIST n or UIDL n, unless the server answered for another message (DESIGN §12).
    let answerFor (c: Ctx) (p: Pending) (asked: uint64) (answered: uint64) (reply: Reply) =
        if answered <> asked then
            protocolFail
                c
                ProtocolErrorKind.WrongMessageNumber
                p.Request.Keyword
                $"{p.Request.Keyword} {asked} was answered for message {answered}"
        else
            answer c p reply

    let statusPayload (line: ReadOnlyMemory<byte>) =
        // After "+OK " (the status keyword is 3 octets whatever its case).
        if line.Length > 4 then
            line.Slice 4
        else
            ReadOnlyMemory.Empty

    /// Applies f to the mailbox snapshot, whether QUIT is queued yet or not.
    let updateSnapshot (c: Ctx) (f: MailboxSnapshot -> MailboxSnapshot) =
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
    let replayMarks (confirmed: Set<uint64>) (pending: Pending list) =
        pending
        |> List.fold
            (fun marks p ->
                match p.Request with
                | Request.Dele n -> Set.add n marks
                | Request.Rset -> Set.empty
                | _ -> marks)
            confirmed

    let loginSucceeded (c: Ctx) (p: Pending) (status: StatusLine) =
        move c (Trigger.Ok p.Request.Keyword) (Phase.OpeningMailbox(p.Id, status))

        if c.S.CapaSupported = Some true then
            // Capabilities may change after login (Gmail adds PIPELINING; DESIGN §12).
            sendByCore c Request.Capa

        sendByCore c Request.Stat

    let onOkSingle (c: Ctx) (p: Pending) (status: StatusLine) (line: ReadOnlyMemory<byte>) (moreBytes: bool) =
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
                if e.Number = n then
                    c.S <-
                        { c.S with
                            ListedSizes = c.S.ListedSizes.Add(n, e.Octets)
                        }

                answerFor c p n e.Number (Reply.ListEntry e))
        | Request.Uidl(Some n), _ ->
            parsedOr c keyword (ReplyParser.uidEntry c.S.Options.Quirks (statusPayload line).Span) (fun e ->
                answerFor c p n e.Number (Reply.UidEntry e))
        | Request.User name, Phase.AwaitingUserReply(info, _) ->
            move c (Trigger.Ok "USER") (Phase.AwaitingPass(info, name))
            answer c p (Reply.Ok status)
        | Request.Authenticate _, Phase.AwaitingLoginReply(_, _, Some { Client = Some client }) ->
            // RFC 5802 §5: +OK is trusted only once the mechanism has verified the server.
            match Sasl.finish client with
            | Ok() -> loginSucceeded c p status
            | Error e -> failWith c (Pop3Error.Protocol e)
        | (Request.Pass _ | Request.Rpop _ | Request.Apop _ | Request.Auth _ | Request.Authenticate _),
          Phase.AwaitingLoginReply _ -> loginSucceeded c p status
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
        | Request.Extension _, _ -> answer c p (Reply.Extension(status, []))
        | _ -> answer c p (Reply.Ok status)

    let onErr (c: Ctx) (p: Pending) (status: StatusLine) =
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
        | (Request.Pass _ | Request.Rpop _ | Request.Apop _ | Request.Auth _ | Request.Authenticate _),
          Phase.AwaitingLoginReply(info, _, sasl) ->
            move c (Trigger.Err keyword) (Phase.Authorization info)

            // The error a mechanism received in a challenge (XOAUTH2's JSON status) says more than
            // most -ERR texts: it follows the server's text.
            match sasl |> Option.bind _.Client |> Option.bind _.ServerError with
            | Some detail when p.Id > 0L ->
                let text = if err.Text = "" then detail else $"{err.Text} ({detail})"

                emit c (Event.Rejected(p.Id, { err with Text = text }))
            | _ -> rejected ()
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

    let initialListing (request: Request) (status: StatusLine) =
        match request with
        | Request.List _ -> ListingAcc.Entries([], 0UL)
        | Request.Uidl _ -> ListingAcc.Uids([], 0UL)
        | Request.Capa -> ListingAcc.Capa(Capabilities.Empty, 0)
        | Request.Extension _ -> ListingAcc.Lines(status, [], 0)
        | _ -> ListingAcc.Languages([], 0)

    let cancelAndFail (c: Ctx) kind message =
        match Command.saslLine None with
        | Ok cmd -> c.Out.Add(Output.Send cmd)
        | Error _ -> ()

        protocolFail c kind "AUTH" message

    /// The octets a base64 text decodes to, padding excluded (RFC 4648 §4).
    let decodedLength (text: string) =
        let padding = text.Length - text.TrimEnd('=').Length
        int64 text.Length / 4L * 3L - int64 (min padding 2)

    let isBase64 (s: string) =
        s.Length % 4 = 0
        && s
           |> Seq.forall (fun ch -> Char.IsAsciiLetterOrDigit ch || ch = '+' || ch = '/' || ch = '=')
        && (let firstPad = s.IndexOf '='

            firstPad < 0
            || (firstPad >= s.Length - 2 && s.Substring(firstPad) |> Seq.forall ((=) '=')))

    let onContinuation (c: Ctx) (p: Pending) (line: ReadOnlyMemory<byte>) =
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
                match sasl.DeferredInitialResponse with
                | Some cmd when sasl.Rounds = 0 ->
                    // The first "+ " asks for the initial response that did not fit on the AUTH line.
                    let next =
                        { sasl with
                            Rounds = 1
                            DeferredInitialResponse = None
                        }

                    move c Trigger.Continuation (Phase.AwaitingLoginReply(info, login, Some next))
                    c.Out.Add(Output.Send cmd)
                    // Sent now: nothing later in this chunk can answer it.
                    c.SentThisStep <- p.Id :: c.SentThisStep
                | _ ->
                    match sasl.Client with
                    | Some client ->
                        // The core runs the mechanism: no round trip to the caller.
                        match Sasl.step client (Convert.FromBase64String text) with
                        | Error e -> cancelAndFail c e.Kind e.Message
                        | Ok(client, response) ->
                            match Command.saslLine (Some response) with
                            | Error e -> failWith c (Pop3Error.Usage e)
                            | Ok cmd ->
                                let next =
                                    { sasl with
                                        Rounds = sasl.Rounds + 1
                                        Client = Some client
                                    }

                                move c Trigger.Continuation (Phase.AwaitingLoginReply(info, login, Some next))
                                c.Out.Add(Output.Send cmd)
                                c.SentThisStep <- p.Id :: c.SentThisStep
                    | None ->
                        let next =
                            { sasl with
                                Rounds = sasl.Rounds + 1
                                AwaitingCaller = true
                            }

                        move c Trigger.Continuation (Phase.AwaitingLoginReply(info, login, Some next))
                        emit c (Event.SaslChallenge(p.Id, Convert.FromBase64String text))
        | _ -> protocolFail c ProtocolErrorKind.BadStatusLine "AUTH" "a SASL continuation outside an AUTH exchange"

    let onStatus (c: Ctx) (p: Pending) (line: ReadOnlyMemory<byte>) (moreBytes: bool) =
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
                                Reading = Reading.Listing(initialListing p.Request status)
                            }
                    | Expect.Body ->
                        answer c p (Reply.MessageFollows status)

                        c.S <-
                            { c.S with
                                Reading = Reading.Body(BodyCursor.LineStart, 0UL)
                            }
                    | Expect.SingleLine
                    | Expect.Sasl -> onOkSingle c p status line moreBytes

    let onGreeting (c: Ctx) (line: ReadOnlyMemory<byte>) =
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
