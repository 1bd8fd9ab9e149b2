namespace Pop3Functional.Simulator

open System
open System.Security.Cryptography
open System.Text

/// A session's view of its maildrop in the TRANSACTION state (RFC 1939 §5).
type TransactionState =
    {
        /// The maildrop as fixed at login.
        Snapshot: MaildropSnapshot
        /// Message numbers marked deleted (1-based); RSET clears them, QUIT commits them.
        Deleted: Set<int>
    }

/// What the server awaits.
[<RequireQualifiedAccess>]
type ServerPhase =
    /// AUTHORIZATION (RFC 1939 §4); the user name given by USER, if any.
    | Authorization of pendingUser: string option
    /// An AUTH exchange awaits the client's next response line (RFC 5034 §4).
    | SaslExchange of mechanism: string * state: SaslServerState * nonce: string * salt: byte[]
    /// Credentials accepted; the host is opening the maildrop. Commands wait.
    | OpeningMaildrop of user: string
    /// TRANSACTION (RFC 1939 §5).
    | Transaction of TransactionState
    /// +OK to STLS was sent; the handshake is the host's (RFC 2595 §4).
    | AwaitingTls
    /// A fault plan silenced the server; the maildrop it still holds (released when the client goes).
    | Silent of holding: string option
    /// QUIT answered, or the client went away.
    | Closed

/// The server side of one POP3 connection: an immutable value advanced by ServerMachine.step.
type ServerSession =
    {
        /// The settings the session was created with.
        Settings: ServerSettings
        /// What the server awaits.
        Phase: ServerPhase
        /// Received octets not yet part of a complete line.
        Pending: byte[]
        /// True while the rest of an over-long line is being discarded.
        Discarding: bool
        /// Command lines received so far (SASL response lines included).
        Commands: int
        /// Commands received so far, by upper-case keyword.
        VerbCounts: Map<string, int>
        /// The client sent UTF8 (RFC 6856 §2).
        Utf8: bool
        /// TLS protects the connection.
        TlsActive: bool
        /// The tls-server-end-point data of the TLS channel (RFC 5929 §4.1), for SCRAM-*-PLUS.
        ChannelBinding: byte[] option
        /// The APOP timestamp of the greeting, when APOP is on.
        Timestamp: string option
        /// The state of the session's random generator (SplitMix64).
        Random: uint64
    }

