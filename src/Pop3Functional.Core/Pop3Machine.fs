namespace Pop3Functional.Core

open System
open System.Collections.Generic
open System.Runtime.InteropServices

/// What a Pop3Output asks of the shell.
type Pop3OutputKind =
    /// Write Bytes to the connection.
    | Send = 0
    /// Handshake TLS now, then call TlsEstablished; feed nothing before.
    | StartTls = 1
    /// Something happened; see EventKind.
    | Event = 2
    /// Close the connection.
    | Close = 3

/// The kind of an event output.
type Pop3EventKind =
    /// Not an event: the output is Send, StartTls or Close.
    | None = 0
    /// The server's greeting: Text, ResponseCode, ApopAvailable (RFC 1939 §4).
    | Greeting = 1
    /// A CAPA answer, the core's own included: Capabilities (RFC 2449 §5).
    | CapabilitiesReceived = 2
    /// Negotiation is over; log in now: Capabilities, ApopAvailable, Text.
    | AuthorizationReady = 3
    /// A request got +OK: RequestId and the fields for its command (Count, ListEntries, ...).
    | Answered = 4
    /// A slice of a RETR or TOP body in Bytes, valid until the next Feed (or Detach it).
    | BodyData = 5
    /// The body is complete: Octets delivered. The request's last event.
    | BodyEnded = 6
    /// A SASL challenge in Challenge; answer with RespondSasl or CancelSasl (RFC 5034 §4).
    | SaslChallenge = 7
    /// The server answered -ERR: Failure. The session goes on.
    | Rejected = 8
    /// The request was refused before any byte was sent: Failure. The session is unchanged.
    | Refused = 9
    /// The request cannot complete because the session failed: Failure.
    | Aborted = 10
    /// The server needed an enabled quirk: Quirk. Reported once per session.
    | QuirkTolerated = 11
    /// The session failed (protocol violation, closed connection, write failure): Failure. Sticky.
    | Failed = 12
    /// A RETR delivered another size than LIST announced: Message, ListedOctets, Octets
    /// (delivered). Informational, just before BodyEnded (DESIGN §9: Courier, Exchange).
    | SizeMismatch = 13

/// The four error kinds of DESIGN §4.
type Pop3ErrorKind =
    /// The caller asked for something illegal; nothing was sent and the session is unchanged.
    | Usage = 0
    /// The server answered -ERR; the session goes on where the protocol allows.
    | Server = 1
    /// The server broke the protocol; the session failed.
    | Protocol = 2
    /// The connection failed, as reported by the shell.
    | Transport = 3

/// An error as C# sees it: a kind, a stable code, a message, and the details of each kind.
[<Sealed>]
type Pop3Failure internal (error: Pop3Error) =
    /// The F# error value (F# callers use Session.step, which gives it directly).
    member internal _.Error = error

    /// Which of the four kinds the error is; decides whether the session can go on.
    member _.Kind =
        match error with
        | Pop3Error.Usage _ -> Pop3ErrorKind.Usage
        | Pop3Error.Server _ -> Pop3ErrorKind.Server
        | Pop3Error.Protocol _ -> Pop3ErrorKind.Protocol
        | Pop3Error.Transport _ -> Pop3ErrorKind.Transport

    /// A stable code: the usage or protocol error kind ("WrongState", "LineTooLong"), the response
    /// code for server errors ("IN-USE", or "ERR" when none), "Transport" for transport errors.
    member _.Code =
        match error with
        | Pop3Error.Usage e -> string e.Kind
        | Pop3Error.Protocol e -> string e.Kind
        | Pop3Error.Server e ->
            match e.Code with
            | Some c -> c.Text
            | None -> "ERR"
        | Pop3Error.Transport _ -> "Transport"

    /// The command the error belongs to, or "" when none.
    member _.Command =
        match error with
        | Pop3Error.Usage e -> e.Command
        | Pop3Error.Protocol e -> e.Command
        | Pop3Error.Server e -> e.Command
        | Pop3Error.Transport e -> e.Operation

    /// The server's text, for server errors; null otherwise.
    member _.ServerText =
        match error with
        | Pop3Error.Server e -> e.Text
        | _ -> null

    /// A sentence a person can act on; never contains a secret, server text has controls escaped.
    member _.Message = error.Message

    /// Message, so the failure prints as a sentence.
    override _.ToString() = error.Message

