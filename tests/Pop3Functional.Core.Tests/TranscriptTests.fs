/// Vendor-style dialogues replayed through the core (DESIGN §10). Every transcript is our own
/// wording, written from the facts in reference/peers.md §4, DESIGN §9 and the RFCs.
module Pop3Functional.Core.Tests.TranscriptTests

open System
open System.Collections.Generic
open System.Security.Cryptography
open System.Text
open Expecto
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

// ----- the transcript format ------------------------------------------------------------------

/// What an event in an Expect step must be.
type Ev =
    /// Exactly this event.
    | Is of Event
    /// An event satisfying the predicate (named for the failure message).
    | Where of string * (Event -> bool)

/// One step of a transcript.
type Step =
    /// A line the server sends; the transcript's line end (CRLF, or LF when bare) is added.
    | S of string
    /// The exact command line the client must have sent next (CRLF is always expected).
    | C of string
    /// A caller request.
    | Submit of RequestId * Request
    /// The caller's answer to a SASL challenge (the core base64-encodes it).
    | Respond of string
    /// The client must have asked for the TLS handshake next; the shell reports it done.
    | TlsUp
    /// The events since the previous Expect, one to one and in order.
    | Expect of Ev list
    /// The whole body delivered so far for a request, unstuffed (compared as UTF-8 text).
    | Body of RequestId * string

type Transcript =
    {
        Name: string
        Options: Options
        /// The server ends its lines with LF only (peers §4.1).
        BareLf: bool
        Steps: Step list
        Final: PhaseKind
    }

type Feeding =
    /// Each server line as one chunk.
    | LineChunks
    /// Every server byte as its own chunk.
    | OneByteAtATime

type Outcome =
    {
        Phase: PhaseKind
        /// Everything the core output, with body slices copied and merged.
        Log: Norm list
    }

let private utf8 = Encoding.UTF8

/// The Latin-1 view of a string's UTF-8 bytes: how Harness.normalize shows bytes.
let private wire (s: string) = text (utf8.GetBytes s)

let private describeEv (ev: Ev) =
    match ev with
    | Is e -> sprintf "%A" e
    | Where(name, _) -> name

/// Replays a transcript through Session.step, checking every client byte and every event.
let replay (feeding: Feeding) (t: Transcript) : Outcome =
    let eol = if t.BareLf then "\n" else "\r\n"
    let state = ref (Session.create t.Options)
    let log = ResizeArray<Norm>()
    let unclaimed = Queue<Norm>()
    let unchecked = ResizeArray<Event>()

    let fail (message: string) =
        failtestf "%s [%A]: %s\n--- so far ---\n%s" t.Name feeding message (String.Join("\n", render (List.ofSeq log)))

    let add (n: Norm) =
        match n with
        | NBody(id, chunk) ->
            match (if log.Count > 0 then Some log[log.Count - 1] else None) with
            | Some(NBody(prev, acc)) when prev = id -> log[log.Count - 1] <- NBody(id, acc + chunk)
            | _ -> log.Add n
        | NSend _
        | NStartTls ->
            log.Add n
            unclaimed.Enqueue n
        | NEvent e ->
            log.Add n
            unchecked.Add e
        | NClose -> log.Add n

    let input (i: Input) =
        let struct (next, outs) = Session.step state.Value i
        state.Value <- next
        normalize outs |> List.iter add

    // The transcript is one ordering of both sides: before the server speaks again, every byte
    // the client has sent must already have been claimed by a C step.
    let requireClaimed (before: string) =
        if unclaimed.Count > 0 then
            let extra = String.Join(" | ", render (List.ofSeq unclaimed))
            fail $"before {before}, the client sent {extra} that the transcript does not expect"

    for step in t.Steps do
        match step with
        | S line ->
            requireClaimed $"S: {line}"
            let bytes = utf8.GetBytes(line + eol)

            match feeding with
            | LineChunks -> input (Input.Received(ReadOnlyMemory bytes))
            | OneByteAtATime ->
                for b in bytes do
                    input (Input.Received(ReadOnlyMemory [| b |]))
        | C line ->
            if unclaimed.Count = 0 then
                fail $"expected the client to send {line}; it sent nothing"

            match unclaimed.Dequeue() with
            | NSend sentText when sentText = wire (line + "\r\n") -> ()
            | other -> fail $"expected the client to send {line}; it output {render [ other ]}"
        | Submit(id, request) -> input (Input.Submit(id, request))
        | Respond answer -> input (Input.SaslRespond(Secret.FromString answer))
        | TlsUp ->
            if unclaimed.Count = 0 || unclaimed.Dequeue() <> NStartTls then
                fail "expected the client to ask for the TLS handshake"

            requireClaimed "TLS established"
            input (Input.TlsEstablished None)
        | Expect expected ->
            let actual = List.ofSeq unchecked
            unchecked.Clear()

            let matches =
                actual.Length = expected.Length
                && List.forall2
                    (fun ev e ->
                        match ev with
                        | Is x -> x = e
                        | Where(_, p) -> p e)
                    expected
                    actual

            if not matches then
                fail (
                    sprintf
                        "events differ\nexpected:\n  %s\nactual:\n  %s"
                        (String.Join("\n  ", expected |> List.map describeEv))
                        (String.Join("\n  ", actual |> List.map (sprintf "%A")))
                )
        | Body(id, expected) ->
            let delivered =
                log
                |> Seq.choose (function
                    | NBody(i, b) when i = id -> Some b
                    | _ -> None)
                |> String.concat ""

            if delivered <> wire expected then
                fail $"body of request {id}: expected {wire expected}, got {delivered}"

    requireClaimed "the end of the transcript"

    if unchecked.Count > 0 then
        fail $"events not asserted by the transcript: %A{List.ofSeq unchecked}"

    if state.Value.Phase.Kind <> t.Final then
        fail $"final state {state.Value.Phase.Kind}, expected {t.Final}"

    let closes = log |> Seq.filter ((=) NClose) |> Seq.length
    let closedByNow = t.Final = PhaseKind.Closed || t.Final = PhaseKind.Failed

    if closes <> (if closedByNow then 1 else 0) then
        fail $"{closes} Close outputs"

    let closeAt = log.FindIndex(fun n -> n = NClose)

    if
        closeAt >= 0
        && log
           |> Seq.skip closeAt
           |> Seq.exists (function
               | NSend _
               | NStartTls -> true
               | _ -> false)
    then
        fail "the client sent something after Close"

    {
        Phase = state.Value.Phase.Kind
        Log = List.ofSeq log
    }

// ----- helpers for writing transcripts ------------------------------------------------------

let private ok text : StatusLine =
    {
        IsOk = true
        Code = None
        Text = text
    }

let private greeting text timestamp : Event =
    Event.GreetingReceived
        {
            Text = text
            Code = None
            ApopTimestamp = timestamp
        }

let private capsWhere name (p: Capabilities -> bool) =
    Where(
        "CapabilitiesReceived: " + name,
        function
        | Event.CapabilitiesReceived c -> p c
        | _ -> false
    )

let private readyWhere name (p: AuthorizationReady -> bool) =
    Where(
        "AuthorizationReady: " + name,
        function
        | Event.AuthorizationReady r -> p r
        | _ -> false
    )

