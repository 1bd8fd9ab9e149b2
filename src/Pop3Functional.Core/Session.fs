namespace Pop3Functional.Core

open System
open Pop3Functional.Core.SessionContext
open Pop3Functional.Core.Requests
open Pop3Functional.Core.Receiving

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
            ListedSizes = Map.empty
        }

    /// A new session over a connection that is already TLS (TlsMode.Implicit), with the TLS layer's
    /// channel-binding data (RFC 5929, RFC 9266) for SCRAM-*-PLUS. After STLS the data comes with
    /// Input.TlsEstablished instead.
    let createWithChannelBinding (options: Options) (channelBinding: ChannelBinding option) : SessionState =
        { create options with
            ChannelBinding =
                if options.Tls = TlsMode.Implicit then
                    channelBinding
                else
                    None
        }

    /// What the login choice depends on, as the session knows it now.
    let loginFacts (state: SessionState) : LoginFacts =
        let apop =
            match infoOf state.Phase with
            | Some info -> info.ApopTimestamp.IsSome
            | None -> false

        {
            CapaSupported = (state.CapaSupported = Some true)
            SaslMechanisms = state.Capabilities.Sasl
            UserOffered = state.Capabilities.User
            TlsActive = state.TlsActive
            ChannelBindingType =
                if state.TlsActive then
                    state.ChannelBinding |> Option.map _.Type
                else
                    None
            AllowPlaintextCredentials = state.Options.AllowPlaintextCredentials
            ApopAvailable = apop
        }

    /// The login method for these credentials: the named one (None for the automatic choice),
    /// checked, or the strongest the server offers (LoginChoice.choose). Made once, after
    /// AuthorizationReady; a rejected login is never retried with a weaker method.
    let chooseLogin
        (state: SessionState)
        (kind: SaslCredentialKind)
        (mechanism: string option)
        : Result<LoginMethod, UsageError> =
        match state.Phase with
        | Phase.Authorization _ when state.Options.Tls <> TlsMode.NoTls && not state.TlsActive ->
            Error(
                Err.usage
                    UsageErrorKind.TlsRequired
                    "AUTH"
                    "no login is possible: TLS is required and not established, so no credential may be sent"
            )
        | Phase.Authorization _ -> LoginChoice.choose (loginFacts state) kind mechanism
        | phase ->
            Error(
                Err.usage
                    UsageErrorKind.WrongState
                    "AUTH"
                    $"a login method is chosen in the authorization state; the session is {describe phase.Kind}"
            )

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

    let private tlsEstablished (c: Ctx) (binding: ChannelBinding option) =
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

    /// step, appending the outputs to `out` (body slices as values, not events) and returning
    /// the next session: Pop3Machine's path, which takes them from there.
    let internal stepInto (out: OutputBuffer) (state: SessionState) (input: Input) : SessionState =
        let c =
            {
                S = state
                Out = out
                Start = out.BeginStep()
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

        c.S

    /// Takes one input and returns the next session and the outputs, in order. Never throws for
    /// any input (a broken server or a misusing caller is an event).
    let step (state: SessionState) (input: Input) : struct (SessionState * Output list) =
        let out = OutputBuffer()
        let next = stepInto out state input
        struct (next, out.ToList 0)

    /// Steps through several inputs, concatenating the outputs.
    let run (state: SessionState) (inputs: Input seq) : struct (SessionState * Output list) =
        let mutable s = state
        let all = ResizeArray()

        for i in inputs do
            let struct (next, outs) = step s i
            s <- next
            all.AddRange outs

        struct (s, List.ofSeq all)