/// A request for Pop3Machine.Submit. Build one with the static methods; arguments are checked at Submit.
[<Sealed>]
type Pop3Request internal (request: Request) =
    member internal _.Request = request
    /// The command keyword ("RETR").
    member _.Keyword = request.Keyword
    /// USER name (RFC 1939 §7); PASS or RPOP follows after its +OK.
    static member User(name: string) = Pop3Request(Request.User name)
    /// PASS (RFC 1939 §7), after USER. Refused over plaintext unless AllowPlaintextCredentials.
    static member Pass(password: Secret) = Pop3Request(Request.Pass password)
    /// APOP (RFC 1939 §7): only the MD5 digest of the greeting's timestamp and the secret is sent.
    static member Apop(name: string, secret: Secret) = Pop3Request(Request.Apop(name, secret))
    /// RPOP user (RFC 1081), after USER; obsolete, kept for poplib parity.
    static member Rpop(user: string) = Pop3Request(Request.Rpop user)
    /// STAT (RFC 1939 §5): message count and maildrop size, deleted messages excluded.
    static member Stat() = Pop3Request Request.Stat
    /// LIST (RFC 1939 §5): the size of every message not marked deleted.
    static member List() = Pop3Request(Request.List None)
    /// LIST msg (RFC 1939 §5): the size of one message.
    static member List(message: uint64) = Pop3Request(Request.List(Some message))
    /// RETR msg (RFC 1939 §5): the message streams as BodyData outputs, then BodyEnded.
    static member Retr(message: uint64) = Pop3Request(Request.Retr message)
    /// DELE msg (RFC 1939 §5): marks the message; only +OK to QUIT commits the deletion.
    static member Dele(message: uint64) = Pop3Request(Request.Dele message)
    /// NOOP (RFC 1939 §5): keeps the connection alive.
    static member Noop() = Pop3Request Request.Noop
    /// RSET (RFC 1939 §5): clears every deletion mark of this session.
    static member Rset() = Pop3Request Request.Rset
    /// QUIT (RFC 1939 §6): in the transaction state its +OK commits the deletions.
    static member Quit() = Pop3Request Request.Quit

    /// TOP msg n (RFC 1939 §7): the headers and the first n body lines, streamed like RETR.
    static member Top(message: uint64, lines: uint64) =
        Pop3Request(Request.Top(message, lines))

    /// UIDL (RFC 1939 §7): the unique id of every message not marked deleted.
    static member Uidl() = Pop3Request(Request.Uidl None)
    /// UIDL msg (RFC 1939 §7): the unique id of one message.
    static member Uidl(message: uint64) = Pop3Request(Request.Uidl(Some message))
    /// CAPA (RFC 2449 §5). The core sends it itself after the greeting, after STLS and (if supported) login.
    static member Capa() = Pop3Request Request.Capa
    /// STLS (RFC 2595 §4): upgrade to TLS; a StartTls output asks the shell for the handshake.
    static member Stls() = Pop3Request Request.Stls
    /// UTF8 (RFC 6856 §2): switch to UTF-8 mode; authorization state only.
    static member Utf8() = Pop3Request Request.Utf8
    /// LANG (RFC 6856 §3): list the languages the server offers for its texts.
    static member Lang() = Pop3Request(Request.Lang None)
    /// LANG tag (RFC 6856 §3): choose the language of the server's texts.
    static member Lang(tag: string) = Pop3Request(Request.Lang(Some tag))

    /// AUTH mechanism (RFC 5034 §4) without an initial response; challenges arrive as SaslChallenge.
    static member Auth(mechanism: string) =
        Pop3Request(Request.Auth(mechanism, None))

    /// AUTH mechanism with an initial response (RFC 5034 §4); null means none, an empty secret sends "=".
    static member Auth(mechanism: string, initialResponse: Secret) =
        Pop3Request(Request.Auth(mechanism, Option.ofObj initialResponse))

    /// AUTH with a mechanism the core runs (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256 and
    /// their -PLUS variants): it answers every challenge itself and, for SCRAM, checks the server's
    /// signature before the login succeeds. The nonce is the SCRAM client nonce (RFC 5802 §5.1):
    /// the caller generates it, at least 16 printable ASCII characters other than ',' from a
    /// cryptographic random source, fresh for every request (the core has no randomness).
    static member Authenticate(mechanism: string, user: string, password: Secret, nonce: string) =
        Pop3Request(
            Request.Authenticate(mechanism, SaslCredentials.Password(user, password, None), SaslInputs.WithNonce nonce)
        )

    /// AUTH with a mechanism the core runs, acting as authorizationId (PLAIN, SCRAM; null for none).
    static member Authenticate
        (mechanism: string, user: string, password: Secret, authorizationId: string, nonce: string)
        =
        Pop3Request(
            Request.Authenticate(
                mechanism,
                SaslCredentials.Password(user, password, Option.ofObj authorizationId),
                SaslInputs.WithNonce nonce
            )
        )

    /// AUTH OAUTHBEARER (RFC 7628) or XOAUTH2 with an OAuth 2 access token, run by the core.
    static member AuthenticateOAuth2(mechanism: string, user: string, token: Secret) =
        Pop3Request(Request.Authenticate(mechanism, SaslCredentials.OAuth2(user, token), SaslInputs.WithNonce ""))

    /// AUTH OAUTHBEARER or XOAUTH2 with the server's host and port, which OAUTHBEARER sends
    /// (RFC 7628 §3.1; host null or port 0 to omit either).
    static member AuthenticateOAuth2(mechanism: string, user: string, token: Secret, host: string, port: int) =
        Pop3Request(
            Request.Authenticate(
                mechanism,
                SaslCredentials.OAuth2(user, token),
                {
                    Nonce = ""
                    Host = Option.ofObj host
                    Port = (if port = 0 then None else Some port)
                }
            )
        )

    /// An extension command (RFC 2449 §8; X-keywords are private): a keyword of three or four
    /// ASCII letters or digits, not one the core has a request for, and token arguments. With
    /// `multiline`, a +OK is followed by lines up to "." (answered in Pop3Output.Lines).
    static member Extension(keyword: string, arguments: IEnumerable<string>, multiline: bool) =
        Pop3Request(
            Request.Extension(
                keyword,
                (if isNull arguments then
                     Unchecked.defaultof<_>
                 else
                     List.ofSeq arguments),
                multiline
            )
        )

    /// The command keyword, never the arguments (they may be secret).
    override _.ToString() = request.Keyword