let private quirk q = Is(Event.QuirkTolerated q)

let private loggedIn id text count octets =
    Is(
        Event.Answered(
            id,
            Reply.LoggedIn(
                ok text,
                {
                    Count = count
                    Octets = octets
                    Deleted = Set.empty
                    Confirmed = Set.empty
                }
            )
        )
    )

let private answeredOk id text =
    Is(Event.Answered(id, Reply.Ok(ok text)))

let private follows id text =
    Is(Event.Answered(id, Reply.MessageFollows(ok text)))

let private quit id text deleted =
    Is(
        Event.Answered(
            id,
            Reply.Quit
                {
                    Text = text
                    UpdateCompleted = true
                    DeletionsCommitted = deleted
                }
        )
    )

let private rejected id command code text =
    Is(
        Event.Rejected(
            id,
            {
                Command = command
                Code = code
                Text = text
            }
        )
    )

let private uid n (value: string) : UidEntry =
    {
        Number = n
        Uid = (MessageUid.TryCreate value).Value
    }

let private b64 (s: string) = Convert.ToBase64String(utf8.GetBytes s)

/// The server side of a multi-line body: each line dot-stuffed (RFC 1939 §3), then ".".
let private serve (lines: string list) =
    [
        for l in lines do
            S(if l.StartsWith "." then "." + l else l)
        S "."
    ]

/// The body the client must deliver for those lines: unstuffed, with the server's line ends.
let private bodyOf (eol: string) (lines: string list) =
    lines |> List.map (fun l -> l + eol) |> String.concat ""

let private octets (eol: string) lines =
    uint64 (utf8.GetByteCount(bodyOf eol lines))

let private ended id eol lines =
    Is(Event.BodyEnded(id, octets eol lines))

let private crlf = "\r\n"

// ----- Gmail ----------------------------------------------------------------------------------

let private gmailMessages =
    [
        [
            "Delivered-To: alice@gmail.com"
            "From: Bob <bob@example.org>"
            "Subject: lunch"
            ""
            "Noon at the usual place?"
        ]
        [
            "From: news@example.com"
            "Subject: digest"
            ""
            ".signature lines start with a dot"
            "..and so does this one"
        ]
        [ "From: carol@example.net"; "Subject: empty"; "" ]
    ]

/// Gmail: "+ " continuations; CAPA before login has SASL but no PIPELINING, after login the
/// reverse (peers §4.4, MailKit gmail capa1/capa2), so the core's CAPA after login turns
/// pipelining on and three RETRs go out together.
let gmail =
    let preLogin =
        [
            "USER"
            "RESP-CODES"
            "EXPIRE 0"
            "LOGIN-DELAY 300"
            "TOP"
            "UIDL"
            "X-GOOGLE-RICO"
            "SASL PLAIN XOAUTH2"
        ]

    let postLogin =
        [
            "USER"
            "RESP-CODES"
            "EXPIRE 0"
            "LOGIN-DELAY 300"
            "TOP"
            "UIDL"
            "X-GOOGLE-RICO"
            "PIPELINING"
        ]

    let m = gmailMessages

    {
        Name = "Gmail"
        Options = Options.Default
        BareLf = false
        Final = PhaseKind.Closed
        Steps =
            [
                S "+OK Gpop ready for requests from 198.51.100.23 x12mb3456789pab"
                Expect
                    [
                        Is(greeting "Gpop ready for requests from 198.51.100.23 x12mb3456789pab" None)
                    ]
                C "CAPA"
                S "+OK Capability list follows"
                for l in preLogin do
                    S l
                S "."
                Expect
                    [
                        capsWhere "Gmail before login" (fun c ->
                            c.User
                            && c.RespCodes
                            && c.Expire = Some { Days = Some 0UL; PerUser = false }
                            && c.LoginDelay = Some { Seconds = 300UL; PerUser = false }
                            && c.Top
                            && c.Uidl
                            && c.Sasl = [ "PLAIN"; "XOAUTH2" ]
                            && not c.Pipelining
                            && c.Other = [ "X-GOOGLE-RICO", [] ]
                            && c.Lines = preLogin)
                        readyWhere "implicit TLS, no APOP" (fun r ->
                            r.TlsActive && r.CapaSupported && not r.ApopAvailable)
                    ]
                Submit(1L, Request.Auth("PLAIN", None))
                C "AUTH PLAIN"
                S "+ "
                Expect [ Is(Event.SaslChallenge(1L, [||])) ]
                Respond "\000alice@gmail.com\000app-password-16ch"
                C(b64 "\000alice@gmail.com\000app-password-16ch")
                S "+OK Welcome."
                C "CAPA"
                Expect []
                S "+OK Capability list follows"
                for l in postLogin do
                    S l
                S "."
                Expect
                    [
                        capsWhere "Gmail after login: PIPELINING, no SASL" (fun c ->
                            c.Pipelining && c.Sasl.IsEmpty && c.Lines = postLogin)
                    ]
                C "STAT"
                S "+OK 3 412"
                Expect [ loggedIn 1L "Welcome." 3UL 412UL ]
                Submit(2L, Request.Retr 1UL)
                Submit(3L, Request.Retr 2UL)
                Submit(4L, Request.Retr 3UL)
                C "RETR 1"
                C "RETR 2"
                C "RETR 3"
                S "+OK message follows"
                yield! serve m[0]
                S "+OK message follows"
                yield! serve m[1]
                S "+OK message follows"
                yield! serve m[2]
                Expect
                    [
                        follows 2L "message follows"
                        ended 2L crlf m[0]
                        follows 3L "message follows"
                        ended 3L crlf m[1]
                        follows 4L "message follows"
                        ended 4L crlf m[2]
                    ]
                Body(2L, bodyOf crlf m[0])
                Body(3L, bodyOf crlf m[1])
                Body(4L, bodyOf crlf m[2])
                Submit(5L, Request.Quit)
                C "QUIT"
                S "+OK Farewell."
                Expect [ quit 5L "Farewell." [] ]
            ]
    }

/// Gmail refusing an XOAUTH2 token: a base64 JSON error challenge, answered with an empty line,
/// then -ERR [AUTH]; the session stays in the authorization state.
let gmailXoauth2Refused =
    let token = "user=alice@gmail.com\001auth=Bearer ya29.expired\001\001"

    let error =
        """{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"""

    {
        Name = "Gmail XOAUTH2 refused"
        Options = Options.Default
        BareLf = false
        Final = PhaseKind.Closed
        Steps =
            [
                S "+OK Gpop ready for requests from 198.51.100.23 q7mb1122334455xyz"
                Expect
                    [
                        Is(greeting "Gpop ready for requests from 198.51.100.23 q7mb1122334455xyz" None)
                    ]
                C "CAPA"
                S "+OK Capability list follows"
                S "USER"
                S "SASL PLAIN XOAUTH2"
                S "."
                Expect
                    [
                        capsWhere "SASL" (fun c -> c.Sasl = [ "PLAIN"; "XOAUTH2" ])
                        readyWhere "TLS" _.TlsActive
                    ]
                Submit(1L, Request.Auth("XOAUTH2", Some(Secret.FromString token)))
                C("AUTH XOAUTH2 " + b64 token)
                S("+ " + b64 error)
                Expect [ Is(Event.SaslChallenge(1L, utf8.GetBytes error)) ]
                Respond ""
                C ""
                S "-ERR [AUTH] Invalid credentials (Failure)"
                Expect [ rejected 1L "AUTH" (Some ResponseCode.Auth) "Invalid credentials (Failure)" ]
                Submit(2L, Request.Quit)
                C "QUIT"
                S "+OK Farewell."
                Expect
                    [
                        Is(
                            Event.Answered(
                                2L,
                                Reply.Quit
                                    {
                                        Text = "Farewell."
                                        UpdateCompleted = false
                                        DeletionsCommitted = []
                                    }
                            )
                        )
                    ]
            ]
    }

