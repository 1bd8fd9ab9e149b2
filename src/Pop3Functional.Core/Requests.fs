namespace Pop3Functional.Core

open System
open Pop3Functional.Core.SessionContext

/// Caller requests: checked in the current state (refused before any byte exists) and queued.
module internal Requests =
    // ----- submitting requests -------------------------------------------------------------

    /// SASL mechanisms whose exchange never reveals the password itself (RFC 2195, 5802, 4422).
    let isPasswordHiding (mechanism: string) =
        let m = mechanism.ToUpperInvariant()

        m.StartsWith "CRAM-"
        || m.StartsWith "SCRAM-"
        || m = "DIGEST-MD5"
        || m = "GSSAPI"
        || m = "EXTERNAL"
        || m = "ANONYMOUS"

    let usage kind keyword message : Result<'T, UsageError> = Error(Err.usage kind keyword message)

    /// Refuses any credential before TLS when TLS is required, and one that would cross a plaintext
    /// connection (exposed names it: "a password") unless the caller allowed that (DESIGN §6).
    let checkExposure (s: SessionState) (keyword: string) (exposed: string option) =
        match exposed with
        | _ when s.Options.Tls <> TlsMode.NoTls && not s.TlsActive ->
            usage
                UsageErrorKind.TlsRequired
                keyword
                $"{keyword} refused: TLS is required and not established, so no credential may be sent"
        | Some what when not s.TlsActive && not s.Options.AllowPlaintextCredentials ->
            usage
                UsageErrorKind.PlaintextCredentials
                keyword
                $"{keyword} refused: it would send {what} over a connection without TLS; set AllowPlaintextCredentials to allow it"
        | _ -> Ok()

    let checkCredentials (s: SessionState) (keyword: string) (revealsPassword: bool) =
        checkExposure s keyword (if revealsPassword then Some "a password" else None)

    let private offersSasl (s: SessionState) (mechanism: string) =
        s.Capabilities.Sasl
        |> List.exists (fun m -> String.Equals(m, mechanism, StringComparison.OrdinalIgnoreCase))

    /// A mechanism the core runs must be one the server offers, when CAPA says what it offers.
    let checkOffered (s: SessionState) (mechanism: string) =
        if s.CapaSupported = Some true && not (offersSasl s mechanism) then
            let offered =
                match s.Capabilities.Sasl with
                | [] -> "no SASL mechanism"
                | ms -> "SASL " + String.Join(" ", ms)

            usage
                UsageErrorKind.CapabilityMissing
                "AUTH"
                $"AUTH {mechanism} refused: the server does not offer it (CAPA lists {offered})"
        else
            Ok()

    /// The channel-binding data a mechanism gets. A SCRAM mechanism without -PLUS gets it (and sends
    /// the "y" flag, RFC 5802 §6) only when the server does not offer the -PLUS variant: a server
    /// that does would read "y" as a downgrade attack, so a caller who names the plain variant
    /// deliberately sends "n".
    let bindingFor (s: SessionState) (mechanism: string) =
        if mechanism.EndsWith "-PLUS" || not (offersSasl s (mechanism + "-PLUS")) then
            s.ChannelBinding
        else
            None

    let private exchange mechanism deferred client =
        {
            Mechanism = mechanism
            Rounds = 0
            DeferredInitialResponse = deferred
            AwaitingCaller = false
            Cancelled = false
            Client = client
        }

    let checkMessage (snapshot: MailboxSnapshot) (keyword: string) (n: uint64) =
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

    let checkCapability (s: SessionState) (keyword: string) (has: Capabilities -> bool) (name: string) =
        if s.CapaSupported = Some true && not (has s.Capabilities) then
            usage
                UsageErrorKind.CapabilityMissing
                keyword
                $"{keyword} refused: the server does not advertise {name} in CAPA"
        else
            Ok()

    let encodeWith (s: SessionState) (request: Request) =
        Command.encode s.Options.Limits.MaxCommandOctets request

    /// Validates a request in the current phase and returns the bytes and the phase after submitting.
    let prepare (s: SessionState) (id: RequestId) (request: Request) : Result<EncodedCommand * Phase, UsageError> =
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
            // Encoded now, so a secret disposed after Submit cannot break the exchange.
            >>= fun () -> Command.authInitialResponse ir
            >>= fun bytes -> Command.authLines limit mech bytes
            >>= fun (cmd, deferred) -> Ok(cmd, Phase.AwaitingLoginReply(info, id, Some(exchange mech deferred None)))
        | Request.Authenticate(mech, credentials, inputs), Phase.Authorization info ->
            Command.validateMechanism mech
            >>= fun _ ->
                let name = mech.ToUpperInvariant()

                let exposed =
                    match credentials with
                    | _ when not (Sasl.exposesCredential name) -> None
                    | SaslCredentials.OAuth2 _ -> Some "a bearer token"
                    | _ -> Some "a password"

                checkExposure s keyword exposed
                >>= fun () -> checkOffered s name
                >>= fun () -> Sasl.start name credentials inputs (bindingFor s name)
                >>= fun (client, ir) ->
                    let lines = Command.authLines limit name ir
                    // The lines hold their own copy; the response may hold the password (PLAIN).
                    ir |> Option.iter Array.Clear

                    lines
                    >>= fun (cmd, deferred) ->
                        Ok(cmd, Phase.AwaitingLoginReply(info, id, Some(exchange name deferred (Some client))))
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

    let submit (c: Ctx) (id: RequestId) (request: Request) =
        let s = c.S
        let keyword = request.Keyword
        let tableKeyword = request.TableKeyword

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
        | phase when not (Transitions.allows phase.Kind tableKeyword) ->
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
                move c (Trigger.Submitted tableKeyword) next
                pump c