/// Capabilities as C# sees them.
[<Sealed>]
type Pop3Capabilities internal (caps: Capabilities) =
    /// TOP is supported (RFC 2449 §6.1).
    member _.Top = caps.Top
    /// USER/PASS login is supported (RFC 2449 §6.2).
    member _.User = caps.User
    /// The SASL mechanisms offered, for AUTH (RFC 2449 §6.3, RFC 5034).
    member _.SaslMechanisms: IReadOnlyList<string> = caps.Sasl |> Array.ofList :> _
    /// Response codes in brackets may be sent (RFC 2449 §6.4).
    member _.RespCodes = caps.RespCodes
    /// A login refused for bad credentials carries [AUTH] (RFC 3206 §6).
    member _.AuthRespCode = caps.AuthRespCode
    /// The server accepts pipelined commands (RFC 2449 §6.6); the machine uses it when allowed.
    member _.Pipelining = caps.Pipelining
    /// UIDL is supported (RFC 2449 §6.8).
    member _.Uidl = caps.Uidl
    /// STLS is offered (RFC 2595 §4).
    member _.Stls = caps.Stls
    /// LANG is supported (RFC 6856 §3).
    member _.Lang = caps.Lang
    /// UTF8 is offered, with or without USER (RFC 6856 §2).
    member _.Utf8 = caps.Utf8.IsSome
    /// UTF8 USER: the server accepts UTF-8 user names and passwords (RFC 6856 §2).
    member _.Utf8User = (caps.Utf8 = Some true)
    /// The IMPLEMENTATION text, or null.
    member _.Implementation = Option.toObj caps.Implementation

    /// LOGIN-DELAY seconds, or null.
    member _.LoginDelaySeconds =
        caps.LoginDelay |> Option.map _.Seconds |> Option.toNullable

    /// True when EXPIRE was sent as NEVER.
    member _.ExpireNever = (caps.Expire |> Option.exists (fun e -> e.Days.IsNone))
    /// EXPIRE days, or null (also null for NEVER).
    member _.ExpireDays = caps.Expire |> Option.bind _.Days |> Option.toNullable
    /// True when LOGIN-DELAY carried the USER suffix: the value may differ per user (RFC 2449 §6.5).
    member _.LoginDelayPerUser = caps.LoginDelay |> Option.exists _.PerUser
    /// True when EXPIRE carried the USER suffix: the value may differ per user (RFC 2449 §6.7).
    member _.ExpirePerUser = caps.Expire |> Option.exists _.PerUser

    /// Capabilities this version does not know, or whose arguments did not parse, as sent.
    member _.Other: IReadOnlyList<string> =
        caps.Other
        |> List.map (fun (tag, args) -> String.Join(" ", tag :: args))
        |> Array.ofList
        :> _

    /// The capability lines as received, unknown ones included.
    member _.Lines: IReadOnlyList<string> = caps.Lines |> Array.ofList :> _
    /// The F# value (F# callers use Session.step, which gives it directly).
    member internal _.Value = caps