// ----- Outlook / Exchange ---------------------------------------------------------------------

let private exchangeMessage =
    [
        "Received: from DM6PR01MB1234.prod.exchangelabs.com"
        "From: Dana <dana@contoso.com>"
        "Subject: report"
        "MIME-Version: 1.0"
        ""
        "See attached."
    ]

/// Exchange: a bare "+OK" status line to CAPA, AUTH LOGIN with bare "+" continuations (empty
/// challenges, MailKit exchange/plus.txt), and LIST sizes that do not match RETR (peers §4.9).
let outlook =
    let capa = [ "TOP"; "UIDL"; "SASL NTLM GSSAPI PLAIN LOGIN"; "USER" ]

    {
        Name = "Outlook/Exchange"
        Options = Options.Default
        BareLf = false
        Final = PhaseKind.Closed
        Steps =
            [
                S "+OK The Microsoft Exchange POP3 service is ready."
                Expect [ Is(greeting "The Microsoft Exchange POP3 service is ready." None) ]
                C "CAPA"
                S "+OK"
                for l in capa do
                    S l
                S "."
                Expect
                    [
                        quirk Quirk.EmptyStatusText
                        capsWhere "Exchange" (fun c ->
                            c.Top
                            && c.Uidl
                            && c.User
                            && c.Sasl = [ "NTLM"; "GSSAPI"; "PLAIN"; "LOGIN" ]
                            && not c.Pipelining
                            && c.Other.IsEmpty)
                        readyWhere "TLS" _.TlsActive
                    ]
                Submit(1L, Request.Auth("LOGIN", None))
                C "AUTH LOGIN"
                S "+"
                Expect [ Is(Event.SaslChallenge(1L, [||])) ]
                Respond "dana@contoso.com"
                C(b64 "dana@contoso.com")
                S "+"
                Expect [ Is(Event.SaslChallenge(1L, [||])) ]
                Respond "Winter2024!"
                C(b64 "Winter2024!")
                S "+OK User successfully authenticated."
                C "CAPA"
                S "+OK"
                for l in capa do
                    S l
                S "."
                Expect [ capsWhere "same after login" (fun c -> c.Lines = capa) ]
                C "STAT"
                S "+OK 2 9321"
                Expect [ loggedIn 1L "User successfully authenticated." 2UL 9321UL ]
                Submit(2L, Request.List None)
                C "LIST"
                S "+OK 2 9321"
                S "1 4100"
                S "2 5221"
                S "."
                Expect
                    [
                        Is(
                            Event.Answered(
                                2L,
                                Reply.Listing [ { Number = 1UL; Octets = 4100UL }; { Number = 2UL; Octets = 5221UL } ]
                            )
                        )
                    ]
                Submit(3L, Request.Retr 1UL)
                C "RETR 1"
                S "+OK"
                yield! serve exchangeMessage
                // The body is far shorter than LIST said: an event, not an error.
                Expect
                    [
                        follows 3L ""
                        Is(Event.SizeMismatch(3L, 1UL, 4100UL, octets crlf exchangeMessage))
                        ended 3L crlf exchangeMessage
                    ]
                Body(3L, bodyOf crlf exchangeMessage)
                Submit(4L, Request.Quit)
                C "QUIT"
                S "+OK Microsoft Exchange Server POP3 server signing off."
                Expect [ quit 4L "Microsoft Exchange Server POP3 server signing off." [] ]
            ]
    }

// ----- Dovecot 2.3 ----------------------------------------------------------------------------

let private dovecotCapa =
    [
        "CAPA"
        "TOP"
        "UIDL"
        "RESP-CODES"
        "PIPELINING"
        "AUTH-RESP-CODE"
        "STLS"
        "USER"
        "SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256"
    ]

let private dovecotCapaTls = dovecotCapa |> List.filter ((<>) "STLS")

let private dovecotMessages =
    [
        [ "Return-Path: <ops@example.org>"; "Subject: one"; ""; "first" ]
        [ "Return-Path: <ops@example.org>"; "Subject: two"; ""; "second"; "."; "end" ]
        [ "Return-Path: <ops@example.org>"; "Subject: three"; ""; "third" ]
    ]

let private dovecotGreeting =
    "Dovecot ready. <2d3f.1.65f0a1b2.HtK3UqJ1IWdgA1DxrL8cNg==@mail.example.org>"

/// Dovecot with StartTlsRequired: CAPA, STLS, handshake, CAPA again, login; pipelined RETRs with
/// QUIT held back until the last body has fully arrived (DESIGN §9: Dovecot truncates otherwise).
let dovecotStls =
    let m = dovecotMessages

    {
        Name = "Dovecot STLS"
        Options =
            { Options.Default with
                Tls = TlsMode.StartTlsRequired
            }
        BareLf = false
        Final = PhaseKind.Closed
        Steps =
            [
                S("+OK " + dovecotGreeting)
                Expect
                    [
                        Is(
                            greeting
                                dovecotGreeting
                                (Some "<2d3f.1.65f0a1b2.HtK3UqJ1IWdgA1DxrL8cNg==@mail.example.org>")
                        )
                    ]
                C "CAPA"
                S "+OK"
                for l in dovecotCapa do
                    S l
                S "."
                Expect
                    [
                        quirk Quirk.EmptyStatusText
                        capsWhere "Dovecot before TLS" (fun c ->
                            c.Stls
                            && c.Top
                            && c.Uidl
                            && c.RespCodes
                            && c.AuthRespCode
                            && c.Pipelining
                            && c.User
                            && c.Sasl = [ "PLAIN"; "LOGIN"; "CRAM-MD5"; "SCRAM-SHA-1"; "SCRAM-SHA-256" ]
                            && c.Other = [ "CAPA", [] ])
                    ]
                // TLS is required: the core sends STLS on its own and nothing else.
                C "STLS"
                S "+OK Begin TLS negotiation now."
                Expect []
                TlsUp
                C "CAPA"
                S "+OK"
                for l in dovecotCapaTls do
                    S l
                S "."
                Expect
                    [
                        capsWhere "Dovecot over TLS" (fun c -> not c.Stls && c.Pipelining && c.Lines = dovecotCapaTls)
                        readyWhere "TLS up, timestamp discarded" (fun r ->
                            r.TlsActive && not r.ApopAvailable && r.Greeting.ApopTimestamp.IsSome)
                    ]
                Submit(1L, Request.Apop("alice", Secret.FromString "secret"))
                Expect
                    [
                        Where(
                            "Refused APOP: timestamp discarded by STLS",
                            function
                            | Event.Refused(1L, e) ->
                                e.Kind = UsageErrorKind.ApopUnavailable && e.Message.Contains "STLS"
                            | _ -> false
                        )
                    ]
                Submit(2L, Request.User "alice")
                C "USER alice"
                S "+OK"
                Expect [ answeredOk 2L "" ]
                Submit(3L, Request.Pass(Secret.FromString "correct horse"))
                C "PASS correct horse"
                S "+OK Logged in."
                // PIPELINING was offered before login: CAPA and STAT go out together.
                C "CAPA"
                C "STAT"
                S "+OK"
                for l in dovecotCapaTls do
                    S l
                S "."
                S "+OK 3 176"
                Expect [ capsWhere "after login" _.Pipelining; loggedIn 3L "Logged in." 3UL 176UL ]
                Submit(4L, Request.Dele 1UL)
                C "DELE 1"
                S "+OK Marked to be deleted."
                Expect [ answeredOk 4L "Marked to be deleted." ]
                Submit(5L, Request.Retr 2UL)
                Submit(6L, Request.Retr 3UL)
                Submit(7L, Request.Quit)
                C "RETR 2"
                C "RETR 3"
                // Each S step checks that QUIT has not been sent yet.
                S "+OK 64 octets"
                yield! serve m[1]
                S "+OK 57 octets"
                yield! serve m[2]
                C "QUIT"
                S "+OK Logging out, messages deleted."
                Expect
                    [
                        follows 5L "64 octets"
                        ended 5L crlf m[1]
                        follows 6L "57 octets"
                        ended 6L crlf m[2]
                        quit 7L "Logging out, messages deleted." [ 1UL ]
                    ]
                Body(5L, bodyOf crlf m[1])
                Body(6L, bodyOf crlf m[2])
            ]
    }