/// The pure server machine: command bytes in, reply bytes and host actions out.
[<RequireQualifiedAccess>]
module ServerMachine =
    let private crlf = "\r\n"
    let private ascii (s: string) = Encoding.UTF8.GetBytes s

    /// SplitMix64: small, fast and fully specified, so seeds give the same values everywhere.
    let private nextRandom (state: uint64) =
        let state = state + 0x9E3779B97F4A7C15UL
        let z = (state ^^^ (state >>> 30)) * 0xBF58476D1CE4E5B9UL
        let z = (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        state, z ^^^ (z >>> 31)

    let private nonceAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    let private randomText (state: uint64) (length: int) =
        let mutable s = state
        let chars = Array.zeroCreate<char> length

        for i in 0 .. length - 1 do
            let next, value = nextRandom s
            s <- next
            chars[i] <- nonceAlphabet[int (value % uint64 nonceAlphabet.Length)]

        s, String chars

    let private randomBytes (state: uint64) (length: int) =
        let mutable s = state
        let bytes = Array.zeroCreate<byte> length

        for i in 0 .. length - 1 do
            let next, value = nextRandom s
            s <- next
            bytes[i] <- byte value

        s, bytes

    // ---- the per-step context: outputs collected in order ----

    type private Ctx =
        {
            mutable S: ServerSession
            Out: ResizeArray<ServerOutput>
        }

    let private send (ctx: Ctx) (text: string) =
        ctx.Out.Add(ServerOutput.Reply(ascii (text + crlf)))

    let private ok (ctx: Ctx) (text: string) =
        send ctx (if String.IsNullOrEmpty text then "+OK" else "+OK " + text)

    /// -ERR with an RFC 2449 §8 / RFC 3206 response code when the personality sends them.
    let private err (ctx: Ctx) (code: string option) (text: string) =
        match code with
        | Some c when ctx.S.Settings.Personality.ResponseCodes -> send ctx $"-ERR [{c}] {text}"
        | _ -> send ctx ("-ERR " + text)

    let private multiLine (ctx: Ctx) (status: string) (lines: string seq) =
        let b = StringBuilder()
        b.Append("+OK ").Append(status).Append(crlf) |> ignore

        for line in lines do
            // RFC 1939 §3: a line starting with the termination octet is byte-stuffed.
            if line.StartsWith '.' then
                b.Append('.') |> ignore

            b.Append(line).Append(crlf) |> ignore

        b.Append(".").Append(crlf) |> ignore
        ctx.Out.Add(ServerOutput.Reply(ascii (b.ToString())))

    /// A private extension command of the personality: "+OK" alone, or "+OK" and its lines.
    let private privateCommand (ctx: Ctx) (verb: string) =
        match ctx.S.Settings.Personality.PrivateCommands.TryFind verb with
        | Some None -> ok ctx $"{verb} done."
        | Some(Some lines) -> multiLine ctx $"{verb} follows" lines
        | None -> send ctx "-ERR Unknown command."

    // ---- capabilities (RFC 2449 §5) ----

    let private plaintextAllowed (s: ServerSession) =
        s.TlsActive || not s.Settings.RequireTlsForPlaintextAuth

    /// Mechanisms that put a reusable secret on the wire: a password (PLAIN, LOGIN) or a bearer
    /// token (XOAUTH2, OAUTHBEARER; RFC 7628 §5 requires TLS for them).
    let private isPlaintextMechanism (m: string) =
        m.Equals("PLAIN", StringComparison.OrdinalIgnoreCase)
        || m.Equals("LOGIN", StringComparison.OrdinalIgnoreCase)
        || m.Equals("XOAUTH2", StringComparison.OrdinalIgnoreCase)
        || m.Equals("OAUTHBEARER", StringComparison.OrdinalIgnoreCase)

    let private isChannelBindingMechanism (m: string) =
        m.EndsWith("-PLUS", StringComparison.OrdinalIgnoreCase)

    /// -PLUS mechanisms need the TLS channel's binding data (RFC 5802 §6): without TLS, or with a
    /// host that supplied none, they are not offered.
    let private channelBindingAvailable (s: ServerSession) = s.TlsActive && s.ChannelBinding.IsSome

    let private offeredMechanisms (s: ServerSession) =
        s.Settings.Personality.SaslMechanisms
        |> List.filter (fun m -> plaintextAllowed s || not (isPlaintextMechanism m))
        |> List.filter (fun m -> channelBindingAvailable s || not (isChannelBindingMechanism m))

    let private stlsOffered (s: ServerSession) =
        s.Settings.StlsAvailable && not s.TlsActive

    /// The CAPA lines in force now, with the personality's "STLS" and "SASL" placeholders resolved.
    let capabilities (s: ServerSession) : string list =
        let p = s.Settings.Personality

        let lines =
            match s.Phase with
            | ServerPhase.Transaction _ -> p.CapabilitiesAfterLogin
            | _ -> p.CapabilitiesBeforeLogin

        lines
        |> List.choose (fun line ->
            match line.ToUpperInvariant() with
            | "STLS" ->
                if stlsOffered s && not s.Phase.IsTransaction then
                    Some line
                else
                    None
            | "SASL" ->
                match offeredMechanisms s with
                | [] -> None
                | ms -> Some("SASL " + String.Join(' ', ms))
            | "USER" -> if plaintextAllowed s then Some line else None
            | _ -> Some line)

    // ---- fault plans ----

    let private verbIndex (s: ServerSession) (verb: string) =
        s.VerbCounts |> Map.tryFind verb |> Option.defaultValue 0

    let private fires (s: ServerSession) (verb: string) (trigger: FaultTrigger) =
        match trigger with
        | FaultTrigger.Always -> s.Commands > 0
        | FaultTrigger.NthCommand n -> n = s.Commands
        | FaultTrigger.Verb v -> v.Equals(verb, StringComparison.OrdinalIgnoreCase)
        | FaultTrigger.NthOfVerb(v, n) -> v.Equals(verb, StringComparison.OrdinalIgnoreCase) && verbIndex s verb = n

    /// A fault that replaces the reply to the current command (or the greeting, command 0).
    let private replyFault (s: ServerSession) (verb: string) =
        s.Settings.Faults.Faults
        |> List.tryFind (function
            | Fault.ErrorReply(t, _, _)
            | Fault.GarbageLine t
            | Fault.OversizedLine(t, _)
            | Fault.NeverEndingLine t
            | Fault.Silence t -> fires s verb t
            | _ -> false)

    /// The maildrop a session holds, which a silenced session keeps until the client goes.
    let private holding (s: ServerSession) =
        match s.Phase with
        | ServerPhase.Transaction t -> Some t.Snapshot.User
        | _ -> None

    /// Sends the faulty reply; true when the session was silenced or closed by it.
    let private applyReplyFault (ctx: Ctx) (fault: Fault) =
        match fault with
        | Fault.ErrorReply(_, code, text) ->
            match code with
            | Some c -> send ctx $"-ERR [{c}] {text}"
            | None -> send ctx ("-ERR " + text)
        | Fault.GarbageLine _ -> send ctx "* this is not a POP3 status line"
        | Fault.OversizedLine(_, octets) -> send ctx ("+OK " + String('x', max 0 (octets - 6)))
        | Fault.NeverEndingLine _ ->
            ctx.Out.Add(ServerOutput.Reply(ascii "+OK "))
            ctx.Out.Add ServerOutput.EndlessLine

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Silent(holding ctx.S)
                }
        | Fault.Silence _ ->
            ctx.Out.Add ServerOutput.Hang

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Silent(holding ctx.S)
                }
        | _ -> ()

    let private bodyAlteration (s: ServerSession) (verb: string) =
        s.Settings.Faults.Faults
        |> List.tryPick (function
            | Fault.DisconnectInBody(t, n) when fires s verb t -> Some(BodyAlteration.DisconnectAfter n)
            | Fault.MissingTerminatorThenClose t when fires s verb t -> Some BodyAlteration.NoTerminatorThenClose
            | Fault.BodyLonger(t, n) when verb = "RETR" && fires s verb t -> Some(BodyAlteration.Longer n)
            | Fault.BodyShorter(t, n) when verb = "RETR" && fires s verb t -> Some(BodyAlteration.Shorter n)
            | Fault.NeverEndingMessage t when verb = "RETR" && fires s verb t -> Some BodyAlteration.Endless
            | _ -> None)
        |> Option.defaultValue BodyAlteration.Unchanged

    let private hasFault (s: ServerSession) (fault: Fault) =
        s.Settings.Faults.Faults |> List.contains fault

    // ---- the greeting ----

    /// A new session and its greeting (RFC 1939 §4).
    let create (settings: ServerSettings) : ServerSession * ServerOutput list =
        let random, stamp = nextRandom settings.Seed
        let p = settings.Personality

        let timestamp =
            if p.Apop then
                // RFC 1939 §7: "<process-ID.clock@hostname>", unique per greeting.
                Some $"<{stamp % 100000UL}.{settings.StartTime.ToUnixTimeSeconds()}@{settings.Hostname}>"
            else
                None

        let session =
            {
                Settings = settings
                Phase = ServerPhase.Authorization None
                Pending = [||]
                Discarding = false
                Commands = 0
                VerbCounts = Map.empty
                Utf8 = false
                TlsActive = settings.TlsActive
                ChannelBinding = if settings.TlsActive then settings.ChannelBinding else None
                Timestamp = timestamp
                Random = random
            }

        let ctx = { S = session; Out = ResizeArray() }

        match replyFault session "" with
        | Some fault -> applyReplyFault ctx fault
        | None ->
            let greeting = p.Greeting.Replace("{timestamp}", defaultArg timestamp "")
            ok ctx (greeting.TrimEnd())

        ctx.S, List.ofSeq ctx.Out

    // ---- authorization ----

    let private openMaildrop (ctx: Ctx) (user: string) =
        ctx.Out.Add(ServerOutput.OpenMaildrop user)

        ctx.S <-
            { ctx.S with
                Phase = ServerPhase.OpeningMaildrop user
            }

    let private authFailed (ctx: Ctx) =
        err ctx (Some "AUTH") "Authentication failed."

        ctx.S <-
            { ctx.S with
                Phase = ServerPhase.Authorization None
            }

    let private passwordMatches (s: ServerSession) (user: string) (password: string) =
        match s.Settings.LookupPassword user with
        | Some expected ->
            CryptographicOperations.FixedTimeEquals(
                ReadOnlySpan(Encoding.UTF8.GetBytes expected),
                ReadOnlySpan(Encoding.UTF8.GetBytes password)
            )
        | None -> false

    /// RFC 1939 §7: digest = MD5(timestamp + password) in lowercase hex.
    let private apopMatches (s: ServerSession) (user: string) (digest: string) =
        match s.Timestamp, s.Settings.LookupPassword user with
        | Some stamp, Some password ->
            let expected =
                Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(stamp + password)))

            CryptographicOperations.FixedTimeEquals(
                ReadOnlySpan(Encoding.ASCII.GetBytes expected),
                ReadOnlySpan(Encoding.ASCII.GetBytes(digest.ToLowerInvariant()))
            )
        | _ -> false

    /// The context of an exchange: its nonce and salt are drawn once, when AUTH starts, and kept
    /// in the phase, so every step sees the same ones (RFC 5802 §3).
    let private contextOf (s: ServerSession) (nonce: string) (salt: byte[]) =
        {
            LookupPassword = s.Settings.LookupPassword
            Nonce = nonce
            Hostname = s.Settings.Hostname
            ScramSalt = salt
            ScramIterations = s.Settings.ScramIterations
            LookupTokens = s.Settings.LookupTokens
            ChannelBinding = if channelBindingAvailable s then s.ChannelBinding else None
            ChannelBindingAdvertised = offeredMechanisms s |> List.exists isChannelBindingMechanism
        }

    let private saslContext (ctx: Ctx) =
        let random, nonce = randomText ctx.S.Random 24
        let random, salt = randomBytes random 16
        ctx.S <- { ctx.S with Random = random }
        contextOf ctx.S nonce salt

    let private hugeChallenge (s: ServerSession) =
        s.Settings.Faults.Faults
        |> List.tryPick (function
            | Fault.SaslHugeChallenge octets -> Some octets
            | _ -> None)

    let private sendChallenge (ctx: Ctx) (challenge: byte[]) =
        if hasFault ctx.S Fault.SaslNotBase64 then
            send ctx "+ this*is*not*base64!"
        elif (hugeChallenge ctx.S).IsSome then
            // "A" * 4k is valid base64 (zero octets), so only the size is wrong.
            let octets = (max 4 (hugeChallenge ctx.S).Value + 3) / 4 * 4
            send ctx ("+ " + String('A', octets))
        elif challenge.Length = 0 then
            match ctx.S.Settings.Personality.Continuation with
            | ContinuationStyle.BarePlus -> send ctx "+"
            | _ -> send ctx "+ "
        else
            send ctx ("+ " + Convert.ToBase64String challenge)

    /// The exchange keeps the context it started with: SCRAM's server nonce and salt must be the
    /// same in every step (RFC 5802 §3).
    let private saslStep (ctx: Ctx) (mechanism: string) (context: SaslContext) (step: SaslServerStep) =
        let challenge (state: SaslServerState) (bytes: byte[]) =
            sendChallenge ctx bytes

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.SaslExchange(mechanism, state, context.Nonce, context.ScramSalt)
                }

        match step with
        | SaslServerStep.Challenge(state, bytes) ->
            // SCRAM's server-final-message (v=) is where a server proves it knows the password
            // (RFC 5802 §5); these faults leave it out or falsify it.
            match SaslServer.awaitingFinalAck state with
            | Some user when hasFault ctx.S Fault.ScramMissingServerSignature -> openMaildrop ctx user
            | Some _ when hasFault ctx.S Fault.ScramBadServerSignature ->
                challenge state (SaslServer.tamperServerFinal bytes)
            | _ -> challenge state bytes
        | SaslServerStep.Succeeded user -> openMaildrop ctx user
        | SaslServerStep.Failed reason ->
            // The mechanisms say why in lowercase ("authentication failed"); a sentence reads better.
            let text =
                if String.IsNullOrEmpty reason then
                    "Authentication failed."
                else
                    string (Char.ToUpperInvariant reason[0])
                    + reason.Substring(1)
                    + (if reason.EndsWith '.' then "" else ".")

            err ctx (Some "AUTH") text

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Authorization None
                }

    let private decodeBase64 (text: string) =
        if text = "=" then
            Some [||]
        else
            let buffer = Array.zeroCreate<byte>((text.Length * 3) / 4 + 3)

            match Convert.TryFromBase64String(text, Span buffer) with
            | true, n -> Some buffer[.. n - 1]
            | _ -> None

    let private auth (ctx: Ctx) (args: string list) =
        let offered = offeredMechanisms ctx.S

        match args with
        | [] ->
            // Not in RFC 5034, but Dovecot and others list the mechanisms; clients probe with it.
            multiLine ctx "Supported mechanisms follow" offered
        | mechanism :: rest ->
            let mechanism = mechanism.ToUpperInvariant()

            if not (offered |> List.contains mechanism) then
                if isPlaintextMechanism mechanism && not (plaintextAllowed ctx.S) then
                    err ctx (Some "AUTH") "Plaintext authentication disallowed on non-secure connections."
                else
                    err ctx None "Unsupported authentication mechanism."
            else
                let initial =
                    match rest with
                    | [] -> Ok None
                    | [ ir ] ->
                        match decodeBase64 ir with
                        | Some bytes -> Ok(Some bytes)
                        | None -> Error()
                    | _ -> Error()

                match initial with
                | Ok(Some _) when
                    ctx.S.Settings.Personality.InitialResponseRefused
                    |> List.exists (fun m -> m.Equals(mechanism, StringComparison.OrdinalIgnoreCase))
                    ->
                    // Exchange Online and XOAUTH2 (getmail6/getmail6#256): the two-line form only.
                    send ctx "-ERR Protocol error. Connection is closed. 10"
                    ctx.Out.Add ServerOutput.Close

                    ctx.S <-
                        { ctx.S with
                            Phase = ServerPhase.Closed
                        }
                | Error() -> err ctx None "Invalid base64 data in initial response."
                | Ok _ when hasFault ctx.S Fault.SaslEndlessChallenges ->
                    let context = saslContext ctx
                    saslStep ctx mechanism context (SaslServer.stall 1)
                | Ok initial ->
                    let context = saslContext ctx

                    match SaslServer.start context mechanism initial with
                    | Ok step -> saslStep ctx mechanism context step
                    | Error reason -> err ctx None reason

    let private saslResponse
        (ctx: Ctx)
        (mechanism: string)
        (state: SaslServerState)
        (context: SaslContext)
        (line: string)
        =
        if line = "*" then
            // RFC 5034 §4: the client cancels; the server answers -ERR.
            err ctx None "Authentication cancelled."

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Authorization None
                }
        else
            let decoded = if line.Length = 0 then Some [||] else decodeBase64 line

            match decoded with
            | None ->
                err ctx None "Invalid base64 data in continued response."

                ctx.S <-
                    { ctx.S with
                        Phase = ServerPhase.Authorization None
                    }
            | Some bytes -> saslStep ctx mechanism context (SaslServer.respond context state bytes)

    let private capa (ctx: Ctx) =
        if ctx.S.Settings.Personality.CapaSupported then
            multiLine ctx "Capability list follows" (capabilities ctx.S)
        else
            // An RFC 1939 server does not know CAPA (RFC 2449 §5: clients must cope).
            send ctx "-ERR Unknown command."

    let private lang (ctx: Ctx) (args: string list) =
        let languages = ctx.S.Settings.Personality.Languages

        match args with
        | _ when languages.IsEmpty -> send ctx "-ERR Unknown command."
        | [] -> multiLine ctx "Language listing follows" (languages |> List.map (fun (tag, name) -> $"{tag} {name}"))
        | [ tag ] when
            tag = "*"
            || languages
               |> List.exists (fun (t, _) -> t.Equals(tag, StringComparison.OrdinalIgnoreCase))
            ->
            ok ctx "Language changed."
        | _ -> send ctx "-ERR Unsupported language."

    let private authorization
        (ctx: Ctx)
        (pendingUser: string option)
        (verb: string)
        (args: string list)
        (rest: string)
        =
        let p = ctx.S.Settings.Personality

        match verb, args with
        | "CAPA", [] -> capa ctx
        | "STLS", [] when stlsOffered ctx.S ->
            ok ctx "Begin TLS negotiation now."
            ctx.Out.Add ServerOutput.StartTls
            // RFC 2595 §4: whatever the client sent after STLS is plaintext; it is dropped.
            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.AwaitingTls
                    Pending = [||]
                }
        | "STLS", _ -> send ctx "-ERR STLS not available."
        | "USER", _ :: _ when p.UserPass && not (plaintextAllowed ctx.S) ->
            err ctx (Some "AUTH") "Plaintext authentication disallowed on non-secure connections."
        | "USER", _ :: _ when p.UserPass ->
            // RFC 1939 §7: a server may accept any name here and decide at PASS.
            ok ctx ""

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Authorization(Some rest)
                }
        | "PASS", _ :: _ when p.UserPass && pendingUser.IsSome ->
            // The password is the rest of the line: passwords may contain spaces.
            if passwordMatches ctx.S pendingUser.Value rest then
                openMaildrop ctx pendingUser.Value
            else
                authFailed ctx
        | "PASS", [] when pendingUser.IsSome -> send ctx "-ERR Missing password."
        | "PASS", _ -> send ctx "-ERR No user name given (USER first)."
        | "RPOP", [ _ ] when p.Rpop && pendingUser.IsSome ->
            // RFC 1081: a trusted host vouches for the user; the simulator trusts every client.
            openMaildrop ctx pendingUser.Value
        | "APOP", [ user; digest ] when p.Apop ->
            if apopMatches ctx.S user digest then
                openMaildrop ctx user
            else
                authFailed ctx
        | "AUTH", _ when not p.SaslMechanisms.IsEmpty -> auth ctx args
        | "UTF8", [] when p.Utf8 ->
            ctx.S <- { ctx.S with Utf8 = true }
            ok ctx "UTF8 enabled."
        | "LANG", _ -> lang ctx args
        | "QUIT", [] ->
            ok ctx p.QuitText
            ctx.Out.Add ServerOutput.Close

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Closed
                }
        | ("STAT" | "LIST" | "RETR" | "DELE" | "NOOP" | "RSET" | "TOP" | "UIDL"), _ -> send ctx "-ERR Not logged in."
        | _ -> privateCommand ctx verb

    // ---- transaction ----

    let private parseNumber (text: string) =
        if text.Length > 0 && text.Length <= 10 && text |> Seq.forall Char.IsAsciiDigit then
            match Int64.TryParse text with
            | true, n when n <= int64 Int32.MaxValue -> Some(int n)
            | _ -> None
        else
            None

    /// The message a command names, or the -ERR it gets.
    let private message (ctx: Ctx) (t: TransactionState) (arg: string) =
        match parseNumber arg with
        | None ->
            send ctx "-ERR Invalid message number."
            None
        | Some n when n < 1 || n > t.Snapshot.Messages.Length ->
            send ctx $"-ERR There's no message {n}."
            None
        | Some n when t.Deleted.Contains n ->
            send ctx $"-ERR Message {n} is deleted."
            None
        | Some n -> Some(n, t.Snapshot.Messages[n - 1])

    let private live (t: TransactionState) =
        t.Snapshot.Messages
        |> Seq.mapi (fun i m -> i + 1, m)
        |> Seq.filter (fun (n, _) -> not (t.Deleted.Contains n))
        |> List.ofSeq

    let private listingFaults (s: ServerSession) (entries: (int * string) list) =
        let faults = s.Settings.Faults.Faults
        let mutable e = entries

        if faults |> List.contains Fault.ListingGaps then
            e <- e |> List.indexed |> List.filter (fun (i, _) -> i % 2 = 0) |> List.map snd

        if faults |> List.contains Fault.ListingDuplicates && not e.IsEmpty then
            e <- e @ [ e.Head ]

        if faults |> List.contains Fault.ListingDisorder then
            e <- List.rev e

        e

    // Courier's rewrite (DESIGN §9): a header with raw 8-bit octets is wrapped into a new
    // multipart/mixed message unless the client sent UTF8; the bytes differ per session. The
    // store found the 8-bit header at delivery: the machine never reads message content.
    let private served (ctx: Ctx) (m: StoredMessage) =
        let p = ctx.S.Settings.Personality

        if p.RewritesEightBitHeaders && not ctx.S.Utf8 && m.EightBitHeader then
            let random, tag = randomText ctx.S.Random 12
            ctx.S <- { ctx.S with Random = random }
            let boundary = "=_courier-" + tag.Replace('+', 'x').Replace('/', 'y')

            let prefix =
                $"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\nMIME-Version: 1.0\r\n\r\nThis message contains raw 8-bit headers; the original is attached.\r\n\r\n--{boundary}\r\nContent-Type: message/global\r\n\r\n"

            let suffix = $"\r\n--{boundary}--\r\n"

            MessageContent.Concat
                [
                    MessageContent.OfBytes(ascii prefix)
                    m.Content
                    MessageContent.OfBytes(ascii suffix)
                ],
            true
        else
            m.Content, false

    let private retrieve (ctx: Ctx) (verb: string) (n: int) (m: StoredMessage) (topLines: int64 option) =
        let content, rewritten = served ctx m
        let alteration = bodyAlteration ctx.S verb

        let status =
            match ctx.S.Settings.Personality.RetrStatus, topLines with
            | _, Some _ -> "Top of message follows."
            | RetrStatusStyle.MessageFollows, None -> "Message follows."
            | RetrStatusStyle.Bare, None -> ""
            | _, None when rewritten ->
                // Courier's count matches neither size (DESIGN §9).
                $"{(m.Content.Length + content.Length) / 2L} octets follow."
            | _, None -> $"{m.Content.Length} octets follow."

        ok ctx status

        ctx.Out.Add(
            ServerOutput.Body
                {
                    Message = n
                    Content = content
                    TopLines = topLines
                    Alteration = alteration
                }
        )

    let private transaction (ctx: Ctx) (t: TransactionState) (verb: string) (args: string list) =
        let p = ctx.S.Settings.Personality

        match verb, args with
        | "STAT", [] ->
            let messages = live t
            ok ctx $"{messages.Length} {messages |> List.sumBy (fun (_, m) -> m.Content.Length)}"
        | "LIST", [] ->
            let messages = live t
            let total = messages |> List.sumBy (fun (_, m) -> m.Content.Length)
            let huge = hasFault ctx.S Fault.ListingHugeNumbers

            let entries =
                messages
                |> List.map (fun (n, m) ->
                    let size =
                        if huge then
                            m.Content.Length + 4294967296L
                        else
                            m.Content.Length

                    n, $"{n} {size}")
                |> listingFaults ctx.S

            multiLine ctx $"{messages.Length} messages ({total} octets)" (entries |> List.map snd)
        | "LIST", [ arg ] ->
            match message ctx t arg with
            | Some(n, m) -> ok ctx $"{n} {m.Content.Length}"
            | None -> ()
        | "UIDL", [] when p.Uidl ->
            let sameUid = hasFault ctx.S Fault.DuplicateUids
            let messages = live t

            let entries =
                messages
                |> List.map (fun (n, m) ->
                    let uid = if sameUid then (snd messages.Head).Uid else m.Uid
                    n, $"{n} {uid}")
                |> listingFaults ctx.S

            multiLine ctx "Unique-ID listing follows" (entries |> List.map snd)
        | "UIDL", [ arg ] when p.Uidl ->
            match message ctx t arg with
            | Some(n, m) -> ok ctx $"{n} {m.Uid}"
            | None -> ()
        | "RETR", [ arg ] ->
            match message ctx t arg with
            | Some(n, m) -> retrieve ctx verb n m None
            | None -> ()
        | "TOP", [ arg; lines ] when p.Top ->
            match parseNumber lines with
            | None -> send ctx "-ERR Invalid number of lines."
            | Some lines ->
                match message ctx t arg with
                | Some(n, m) -> retrieve ctx verb n m (Some(int64 lines))
                | None -> ()
        | "DELE", [ arg ] ->
            match message ctx t arg with
            | Some(n, _) ->
                ctx.S <-
                    { ctx.S with
                        Phase = ServerPhase.Transaction { t with Deleted = t.Deleted.Add n }
                    }

                ok ctx $"Message {n} deleted."
            | None -> ()
        | "NOOP", [] -> ok ctx ""
        | "RSET", [] ->
            let t = { t with Deleted = Set.empty }

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Transaction t
                }

            let messages = live t

            ok
                ctx
                $"Maildrop has {messages.Length} messages ({messages |> List.sumBy (fun (_, m) -> m.Content.Length)} octets)."
        | "CAPA", [] -> capa ctx
        | "LANG", _ -> lang ctx args
        | "QUIT", [] ->
            // RFC 1939 §6: the UPDATE state removes the marked messages, then +OK.
            let keys = t.Deleted |> Set.map (fun n -> t.Snapshot.Messages[n - 1].Key)
            ctx.Out.Add(ServerOutput.Commit(t.Snapshot.User, keys))
            ok ctx p.QuitText
            ctx.Out.Add ServerOutput.Close

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Closed
                }
        | "TOP", _ when not p.Top -> send ctx "-ERR Unknown command."
        | "UIDL", _ when not p.Uidl -> send ctx "-ERR Unknown command."
        | ("USER" | "PASS" | "APOP" | "AUTH" | "STLS" | "UTF8" | "RPOP"), _ -> send ctx "-ERR Already logged in."
        | ("STAT" | "LIST" | "RETR" | "DELE" | "NOOP" | "RSET" | "TOP" | "UIDL" | "QUIT"), _ ->
            send ctx "-ERR Invalid arguments."
        | _ -> privateCommand ctx verb

    // ---- command lines ----

    /// The verbs a line outside an exchange may start with and still be shown: the POP3 commands
    /// (the client core's own list) and qmail's LAST.
    let private knownVerbs = Pop3Functional.Core.Request.Reserved.Add "LAST"

    /// The line for transcripts: passwords and SASL data never appear.
    let private redacted (s: ServerSession) (line: string) =
        // Judged on whitespace-separated tokens, however the line is spaced: a secret must not
        // reach the transcript because a client used two spaces or a tab.
        let tokens = line.Split([| ' '; '\t' |], StringSplitOptions.RemoveEmptyEntries)

        let first =
            if tokens.Length > 0 then
                tokens[0].ToUpperInvariant()
            else
                ""

        match s.Phase with
        | ServerPhase.SaslExchange _ -> "[SASL response redacted]"
        | _ when first = "PASS" -> "PASS [redacted]"
        | _ when first = "APOP" ->
            if tokens.Length >= 2 then
                $"APOP {tokens[1]} [redacted]"
            else
                "APOP [redacted]"
        | _ when first = "AUTH" && tokens.Length > 2 -> $"AUTH {tokens[1]} [redacted]"
        // A lone word that is no command: most likely a SASL response the server did not wait
        // for (a two-line AUTH refused, or pipelined behind an AUTH that failed), so a token or
        // a password hash; it is not shown.
        | _ when
            tokens.Length = 1
            && tokens[0].Length >= 8
            && not (knownVerbs.Contains first)
            && not (s.Settings.Personality.PrivateCommands.ContainsKey first)
            ->
            "[unrecognised line redacted]"
        | _ -> line

    /// An -ERR ends an AUTH exchange for the client (RFC 5034 §4), so it ends it here too.
    let private endSasl (ctx: Ctx) =
        match ctx.S.Phase with
        | ServerPhase.SaslExchange _ ->
            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Authorization None
                }
        | _ -> ()

    let private commandLine (ctx: Ctx) (lineBytes: ReadOnlySpan<byte>) =
        // Command lines are ASCII, or UTF-8 after the UTF8 command (RFC 6856 §2); invalid octets
        // become U+FFFD, which no user name or password contains, so they simply fail.
        let line = Encoding.UTF8.GetString lineBytes
        let s = ctx.S

        let verb, rest =
            match s.Phase with
            | ServerPhase.SaslExchange _ -> "", line
            | _ ->
                let space = line.IndexOf ' '

                if space < 0 then
                    line.ToUpperInvariant(), ""
                else
                    line.Substring(0, space).ToUpperInvariant(), line.Substring(space + 1)

        let args = rest.Split(' ', StringSplitOptions.RemoveEmptyEntries) |> List.ofArray

        ctx.Out.Add(ServerOutput.Heard(redacted s line))

        ctx.S <-
            { s with
                Commands = s.Commands + 1
                VerbCounts =
                    if verb = "" then
                        s.VerbCounts
                    else
                        s.VerbCounts.Add(verb, verbIndex s verb + 1)
            }

        match replyFault ctx.S verb with
        | Some fault ->
            if not (fault.IsSilence || fault.IsNeverEndingLine) then
                endSasl ctx

            applyReplyFault ctx fault

            if verb = "QUIT" && not ctx.S.Phase.IsSilent then
                match ctx.S.Phase with
                | ServerPhase.Transaction t -> ctx.Out.Add(ServerOutput.Release t.Snapshot.User)
                | _ -> ()

                ctx.Out.Add ServerOutput.Close

                ctx.S <-
                    { ctx.S with
                        Phase = ServerPhase.Closed
                    }
        | None ->
            match ctx.S.Phase with
            | ServerPhase.Authorization pendingUser -> authorization ctx pendingUser verb args rest
            | ServerPhase.SaslExchange(mechanism, state, nonce, salt) ->
                saslResponse ctx mechanism state (contextOf ctx.S nonce salt) line
            | ServerPhase.Transaction t -> transaction ctx t verb args
            | _ -> ()

    let private canProcess (s: ServerSession) =
        match s.Phase with
        | ServerPhase.Authorization _
        | ServerPhase.SaslExchange _
        | ServerPhase.Transaction _ -> true
        | _ -> false

    let private lineLimit (s: ServerSession) =
        match s.Phase with
        | ServerPhase.SaslExchange _ -> s.Settings.MaxSaslResponseOctets
        | _ -> s.Settings.MaxCommandOctets

    /// The most octets held while the maildrop opens (commands pipelined behind the login).
    [<Literal>]
    let MaxHeldOctets = 1_048_576

    /// Processes every complete line in Pending while the phase allows it.
    let private drain (ctx: Ctx) =
        // Lines are taken from one array by offset and the rest is kept once at the end: a read
        // holding hundreds of pipelined commands costs linear work, not a copy per command.
        let buffer = ctx.S.Pending
        let mutable start = 0
        let mutable go = true

        while go && canProcess ctx.S do
            let lf = Array.IndexOf(buffer, 10uy, start)
            let limit = lineLimit ctx.S

            if lf < 0 then
                if buffer.Length - start > limit then
                    // RFC 2449 §4: commands are at most 255 octets; answer once, drop the rest of it.
                    send ctx "-ERR Line too long."
                    endSasl ctx

                    ctx.S <-
                        { ctx.S with
                            Pending = [||]
                            Discarding = true
                        }

                go <- false
            else
                let line = ReadOnlySpan(buffer, start, lf - start)

                let line =
                    if line.Length > 0 && line[line.Length - 1] = 13uy then
                        line.Slice(0, line.Length - 1)
                    else
                        line

                let tooLong = lf + 1 - start > limit
                let wasDiscarding = ctx.S.Discarding
                start <- lf + 1

                if wasDiscarding then
                    ctx.S <- { ctx.S with Discarding = false }
                elif tooLong then
                    send ctx "-ERR Line too long."
                    endSasl ctx
                elif line.IndexOf 0uy >= 0 then
                    send ctx "-ERR NUL in command line."
                    endSasl ctx
                else
                    commandLine ctx line

                // STLS drops what follows it (RFC 2595 §4) by replacing Pending: stop reading it.
                if not (obj.ReferenceEquals(ctx.S.Pending, buffer)) then
                    go <- false

        if obj.ReferenceEquals(ctx.S.Pending, buffer) && start > 0 then
            ctx.S <-
                { ctx.S with
                    Pending = if start >= buffer.Length then [||] else buffer[start..]
                }

    let private received (ctx: Ctx) (bytes: ReadOnlySpan<byte>) =
        match ctx.S.Phase with
        | ServerPhase.AwaitingTls
        | ServerPhase.Silent _
        | ServerPhase.Closed -> ()
        | _ ->
            let incoming =
                if ctx.S.Discarding then
                    // Still inside an over-long line: keep only what follows its end.
                    let lf = bytes.IndexOf 10uy

                    if lf < 0 then
                        ReadOnlySpan<byte>.Empty
                    else
                        ctx.S <- { ctx.S with Discarding = false }
                        bytes.Slice(lf + 1)
                else
                    bytes

            if not incoming.IsEmpty then
                let pending = Array.zeroCreate<byte>(ctx.S.Pending.Length + incoming.Length)
                ctx.S.Pending.CopyTo(pending, 0)
                incoming.CopyTo(Span(pending, ctx.S.Pending.Length, incoming.Length))
                ctx.S <- { ctx.S with Pending = pending }

            // While the maildrop opens nothing is read, so nothing bounds a line yet: a client
            // that pipelines more than this behind its login loses the excess, not our memory.
            if ctx.S.Phase.IsOpeningMaildrop && ctx.S.Pending.Length > MaxHeldOctets then
                ctx.S <-
                    { ctx.S with
                        Pending = [||]
                        Discarding = true
                    }

            drain ctx

    let private maildropOpened (ctx: Ctx) (result: Result<MaildropSnapshot, OpenRefusal>) =
        match ctx.S.Phase, result with
        | ServerPhase.OpeningMaildrop _, Ok snapshot ->
            let t =
                {
                    Snapshot = snapshot
                    Deleted = Set.empty
                }

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Transaction t
                }

            let total = snapshot.Messages |> Array.sumBy (fun m -> m.Content.Length)
            ok ctx $"Logged in; maildrop has {snapshot.Messages.Length} messages ({total} octets)."
            drain ctx
        | ServerPhase.OpeningMaildrop _, Error refusal ->
            match refusal with
            | OpenRefusal.InUse -> err ctx (Some "IN-USE") "Mailbox is locked by another session."
            | OpenRefusal.LoginDelay remaining ->
                err ctx (Some "LOGIN-DELAY") $"Logged in too recently; wait {ceil remaining.TotalSeconds} seconds."
            | OpenRefusal.NoSuchUser -> err ctx (Some "AUTH") "Authentication failed."

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Authorization None
                }

            drain ctx
        | _, Ok snapshot ->
            // The client left while the maildrop was opening: give the lock back.
            ctx.Out.Add(ServerOutput.Release snapshot.User)
        | _ -> ()

    let private endOfStream (ctx: Ctx) =
        match ctx.S.Phase with
        | ServerPhase.Transaction t ->
            // RFC 1939 §6: without QUIT there is no UPDATE state; nothing is removed.
            ctx.Out.Add(ServerOutput.Release t.Snapshot.User)
        | ServerPhase.Silent(Some user) -> ctx.Out.Add(ServerOutput.Release user)
        | _ -> ()

        match ctx.S.Phase with
        | ServerPhase.Closed -> ()
        | _ ->
            ctx.Out.Add ServerOutput.Close

            ctx.S <-
                { ctx.S with
                    Phase = ServerPhase.Closed
                }

    /// Advances the session by one input. Never throws on any bytes.
    let step (session: ServerSession) (input: ServerInput) : ServerSession * ServerOutput list =
        let ctx = { S = session; Out = ResizeArray() }

        match input with
        | ServerInput.Received bytes -> received ctx bytes.Span
        | ServerInput.EndOfStream -> endOfStream ctx
        | ServerInput.TlsEstablished channelBinding ->
            match ctx.S.Phase with
            | ServerPhase.AwaitingTls ->
                ctx.S <-
                    { ctx.S with
                        Phase = ServerPhase.Authorization None
                        TlsActive = true
                        ChannelBinding = channelBinding
                        Pending = [||]
                    }
            | _ -> ()
        | ServerInput.MaildropOpened result -> maildropOpened ctx result

        ctx.S, List.ofSeq ctx.Out