/// One output of Pop3Machine. Which properties are set depends on Kind and EventKind.
[<Sealed>]
type Pop3Output internal (kind: Pop3OutputKind, eventKind: Pop3EventKind) =
    /// What the shell must do: send, start TLS, handle an event or close.
    member _.Kind = kind
    /// Which event this is when Kind is Event; None otherwise.
    member _.EventKind = eventKind
    /// The request the event belongs to (0 when none).
    member val RequestId = 0L with get, internal set
    /// Send: the command bytes. BodyData: the body slice (valid until the next Feed).
    member val Bytes = ReadOnlyMemory<byte>.Empty with get, internal set
    /// Send: the command line with secrets redacted, safe to log.
    member val LogText: string = null with get, internal set
    /// Answered: the status text. Greeting: the greeting text.
    member val Text: string = null with get, internal set
    /// Answered, Greeting: the bracketed response code without brackets, or null.
    member val ResponseCode: string = null with get, internal set
    /// Rejected, Refused, Aborted, Failed.
    member val Failure: Pop3Failure = Unchecked.defaultof<_> with get, internal set
    /// QuirkTolerated: the quirk's name ("bare-lf").
    member val Quirk: string = null with get, internal set
    /// BodyEnded, SizeMismatch: octets delivered. Answered STAT or login: the maildrop octets.
    member val Octets = 0UL with get, internal set
    /// SizeMismatch: the message number.
    member val Message = 0UL with get, internal set
    /// SizeMismatch: the size LIST announced.
    member val ListedOctets = 0UL with get, internal set
    /// Answered STAT or login: the message count.
    member val Count = 0UL with get, internal set
    /// Answered LIST (one or all).
    member val ListEntries: IReadOnlyList<ListEntry> = Unchecked.defaultof<_> with get, internal set
    /// Answered UIDL (one or all).
    member val UidEntries: IReadOnlyList<UidEntry> = Unchecked.defaultof<_> with get, internal set
    /// Answered LANG listing.
    member val Languages: IReadOnlyList<LanguageEntry> = Unchecked.defaultof<_> with get, internal set
    /// Answered extension command: its lines (dot-unstuffed; empty for a single-line reply).
    member val Lines: IReadOnlyList<string> = Unchecked.defaultof<_> with get, internal set
    /// CapabilitiesReceived, AuthorizationReady, Answered CAPA.
    member val Capabilities: Pop3Capabilities = Unchecked.defaultof<_> with get, internal set
    /// SaslChallenge: the decoded challenge.
    member val Challenge: byte[] = null with get, internal set
    /// AuthorizationReady: APOP can be used.
    member val ApopAvailable = false with get, internal set
    /// Answered QUIT: the server entered UPDATE; DeletionsCommitted lists what it removed.
    member val UpdateCompleted = false with get, internal set
    /// Answered QUIT: the messages whose deletion the server confirmed, ascending.
    member val DeletionsCommitted: IReadOnlyList<uint64> = Unchecked.defaultof<_> with get, internal set
    /// Answered to a login: true.
    member val LoggedIn = false with get, internal set
    /// The F# event, for F# callers and diagnostics.
    member val internal Source: Output = Output.Close with get, set

    /// A copy whose Bytes no longer point into the fed buffer: keep it past the next Feed.
    member this.Detach() : Pop3Output =
        let copy = this.MemberwiseClone() :?> Pop3Output
        copy.Bytes <- ReadOnlyMemory(this.Bytes.ToArray())
        copy

    /// A short line for logs: "Send" and the redacted command, or the event kind and request id.
    override this.ToString() =
        match kind with
        | Pop3OutputKind.Send -> "Send " + this.LogText
        | Pop3OutputKind.Event -> $"{eventKind} #{this.RequestId}"
        | _ -> string kind