/// Dovecot with pop3_lock_session = yes: a second session gets -ERR [IN-USE] (DESIGN §9).
let dovecotInUse =
    {
        Name = "Dovecot IN-USE"
        Options = plain
        BareLf = false
        Final = PhaseKind.Closed
        Steps =
            [
                S("+OK " + dovecotGreeting)
                Expect
                    [
                        Where(
                            "greeting with timestamp",
                            function
                            | Event.GreetingReceived g -> g.ApopTimestamp.IsSome
                            | _ -> false
                        )
                    ]
                C "CAPA"
                S "+OK"
                for l in dovecotCapa do
                    S l
                S "."
                Expect
                    [
                        quirk Quirk.EmptyStatusText
                        capsWhere "Dovecot" _.Stls
                        readyWhere "plaintext with APOP" (fun r -> not r.TlsActive && r.ApopAvailable)
                    ]
                Submit(1L, Request.User "alice")
                C "USER alice"
                S "+OK"
                Submit(2L, Request.Pass(Secret.FromString "secret"))
                C "PASS secret"
                S "-ERR [IN-USE] Mailbox is locked by another POP3 session, try again later."
                Expect
                    [
                        answeredOk 1L ""
                        rejected
                            2L
                            "PASS"
                            (Some ResponseCode.InUse)
                            "Mailbox is locked by another POP3 session, try again later."
                    ]
                // Still in the authorization state: no CAPA or STAT followed the refusal.
                Submit(3L, Request.Stat)
                Expect
                    [
                        Where(
                            "Refused STAT: not logged in",
                            function
                            | Event.Refused(3L, e) -> e.Kind = UsageErrorKind.WrongState
                            | _ -> false
                        )
                    ]
                Submit(4L, Request.Quit)
                C "QUIT"
                S "+OK Logging out."
                Expect
                    [
                        Is(
                            Event.Answered(
                                4L,
                                Reply.Quit
                                    {
                                        Text = "Logging out."
                                        UpdateCompleted = false
                                        DeletionsCommitted = []
                                    }
                            )
                        )
                    ]
            ]
    }

let private apopDigest (timestamp: string) (secret: string) =
    Convert.ToHexStringLower(MD5.HashData(Encoding.ASCII.GetBytes(timestamp + secret)))

/// Dovecot: a wrong password is -ERR [AUTH] (RFC 3206 §5); APOP then succeeds on the same connection.
let dovecotWrongPassword =
    let ts = "<2d3f.1.65f0a1b2.HtK3UqJ1IWdgA1DxrL8cNg==@mail.example.org>"

    {
        Name = "Dovecot wrong password"
        Options = plain
        BareLf = false
        Final = PhaseKind.Transaction
        Steps =
            [
                S("+OK " + dovecotGreeting)
                C "CAPA"
                S "+OK"
                for l in dovecotCapa do
                    S l
                S "."
                Expect
                    [
                        Is(greeting dovecotGreeting (Some ts))
                        quirk Quirk.EmptyStatusText
                        capsWhere "Dovecot" _.Pipelining
                        readyWhere "APOP" _.ApopAvailable
                    ]
                Submit(1L, Request.User "alice")
                C "USER alice"
                S "+OK"
                Submit(2L, Request.Pass(Secret.FromString "wrong"))
                C "PASS wrong"
                S "-ERR [AUTH] Authentication failed."
                Expect
                    [
                        answeredOk 1L ""
                        rejected 2L "PASS" (Some ResponseCode.Auth) "Authentication failed."
                    ]
                Submit(3L, Request.Apop("alice", Secret.FromString "right"))
                C("APOP alice " + apopDigest ts "right")
                S "+OK Logged in."
                C "CAPA"
                C "STAT"
                S "+OK"
                for l in dovecotCapa do
                    S l
                S "."
                S "+OK 0 0"
                Expect [ capsWhere "after login" _.Pipelining; loggedIn 3L "Logged in." 0UL 0UL ]
                // An empty maildrop: every message number is refused before sending.
                Submit(4L, Request.Retr 1UL)
                Expect
                    [
                        Where(
                            "Refused RETR 1: empty maildrop",
                            function
                            | Event.Refused(4L, e) -> e.Kind = UsageErrorKind.NoSuchMessage
                            | _ -> false
                        )
                    ]
            ]
    }

// ----- Courier --------------------------------------------------------------------------------

let private courierCapa =
    [
        "SASL CRAM-SHA256 CRAM-SHA1 CRAM-MD5 PLAIN LOGIN"
        "STLS"
        "TOP"
        "USER"
        "LOGIN-DELAY 10"
        "PIPELINING"
        "UIDL"
        "UTF8 USER"
        "IMPLEMENTATION Courier Mail Server"
    ]

let private courierCapsOk (c: Capabilities) =
    not c.RespCodes
    && c.LoginDelay = Some { Seconds = 10UL; PerUser = false }
    && c.Utf8 = Some true
    && c.Implementation = Some "Courier Mail Server"
    && c.Pipelining
    && c.Stls
    && c.Sasl = [ "CRAM-SHA256"; "CRAM-SHA1"; "CRAM-MD5"; "PLAIN"; "LOGIN" ]
    && c.Other.IsEmpty

/// A message Courier wrapped into multipart/mixed with a message/global part (DESIGN §9): 2,884
/// octets delivered where LIST said 2,150, and a status line claiming 2,857.
let private courierWrapped =
    let head =
        [
            "Content-Type: multipart/mixed; boundary=\"=_courier-31337-1700000000\""
            "MIME-Version: 1.0"
            ""
            "--=_courier-31337-1700000000"
            "Content-Type: message/global"
            ""
            "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?="
            "From: jurgen@example.de"
            ""
        ]

    let tail = [ "--=_courier-31337-1700000000--" ]
    let used = octets crlf (head @ tail)
    let filler = "Text line of the original message, long enough to pad it out."
    let fillerOctets = uint64 filler.Length + 2UL
    let count = int ((2884UL - used - 2UL) / fillerOctets)
    let rest = int (2884UL - used - uint64 count * fillerOctets)
    // The last line (rest - 2 characters and CRLF) makes the total exact.
    head @ List.replicate count filler @ [ String('x', rest - 2) ] @ tail

/// Courier without UTF8: RETR returns more than LIST announced and a status count that matches
/// neither; the core never sizes anything from the status line.
let courier =
    let m = courierWrapped

    {
        Name = "Courier"
        Options = plain
        BareLf = false
        Final = PhaseKind.Closed
        Steps =
            [
                S "+OK Hello there."
                Expect [ Is(greeting "Hello there." None) ]
                C "CAPA"
                S "+OK Here's what I can do:"
                for l in courierCapa do
                    S l
                S "."
                Expect
                    [
                        capsWhere "Courier" courierCapsOk
                        readyWhere "no APOP" (fun r -> not r.ApopAvailable)
                    ]
                Submit(1L, Request.User "jurgen")
                C "USER jurgen"
                S "+OK Password required."
                Submit(2L, Request.Pass(Secret.FromString "hunter2"))
                C "PASS hunter2"
                S "+OK logged in."
                C "CAPA"
                C "STAT"
                S "+OK Here's what I can do:"
                for l in courierCapa do
                    S l
                S "."
                S "+OK 1 2150"
                Expect
                    [
                        answeredOk 1L "Password required."
                        capsWhere "Courier after login" courierCapsOk
                        loggedIn 2L "logged in." 1UL 2150UL
                    ]
                Submit(3L, Request.List None)
                C "LIST"
                S "+OK POP3 clients that break here, they violate STD53."
                S "1 2150"
                S "."
                Expect [ Is(Event.Answered(3L, Reply.Listing [ { Number = 1UL; Octets = 2150UL } ])) ]
                Submit(4L, Request.Retr 1UL)
                Submit(5L, Request.Quit)
                C "RETR 1"
                S "+OK 2857 octets follow."
                yield! serve m
                C "QUIT"
                S "+OK Bye-bye."
                Expect
                    [
                        follows 4L "2857 octets follow."
                        // Courier's rewrite (DESIGN §9): LIST said 2,150, RETR delivers 2,884.
                        Is(Event.SizeMismatch(4L, 1UL, 2150UL, 2884UL))
                        Is(Event.BodyEnded(4L, 2884UL))
                        quit 5L "Bye-bye." []
                    ]
                Body(4L, bodyOf crlf m)
            ]
    }

/// Courier with UTF8 (RFC 6856): texts decode as UTF-8 and a UTF-8 user name goes out as UTF-8.
let courierUtf8 =
    let m = [ "Subject: Grüße aus Köln"; "From: jürgen@example.de"; ""; "Schöne Grüße" ]

    {
        Name = "Courier UTF8"
        Options = plain
        BareLf = false
        Final = PhaseKind.Closed
        Steps =
            [
                S "+OK Hello there."
                C "CAPA"
                S "+OK Here's what I can do:"
                for l in courierCapa do
                    S l
                S "."
                Expect
                    [
                        Is(greeting "Hello there." None)
                        capsWhere "Courier" courierCapsOk
                        readyWhere "ready" (fun _ -> true)
                    ]
                Submit(1L, Request.Utf8)
                C "UTF8"
                S "+OK UTF8 enabled"
                Submit(2L, Request.User "jürgen")
                C "USER jürgen"
                S "+OK Passwort für jürgen bitte."
                Submit(3L, Request.Pass(Secret.FromString "grüße"))
                C "PASS grüße"
                S "+OK logged in."
                C "CAPA"
                C "STAT"
                S "+OK Here's what I can do:"
                for l in courierCapa do
                    S l
                S "."
                S $"+OK 1 {octets crlf m}"
                Expect
                    [
                        answeredOk 1L "UTF8 enabled"
                        answeredOk 2L "Passwort für jürgen bitte."
                        capsWhere "after login" courierCapsOk
                        loggedIn 3L "logged in." 1UL (octets crlf m)
                    ]
                Submit(4L, Request.Retr 1UL)
                C "RETR 1"
                S $"+OK {octets crlf m} octets follow."
                yield! serve m
                Expect [ follows 4L $"{octets crlf m} octets follow."; ended 4L crlf m ]
                Body(4L, bodyOf crlf m)
                Submit(5L, Request.Quit)
                C "QUIT"
                S "+OK Bye-bye."
                Expect [ quit 5L "Bye-bye." [] ]
            ]
    }

// ----- Cyrus ----------------------------------------------------------------------------------

let private cyrusCapa (sasl: string) (stls: bool) =
    [
        "SASL " + sasl
        if stls then
            "STLS"
        "EXPIRE NEVER"
        "LOGIN-DELAY 0"
        "TOP"
        "UIDL"
        "PIPELINING"
        "RESP-CODES"
        "AUTH-RESP-CODE"
        "USER"
        "IMPLEMENTATION Cyrus POP3 3.6.1-Debian-3.6.1-4"
    ]