/// The C#-friendly face of the pure core: feed bytes and requests, then drain outputs with
/// TryDequeue until it returns false. Not thread-safe; one machine per connection. No I/O.
/// Requests are accepted once negotiation is over: log in after the AuthorizationReady event
/// (greeting, CAPA, and STLS when required are the core's own), and send transaction commands
/// after the login request is Answered (the core's CAPA and STAT fix the snapshot first).
/// Earlier requests are Refused with WrongState, and nothing is sent for them.
[<Sealed>]
type Pop3Machine private (initial: SessionState) =
    let mutable state = initial
    // Kept as the core's outputs and converted when taken: a caller that handles body slices
    // itself (the shell) pays for neither a Pop3Output nor an event per slice.
    let outputs = OutputBuffer()

    let convert (o: Output) : Pop3Output =
        let ev kind =
            Pop3Output(Pop3OutputKind.Event, kind, Source = o)

        match o with
        | Output.Send cmd ->
            Pop3Output(Pop3OutputKind.Send, Pop3EventKind.None, Bytes = cmd.Bytes, LogText = cmd.LogText, Source = o)
        | Output.StartTls -> Pop3Output(Pop3OutputKind.StartTls, Pop3EventKind.None, Source = o)
        | Output.Close -> Pop3Output(Pop3OutputKind.Close, Pop3EventKind.None, Source = o)
        | Output.Emit e ->
            match e with
            | Event.GreetingReceived g ->
                let r = ev Pop3EventKind.Greeting
                r.Text <- g.Text
                r.ResponseCode <- g.Code |> Option.map _.Text |> Option.toObj
                r.ApopAvailable <- g.ApopTimestamp.IsSome
                r
            | Event.CapabilitiesReceived caps ->
                ev Pop3EventKind.CapabilitiesReceived
                |> fun r ->
                    r.Capabilities <- Pop3Capabilities caps
                    r
            | Event.AuthorizationReady info ->
                let r = ev Pop3EventKind.AuthorizationReady
                r.Capabilities <- Pop3Capabilities info.Capabilities
                r.ApopAvailable <- info.ApopAvailable
                r.Text <- info.Greeting.Text
                r
            | Event.Answered(id, reply) ->
                let r = ev Pop3EventKind.Answered
                r.RequestId <- id

                let status (s: StatusLine) =
                    r.Text <- s.Text
                    r.ResponseCode <- s.Code |> Option.map _.Text |> Option.toObj

                match reply with
                | Reply.Ok s
                | Reply.MessageFollows s
                | Reply.Reset s -> status s
                | Reply.LoggedIn(s, snap) ->
                    status s
                    r.LoggedIn <- true
                    r.Count <- snap.Count
                    r.Octets <- snap.Octets
                | Reply.Stat st ->
                    r.Count <- st.Count
                    r.Octets <- st.Octets
                | Reply.Listing entries -> r.ListEntries <- Array.ofList entries
                | Reply.ListEntry entry -> r.ListEntries <- [| entry |]
                | Reply.UidListing entries -> r.UidEntries <- Array.ofList entries
                | Reply.UidEntry entry -> r.UidEntries <- [| entry |]
                | Reply.Capabilities caps -> r.Capabilities <- Pop3Capabilities caps
                | Reply.Languages langs -> r.Languages <- Array.ofList langs
                | Reply.Extension(s, lines) ->
                    status s
                    r.Lines <- Array.ofList lines
                | Reply.Quit q ->
                    r.Text <- q.Text
                    r.UpdateCompleted <- q.UpdateCompleted
                    r.DeletionsCommitted <- Array.ofList q.DeletionsCommitted

                r
            | Event.BodyData(id, data) ->
                ev Pop3EventKind.BodyData
                |> fun r ->
                    r.RequestId <- id
                    r.Bytes <- data
                    r
            | Event.BodyEnded(id, octets) ->
                ev Pop3EventKind.BodyEnded
                |> fun r ->
                    r.RequestId <- id
                    r.Octets <- octets
                    r
            | Event.SizeMismatch(id, message, listed, delivered) ->
                ev Pop3EventKind.SizeMismatch
                |> fun r ->
                    r.RequestId <- id
                    r.Message <- message
                    r.ListedOctets <- listed
                    r.Octets <- delivered
                    r
            | Event.SaslChallenge(id, challenge) ->
                ev Pop3EventKind.SaslChallenge
                |> fun r ->
                    r.RequestId <- id
                    r.Challenge <- challenge
                    r
            | Event.Rejected(id, err) ->
                ev Pop3EventKind.Rejected
                |> fun r ->
                    r.RequestId <- id
                    r.Failure <- Pop3Failure(Pop3Error.Server err)
                    r
            | Event.Refused(id, err) ->
                ev Pop3EventKind.Refused
                |> fun r ->
                    r.RequestId <- id
                    r.Failure <- Pop3Failure(Pop3Error.Usage err)
                    r
            | Event.Aborted(id, err) ->
                ev Pop3EventKind.Aborted
                |> fun r ->
                    r.RequestId <- id
                    r.Failure <- Pop3Failure err
                    r
            | Event.QuirkTolerated q ->
                ev Pop3EventKind.QuirkTolerated
                |> fun r ->
                    r.Quirk <- q.Name
                    r
            | Event.Failed err ->
                ev Pop3EventKind.Failed
                |> fun r ->
                    r.Failure <- Pop3Failure err
                    r

    let step input =
        state <- Session.stepInto outputs state input

    /// A machine for these options; it awaits the greeting (feed the server's first bytes next).
    new(options: Options) = Pop3Machine(Session.create options)

    /// A machine with the default options (implicit TLS, DESIGN §5 limits, quirks tolerated).
    new() = Pop3Machine(Options.Default)

    /// A machine over a connection that is already TLS (TlsMode.Implicit), with the TLS layer's
    /// tls-server-end-point data (RFC 5929 §4; null when unobtainable) for SCRAM-*-PLUS.
    static member CreateOverTls(options: Options, channelBinding: byte[]) =
        Pop3Machine(
            Session.createWithChannelBinding
                options
                (Option.ofObj channelBinding |> Option.map ChannelBinding.TlsServerEndPoint)
        )

    /// A machine over a connection that is already TLS (TlsMode.Implicit), with the TLS layer's
    /// channel-binding data of the given type (RFC 5929, RFC 9266; null when unobtainable).
    static member CreateOverTlsWithBinding(options: Options, channelBinding: ChannelBinding) =
        Pop3Machine(Session.createWithChannelBinding options (Option.ofObj (box channelBinding) |> Option.map unbox))

    /// A machine for a TLS mode with the default options otherwise.
    static member Create(tls: TlsMode, allowPlaintextCredentials: bool) =
        Pop3Machine(
            { Options.Default with
                Tls = tls
                AllowPlaintextCredentials = allowPlaintextCredentials
            }
        )

    /// Feeds bytes from the server. BodyData outputs point into them until the next call.
    member _.Feed(bytes: ReadOnlyMemory<byte>) = step (Input.Received bytes)

    /// Feeds bytes from the server (copied, so the array may be reused).
    member _.Feed(bytes: byte[], offset: int, count: int) =
        // The copy is what lets BodyData outputs outlive the caller's reuse of its read buffer.
        step (Input.Received(ReadOnlyMemory(bytes.AsSpan(offset, count).ToArray())))

    /// Reports that the server closed the connection.
    member _.FeedEndOfStream() = step Input.EndOfStream

    /// Submits a request under the caller's id (1 or above); refusals arrive as Refused outputs.
    member _.Submit(requestId: int64, request: Pop3Request) =
        if isNull (box request) then
            nullArg (nameof request)

        step (Input.Submit(requestId, request.Request))

    /// Answers the latest SASL challenge.
    member _.RespondSasl(response: Secret) = step (Input.SaslRespond response)

    /// Cancels the SASL exchange ("*", RFC 5034 §4).
    member _.CancelSasl() = step Input.SaslCancel

    /// Reports the TLS handshake complete, with tls-server-end-point data (RFC 5929 §4; may be null).
    member _.TlsEstablished(channelBinding: byte[]) =
        step (Input.TlsEstablished(Option.ofObj channelBinding |> Option.map ChannelBinding.TlsServerEndPoint))

    /// Reports the TLS handshake complete, with channel-binding data of the given type (RFC 5929,
    /// RFC 9266; null when unobtainable).
    member _.TlsEstablishedWithBinding(channelBinding: ChannelBinding) =
        step (Input.TlsEstablished(Option.ofObj (box channelBinding) |> Option.map unbox))

    /// Reports a failed write.
    member _.WriteFailed(operation: string, endpoint: string, message: string, exn: exn) =
        step (
            Input.WriteFailed
                {
                    Operation = operation
                    Endpoint = endpoint
                    Message = message
                    Exception = Option.ofObj exn
                }
        )

    /// Takes the next output, if any.
    member _.TryDequeue([<Out>] output: byref<Pop3Output>) =
        let mutable entry = Unchecked.defaultof<OutputEntry>

        if outputs.TryTake &entry then
            output <- convert (entry.ToOutput())
            true
        else
            output <- Unchecked.defaultof<_>
            false

    /// Takes the next output as the core's value, unconverted: a body slice has a null Output and
    /// comes as BodyId and Body (the shell's hot path: nothing allocated per slice).
    member internal _.TryDequeueEntry([<Out>] entry: byref<OutputEntry>) = outputs.TryTake &entry

    /// The C# form of a core output.
    member internal _.ToPublic(output: Output) : Pop3Output = convert output

    /// Chooses the login method once, after AuthorizationReady: the named mechanism (null for the
    /// automatic choice) checked against what the server offers, or the strongest usable one
    /// (SCRAM-*-PLUS, SCRAM, CRAM-MD5, APOP, then PLAIN, LOGIN and USER only over TLS unless
    /// plaintext credentials were allowed; OAUTHBEARER, then XOAUTH2 for tokens). method is a SASL
    /// mechanism name, "APOP" or "USER". A rejected login is never retried with a weaker method.
    member _.TryChooseLogin
        (
            credentialKind: SaslCredentialKind,
            mechanism: string,
            [<Out>] method: byref<string>,
            [<Out>] failure: byref<Pop3Failure>
        ) =
        match Session.chooseLogin state credentialKind (Option.ofObj mechanism) with
        | Ok m ->
            method <- m.Name
            failure <- Unchecked.defaultof<_>
            true
        | Error e ->
            method <- null
            failure <- Pop3Failure(Pop3Error.Usage e)
            false

    /// Outputs waiting to be taken.
    member _.PendingOutputs = outputs.Count

    /// The current state's name ("Transaction").
    member _.State = string state.Phase.Kind

    /// True once TLS protects the connection (from the start with Implicit TLS, after STLS otherwise).
    member _.IsTlsActive = state.TlsActive
    /// True when the session failed; every later request is aborted, so close the connection.
    member _.IsFailed = (state.Phase.Kind = PhaseKind.Failed)
    /// True when QUIT was answered; the shell may close the connection.
    member _.IsClosed = (state.Phase.Kind = PhaseKind.Closed)
    /// The latest capabilities (all false before CAPA or after CAPA -ERR).
    member _.Capabilities = Pop3Capabilities state.Capabilities

    /// Messages in the snapshot fixed at login, or null before login.
    member _.MessageCount =
        match state.Phase with
        | Phase.Transaction snap -> Nullable snap.Count
        | _ -> Nullable()

    /// The immutable F# session behind the machine (F# callers use Session directly).
    member internal _.Session = state