/// Cyrus: SCRAM-*-PLUS only after STLS, RETR answered "+OK Message follows" with no size, QUIT
/// answered with a bare "+OK" (DESIGN §9).
let cyrus =
    let before = cyrusCapa "SCRAM-SHA-1 SCRAM-SHA-256" true

    let after =
        cyrusCapa "SCRAM-SHA-1 SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-256-PLUS PLAIN" false

    let m =
        [
            "Received: from lmtp.example.org"
            "X-Cyrus-Session-Id: cyrus-4711-1700000000-1-8801"
            "Subject: hi"
            ""
            "hello"
        ]

    let ir = "\000alice\000secret"

    {
        Name = "Cyrus"
        Options =
            { Options.Default with
                Tls = TlsMode.StartTlsRequired
            }
        BareLf = false
        Final = PhaseKind.Closed
        Steps =
            [
                S "+OK mail.example.org Cyrus POP3 3.6.1-Debian-3.6.1-4 server ready"
                Expect
                    [
                        Is(greeting "mail.example.org Cyrus POP3 3.6.1-Debian-3.6.1-4 server ready" None)
                    ]
                C "CAPA"
                S "+OK List of capabilities follows"
                for l in before do
                    S l
                S "."
                Expect
                    [
                        capsWhere "Cyrus before TLS: no -PLUS" (fun c ->
                            c.Stls
                            && c.Sasl = [ "SCRAM-SHA-1"; "SCRAM-SHA-256" ]
                            && c.Expire = Some { Days = None; PerUser = false }
                            && c.LoginDelay = Some { Seconds = 0UL; PerUser = false }
                            && c.Implementation = Some "Cyrus POP3 3.6.1-Debian-3.6.1-4")
                    ]
                C "STLS"
                S "+OK Begin TLS negotiation now"
                TlsUp
                C "CAPA"
                S "+OK List of capabilities follows"
                for l in after do
                    S l
                S "."
                Expect
                    [
                        capsWhere "Cyrus over TLS: SCRAM-SHA-256-PLUS" (fun c ->
                            not c.Stls
                            && c.Sasl =
                                [
                                    "SCRAM-SHA-1"
                                    "SCRAM-SHA-1-PLUS"
                                    "SCRAM-SHA-256"
                                    "SCRAM-SHA-256-PLUS"
                                    "PLAIN"
                                ])
                        readyWhere "TLS" _.TlsActive
                    ]
                Submit(1L, Request.Auth("PLAIN", Some(Secret.FromString ir)))
                C("AUTH PLAIN " + b64 ir)
                S "+OK Mailbox locked and ready SESSIONID=<cyrus-4711-1700000000-1-8802>"
                C "CAPA"
                C "STAT"
                S "+OK List of capabilities follows"
                for l in after do
                    S l
                S "."
                S "+OK 1 120"
                Expect
                    [
                        capsWhere "after login" _.Pipelining
                        loggedIn 1L "Mailbox locked and ready SESSIONID=<cyrus-4711-1700000000-1-8802>" 1UL 120UL
                    ]
                Submit(2L, Request.Retr 1UL)
                Submit(3L, Request.Dele 1UL)
                C "RETR 1"
                C "DELE 1"
                S "+OK Message follows"
                yield! serve m
                S "+OK message deleted"
                Expect
                    [
                        follows 2L "Message follows"
                        ended 2L crlf m
                        answeredOk 3L "message deleted"
                    ]
                Body(2L, bodyOf crlf m)
                Submit(4L, Request.Quit)
                C "QUIT"
                S "+OK"
                Expect [ quirk Quirk.EmptyStatusText; quit 4L "" [ 1UL ] ]
            ]
    }

// ----- qmail and RFC 1939 ---------------------------------------------------------------------

/// qmail-pop3d: RFC 1939 only. CAPA is -ERR, so everything is lock-step; "+OK " with an empty text.
let qmail =
    let m1 = [ "Return-Path: <a@example.net>"; "Subject: one"; ""; "body one" ]
    let m2 = [ "Return-Path: <b@example.net>"; "Subject: two"; ""; "body two" ]

    {
        Name = "qmail"
        Options = plain
        BareLf = false
        Final = PhaseKind.Closed
        Steps =
            [
                S "+OK <28117.1700000456@mx.example.net>"
                C "CAPA"
                S "-ERR authorization first"
                Expect
                    [
                        Is(greeting "<28117.1700000456@mx.example.net>" (Some "<28117.1700000456@mx.example.net>"))
                        quirk Quirk.MissingCapa
                        readyWhere "no CAPA, APOP" (fun r ->
                            not r.CapaSupported && r.ApopAvailable && r.Capabilities = Capabilities.Empty)
                    ]
                Submit(1L, Request.User "mailuser")
                C "USER mailuser"
                S "+OK "
                Submit(2L, Request.Pass(Secret.FromString "pw"))
                C "PASS pw"
                S "+OK "
                // No CAPA after login: the server answered -ERR before.
                C "STAT"
                S "+OK 2 3456"
                Expect [ answeredOk 1L ""; loggedIn 2L "" 2UL 3456UL ]
                Submit(3L, Request.List None)
                Submit(4L, Request.Retr 1UL)
                Submit(5L, Request.Retr 2UL)
                C "LIST"
                S "+OK "
                S "1 1200"
                S "2 2256"
                S "."
                C "RETR 1"
                S "+OK "
                yield! serve m1
                C "RETR 2"
                S "+OK "
                yield! serve m2
                Expect
                    [
                        Is(
                            Event.Answered(
                                3L,
                                Reply.Listing [ { Number = 1UL; Octets = 1200UL }; { Number = 2UL; Octets = 2256UL } ]
                            )
                        )
                        // qmail's LIST counts the stored file (peers.md §4.9): sizes differ.
                        follows 4L ""
                        Is(Event.SizeMismatch(4L, 1UL, 1200UL, octets crlf m1))
                        ended 4L crlf m1
                        follows 5L ""
                        Is(Event.SizeMismatch(5L, 2UL, 2256UL, octets crlf m2))
                        ended 5L crlf m2
                    ]
                Submit(6L, Request.Quit)
                C "QUIT"
                S "+OK "
                Expect [ quit 6L "" [] ]
            ]
    }

/// Message bodies of exactly the sizes the RFC 1939 §10 example announces.
let private sized (size: int) (subject: string) =
    let head = [ "From: someone@example.org"; "Subject: " + subject; "" ]
    let used = int (octets crlf head)
    head @ [ String('x', size - used - 2) ]

/// The RFC 1939 §10 example session, verbatim (with our -ERR to the core's CAPA first).
let rfc1939 =
    let m1 = sized 120 "first"
    let m2 = sized 200 "second"

    {
        Name = "RFC 1939 §10"
        Options = plain
        BareLf = false
        Final = PhaseKind.Closed
        Steps =
            [
                S "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>"
                C "CAPA"
                S "-ERR unknown command"
                Expect
                    [
                        Is(
                            greeting
                                "POP3 server ready <1896.697170952@dbc.mtview.ca.us>"
                                (Some "<1896.697170952@dbc.mtview.ca.us>")
                        )
                        quirk Quirk.MissingCapa
                        readyWhere "APOP" _.ApopAvailable
                    ]
                Submit(1L, Request.Apop("mrose", Secret.FromString "tanstaaf"))
                C "APOP mrose c4c9334bac560ecc979e58001b3e22fb"
                S "+OK mrose's maildrop has 2 messages (320 octets)"
                C "STAT"
                S "+OK 2 320"
                Expect [ loggedIn 1L "mrose's maildrop has 2 messages (320 octets)" 2UL 320UL ]
                Submit(2L, Request.List None)
                C "LIST"
                S "+OK 2 messages (320 octets)"
                S "1 120"
                S "2 200"
                S "."
                Expect
                    [
                        Is(
                            Event.Answered(
                                2L,
                                Reply.Listing [ { Number = 1UL; Octets = 120UL }; { Number = 2UL; Octets = 200UL } ]
                            )
                        )
                    ]
                Submit(3L, Request.Retr 1UL)
                C "RETR 1"
                S "+OK 120 octets"
                yield! serve m1
                Expect [ follows 3L "120 octets"; Is(Event.BodyEnded(3L, 120UL)) ]
                Submit(4L, Request.Dele 1UL)
                C "DELE 1"
                S "+OK message 1 deleted"
                Submit(5L, Request.Retr 2UL)
                C "RETR 2"
                S "+OK 200 octets"
                yield! serve m2
                Submit(6L, Request.Dele 2UL)
                C "DELE 2"
                S "+OK message 2 deleted"
                Submit(7L, Request.Quit)
                C "QUIT"
                S "+OK dewey POP3 server signing off (maildrop empty)"
                Expect
                    [
                        answeredOk 4L "message 1 deleted"
                        follows 5L "200 octets"
                        Is(Event.BodyEnded(5L, 200UL))
                        answeredOk 6L "message 2 deleted"
                        quit 7L "dewey POP3 server signing off (maildrop empty)" [ 1UL; 2UL ]
                    ]
                Body(3L, bodyOf crlf m1)
                Body(5L, bodyOf crlf m2)
            ]
    }

// ----- GMX / Yahoo-like quirks ----------------------------------------------------------------

/// Bare LF everywhere, ".\n" included (reported once); lowercase "+ok"; UIDL with several spaces,
/// out of order and with a gap; "-ERR" with no text. Each quirk is reported the first time only.
let bareLfQuirks =
    let lf = "\n"
    let m = [ "From: x@example.com"; "Subject: lf"; ""; ".hidden dot"; "last" ]

    {
        Name = "GMX/Yahoo-like quirks"
        Options = Options.Default
        BareLf = true
        Final = PhaseKind.Closed
        Steps =
            [
                S "+OK hello from popgate-0.8.0.450444 pop018.mail.example.com"
                Expect
                    [
                        quirk Quirk.BareLineFeed
                        Is(greeting "hello from popgate-0.8.0.450444 pop018.mail.example.com" None)
                    ]
                C "CAPA"
                S "+OK CAPA list follows"
                S "USER"
                S "UIDL"
                S "TOP"
                S "SASL PLAIN XOAUTH2"
                S "."
                Expect
                    [
                        capsWhere "popgate" (fun c -> c.User && c.Uidl && not c.Pipelining)
                        readyWhere "TLS" _.TlsActive
                    ]
                Submit(1L, Request.User "someone")
                C "USER someone"
                S "+ok password required."
                Expect [ quirk Quirk.LowercaseStatus; answeredOk 1L "password required." ]
                Submit(2L, Request.Pass(Secret.FromString "pw"))
                C "PASS pw"
                S "+OK maildrop ready"
                C "CAPA"
                S "+ok CAPA list follows"
                S "USER"
                S "UIDL"
                S "TOP"
                S "."
                C "STAT"
                S "+OK 5 12000"
                Expect [ capsWhere "after login" _.Uidl; loggedIn 2L "maildrop ready" 5UL 12000UL ]
                Submit(3L, Request.Uidl None)
                C "UIDL"
                S "+OK uidl list follows"
                S "1   AGdF2kQAAA1b"
                S "3 AGdF2kQAAA3d"
                S "2 AGdF2kQAAA2c"
                S "5 AGdF2kQAAA5f"
                S "."
                Expect
                    [
                        quirk Quirk.ExtraSpaces
                        quirk Quirk.ListingOutOfOrder
                        quirk Quirk.ListingGaps
                        Is(
                            Event.Answered(
                                3L,
                                Reply.UidListing
                                    [
                                        uid 1UL "AGdF2kQAAA1b"
                                        uid 3UL "AGdF2kQAAA3d"
                                        uid 2UL "AGdF2kQAAA2c"
                                        uid 5UL "AGdF2kQAAA5f"
                                    ]
                            )
                        )
                    ]
                Submit(4L, Request.Retr 1UL)
                C "RETR 1"
                S "+OK 50 octets"
                yield! serve m
                Expect [ follows 4L "50 octets"; ended 4L lf m ]
                Body(4L, bodyOf lf m)
                Submit(5L, Request.Dele 3UL)
                C "DELE 3"
                S "-ERR"
                Expect [ quirk Quirk.EmptyStatusText; rejected 5L "DELE" None "" ]
                // The refused deletion is unmarked again: message 3 can still be read.
                Submit(6L, Request.Top(3UL, 0UL))
                C "TOP 3 0"
                S "+ok"
                S "Subject: three"
                S ""
                S "."
                Expect [ follows 6L ""; Is(Event.BodyEnded(6L, 16UL)) ]
                Submit(7L, Request.Quit)
                C "QUIT"
                S "+OK bye"
                Expect [ quit 7L "bye" [] ]
            ]
    }

// ----- Zimbra / Comcast -----------------------------------------------------------------------

/// Zimbra: EXPIRE 31 USER before login and EXPIRE NEVER after (peers §4.4); "SASL PLAIN X-ZIMBRA";
/// the unknown XOIP kept in Other; a malformed STAT "+OK 7 #octets" is a ProtocolError.
let zimbra =
    {
        Name = "Zimbra"
        Options = plain
        BareLf = false
        Final = PhaseKind.Failed
        Steps =
            [
                S "+OK pop.example.com Zimbra POP3 server ready"
                C "CAPA"
                S "+OK Capability list follows"
                S "TOP"
                S "USER"
                S "UIDL"
                S "EXPIRE 31 USER"
                S "XOIP"
                S "SASL PLAIN X-ZIMBRA"
                S "IMPLEMENTATION ZimbraInc"
                S "."
                Expect
                    [
                        Is(greeting "pop.example.com Zimbra POP3 server ready" None)
                        capsWhere "Zimbra before login" (fun c ->
                            c.Expire = Some { Days = Some 31UL; PerUser = true }
                            && c.Sasl = [ "PLAIN"; "X-ZIMBRA" ]
                            && c.Other = [ "XOIP", [] ]
                            && c.Implementation = Some "ZimbraInc")
                        readyWhere "plaintext" (fun r -> not r.TlsActive)
                    ]
                Submit(1L, Request.User "user@example.com")
                C "USER user@example.com"
                S "+OK hello user@example.com, please enter your password"
                Submit(2L, Request.Pass(Secret.FromString "pw"))
                C "PASS pw"
                S "+OK server ready"
                C "CAPA"
                S "+OK Capability list follows"
                S "TOP"
                S "USER"
                S "UIDL"
                S "EXPIRE NEVER"
                S "XOIP"
                S "."
                C "STAT"
                S "+OK 7 30215"
                Expect
                    [
                        answeredOk 1L "hello user@example.com, please enter your password"
                        capsWhere "Zimbra after login" (fun c ->
                            c.Expire = Some { Days = None; PerUser = false }
                            && c.Sasl.IsEmpty
                            && c.Other = [ "XOIP", [] ])
                        loggedIn 2L "server ready" 7UL 30215UL
                    ]
                Submit(3L, Request.Stat)
                C "STAT"
                S "+OK 7 #octets"
                Expect
                    [
                        Where(
                            "Aborted STAT: BadNumber",
                            function
                            | Event.Aborted(3L, Pop3Error.Protocol e) ->
                                e.Kind = ProtocolErrorKind.BadNumber && e.Command = "STAT"
                            | _ -> false
                        )
                        Where(
                            "Failed: BadNumber",
                            function
                            | Event.Failed(Pop3Error.Protocol e) -> e.Kind = ProtocolErrorKind.BadNumber
                            | _ -> false
                        )
                    ]
                // Sticky: a later request is aborted with the same error, and nothing is sent.
                Submit(4L, Request.Noop)
                Expect
                    [
                        Where(
                            "Aborted NOOP: the same BadNumber",
                            function
                            | Event.Aborted(4L, Pop3Error.Protocol e) ->
                                e.Kind = ProtocolErrorKind.BadNumber && e.Command = "STAT"
                            | _ -> false
                        )
                    ]
            ]
    }

/// Comcast-like: the core's own STAT after login is malformed, so the login itself is aborted:
/// without a snapshot no message number can be checked.
let comcastMalformedStat =
    {
        Name = "Comcast malformed STAT at login"
        Options = plain
        BareLf = false
        Final = PhaseKind.Failed
        Steps =
            [
                S "+OK POP3 server ready"
                C "CAPA"
                S "+OK"
                S "USER"
                S "EXPIRE 31 USER"
                S "."
                Expect
                    [
                        Is(greeting "POP3 server ready" None)
                        quirk Quirk.EmptyStatusText
                        capsWhere "EXPIRE 31 USER" (fun c -> c.Expire = Some { Days = Some 31UL; PerUser = true })
                        readyWhere "ready" (fun _ -> true)
                    ]
                Submit(1L, Request.User "someone")
                C "USER someone"
                S "+OK"
                Submit(2L, Request.Pass(Secret.FromString "pw"))
                C "PASS pw"
                S "+OK ready"
                C "CAPA"
                S "+OK"
                S "USER"
                S "EXPIRE NEVER"
                S "."
                C "STAT"
                S "+OK 7 #octets"
                Expect
                    [
                        answeredOk 1L ""
                        capsWhere "EXPIRE NEVER" (fun c -> c.Expire = Some { Days = None; PerUser = false })
                        Where(
                            "Aborted login: BadNumber",
                            function
                            | Event.Aborted(2L, Pop3Error.Protocol e) -> e.Kind = ProtocolErrorKind.BadNumber
                            | _ -> false
                        )
                        Where(
                            "Failed",
                            function
                            | Event.Failed(Pop3Error.Protocol _) -> true
                            | _ -> false
                        )
                    ]
            ]
    }

// ----- broken servers from the issue trackers --------------------------------------------------

/// hMailServer's "+ERR" (hmailserver#590) is never success, whatever prefix-"+" parsers think.
let hmailPlusErr =
    {
        Name = "hMailServer +ERR"
        Options = plain
        BareLf = false
        Final = PhaseKind.Failed
        Steps =
            [
                S "+OK Welcome to hMailServer POP3"
                C "CAPA"
                S "+OK CAPA list follows"
                S "USER"
                S "UIDL"
                S "TOP"
                S "."
                Expect
                    [
                        Is(greeting "Welcome to hMailServer POP3" None)
                        capsWhere "USER" _.User
                        readyWhere "ready" (fun _ -> true)
                    ]
                Submit(1L, Request.User "someone")
                C "USER someone"
                S "+OK Send your password"
                Submit(2L, Request.Pass(Secret.FromString "pw"))
                C "PASS pw"
                S "+ERR Invalid user name or password."
                Expect
                    [
                        answeredOk 1L "Send your password"
                        Where(
                            "Aborted PASS: BadStatusLine",
                            function
                            | Event.Aborted(2L, Pop3Error.Protocol e) ->
                                e.Kind = ProtocolErrorKind.BadStatusLine && e.Command = "PASS"
                            | _ -> false
                        )
                        Where(
                            "Failed",
                            function
                            | Event.Failed(Pop3Error.Protocol e) -> e.Kind = ProtocolErrorKind.BadStatusLine
                            | _ -> false
                        )
                    ]
            ]
    }

/// "UIDL n" answered without the number (twisted#9104): a ProtocolError, and the UIDL request
/// itself, already answered on the wire, gets its Aborted event.
let uidlWithoutNumber =
    {
        Name = "UIDL n without the number"
        Options = plain
        BareLf = false
        Final = PhaseKind.Failed
        Steps =
            [
                S "+OK Twisted POP3 server ready <31337.1700000000@twisted.example>"
                C "CAPA"
                S "+OK"
                S "USER"
                S "UIDL"
                S "."
                Expect
                    [
                        Where(
                            "greeting",
                            (function
                            | Event.GreetingReceived _ -> true
                            | _ -> false)
                        )
                        quirk Quirk.EmptyStatusText
                        capsWhere "UIDL" _.Uidl
                        readyWhere "ready" (fun _ -> true)
                    ]
                Submit(1L, Request.User "someone")
                C "USER someone"
                S "+OK USER accepted, send PASS"
                Submit(2L, Request.Pass(Secret.FromString "pw"))
                C "PASS pw"
                S "+OK Authentication succeeded"
                C "CAPA"
                S "+OK"
                S "USER"
                S "UIDL"
                S "."
                C "STAT"
                S "+OK 2 300"
                Expect
                    [
                        answeredOk 1L "USER accepted, send PASS"
                        capsWhere "UIDL" _.Uidl
                        loggedIn 2L "Authentication succeeded" 2UL 300UL
                    ]
                Submit(3L, Request.Uidl(Some 2UL))
                C "UIDL 2"
                S "+OK 6cb3e6a8b2e3f4d5"
                Expect
                    [
                        Where(
                            "Aborted UIDL 2: BadUid",
                            function
                            | Event.Aborted(3L, Pop3Error.Protocol e) ->
                                e.Kind = ProtocolErrorKind.BadUid && e.Command = "UIDL"
                            | _ -> false
                        )
                        Where(
                            "Failed",
                            function
                            | Event.Failed(Pop3Error.Protocol e) -> e.Kind = ProtocolErrorKind.BadUid
                            | _ -> false
                        )
                    ]
            ]
    }

let transcripts =
    [
        gmail
        gmailXoauth2Refused
        outlook
        dovecotStls
        dovecotInUse
        dovecotWrongPassword
        courier
        courierUtf8
        cyrus
        qmail
        rfc1939
        bareLfQuirks
        zimbra
        comcastMalformedStat
        hmailPlusErr
        uidlWithoutNumber
    ]

let private replayTests (t: Transcript) =
    [
        testCase t.Name (fun () -> replay LineChunks t |> ignore)
        testCase (t.Name + ": one byte at a time gives the same outcome") (fun () ->
            let whole = replay LineChunks t
            let bytewise = replay OneByteAtATime t
            Expect.equal bytewise.Phase whole.Phase "final state"
            Expect.equal (render bytewise.Log) (render whole.Log) "every output, bodies merged")
    ]

[<Tests>]
let tests =
    testList
        "TranscriptTests"
        [
            yield! transcripts |> List.collect replayTests

            testCase "the replayer catches a command the transcript does not expect"
            <| fun () ->
                let broken =
                    { qmail with
                        Name = "broken"
                        Steps =
                            qmail.Steps
                            |> List.filter (function
                                | C "CAPA" -> false
                                | _ -> true)
                    }

                Expect.throwsT<AssertException> (fun () -> replay LineChunks broken |> ignore) "CAPA unclaimed"

            testCase "the replayer catches an event the transcript does not assert"
            <| fun () ->
                let broken =
                    { rfc1939 with
                        Name = "broken"
                        Steps = rfc1939.Steps |> List.take 3
                        Final = PhaseKind.Authorization
                    }

                Expect.throwsT<AssertException> (fun () -> replay LineChunks broken |> ignore) "events unasserted"
        ]
