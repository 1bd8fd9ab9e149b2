/// The attack and fault catalogue of reference/security.md §4, row by row, against the pure core:
/// a scripted fake server feeds bytes to Session.step, or a misbehaving caller submits requests.
module Pop3Functional.Core.Tests.SecurityTests

open System
open System.Text
open Expecto
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

// ----- helpers ---------------------------------------------------------------------------------

let private canary = "Canary-P4ss!"
let private pw () = Secret.FromString canary

let private tlsRequired =
    { Options.Default with
        Tls = TlsMode.StartTlsRequired
    }

/// NoTls chosen explicitly, but plaintext passwords not allowed.
let private noTls =
    { Options.Default with
        Tls = TlsMode.NoTls
        AllowPlaintextCredentials = false
    }

let private strictPlain =
    { Options.Strict with
        Tls = TlsMode.NoTls
        AllowPlaintextCredentials = true
    }

let private withLimits (o: Options) (f: Limits -> Limits) = { o with Limits = f o.Limits }

let private credentialKeywords = [ "USER"; "PASS"; "APOP"; "AUTH"; "RPOP" ]

let private isCredential (line: string) =
    credentialKeywords
    |> List.exists (fun k -> line.StartsWith(k, StringComparison.OrdinalIgnoreCase))

let private noCredentialSent outs =
    Expect.isFalse (sent outs |> List.exists isCredential) (sprintf "no credential sent: %A" (sent outs))

let private failure (s: SessionState) =
    match s.Phase with
    | Phase.Failed e -> Some e
    | _ -> None

let private protocolKind (s: SessionState) =
    match s.Phase with
    | Phase.Failed(Pop3Error.Protocol e) -> Some e.Kind
    | _ -> None

let private expectProtocol kind (s: SessionState) outs =
    Expect.equal (protocolKind s) (Some kind) (sprintf "protocol error %A; transcript %A" kind (render outs))

let private failedEvents outs =
    events outs
    |> List.choose (function
        | Event.Failed e -> Some e
        | _ -> None)

let private refused outs =
    events outs
    |> List.choose (function
        | Event.Refused(id, e) -> Some(id, e)
        | _ -> None)

let private rejected outs =
    events outs
    |> List.choose (function
        | Event.Rejected(id, e) -> Some(id, e)
        | _ -> None)

let private aborted outs =
    events outs
    |> List.choose (function
        | Event.Aborted(id, e) -> Some(id, e)
        | _ -> None)

let private expectRefusedKind id kind outs =
    match refused outs with
    | [ (rid, e) ] ->
        Expect.equal rid id "refused id"
        Expect.equal e.Kind kind (sprintf "usage error kind: %s" e.Message)
    | other -> failtestf "expected one Refused %A, got %A" kind (render outs)

    Expect.isEmpty (sent outs) "nothing sent"

/// Greeting with an APOP timestamp, CAPA answered with STLS: the core now waits for the STLS reply.
let private atStls () =
    let s, outs =
        runAll
            (Session.create tlsRequired)
            [
                received "+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n"
                received "+OK\r\nSTLS\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n"
            ]

    Expect.equal s.Phase.Kind PhaseKind.AwaitingStlsReply (sprintf "at STLS: %A" (render outs))
    Expect.equal (sent outs) [ "CAPA"; "STLS" ] "CAPA then STLS"
    s

/// After +OK to STLS: the core waits for the handshake.
let private atHandshake () =
    let s, outs = runAll (atStls ()) [ received "+OK Begin TLS\r\n" ]
    Expect.contains outs NStartTls "StartTls asked"
    s

/// After TLS and the post-TLS CAPA: ready to log in.
let private afterTls (capa: string) =
    runAll (atHandshake ()) [ Input.TlsEstablished None; received capa ]

/// A plaintext session in the authorization state with the given greeting and CAPA answer.
let private authorized (options: Options) (greeting: string) (capa: string) =
    let s, outs = runAll (Session.create options) [ received greeting; received capa ]
    Expect.equal s.Phase.Kind PhaseKind.Authorization (sprintf "authorized: %A" (render outs))
    s

/// Logs in with USER/PASS and answers the core's STAT with the given line.
let private loginWithStat (options: Options) (stat: string) =
    runAll
        (Session.create options)
        [
            received "+OK ready\r\n"
            received "+OK\r\nUSER\r\n.\r\n"
            Input.Submit(1L, Request.User "bob")
            received "+OK\r\n"
            Input.Submit(2L, Request.Pass(pw ()))
            received "+OK logged in\r\n"
            received "+OK\r\nUSER\r\n.\r\n"
            received stat
        ]

let private body id outs =
    outs
    |> List.tryPick (function
        | NBody(i, t) when i = id -> Some t
        | _ -> None)

// ----- STLS and stripping (#1–#9) ------------------------------------------------------------

let private stlsTests =
    testList
        "STLS"
        [
            testCase "#1 STLS response injection: fake lines after +OK in the same chunk abort the session"
            <| fun () ->
                let s, outs =
                    runAll (atStls ()) [ received "+OK Begin TLS\r\n+OK\r\nPLAIN\r\n.\r\n" ]

                expectProtocol ProtocolErrorKind.ResponseInjection s outs
                Expect.isFalse (List.contains NStartTls outs) "no handshake over injected bytes"
                Expect.isEmpty (sent outs) "nothing sent"
                Expect.contains outs NClose "connection closed"

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.CapabilitiesReceived _ -> true
                         | _ -> false))
                    "never parsed"

            testCase "#1 STLS response injection: bytes in a later chunk before TlsEstablished abort the session"
            <| fun () ->
                let s, outs =
                    runAll (atHandshake ()) [ received "+OK\r\nSASL PLAIN\r\n.\r\n"; Input.TlsEstablished None ]

                expectProtocol ProtocolErrorKind.ResponseInjection s outs
                Expect.isEmpty (sent outs) "nothing sent, even after the late TlsEstablished"
                Expect.equal (failedEvents outs).Length 1 "one failure"

            testCase "#1 STLS injection on a caller's STLS with TlsMode.NoTls is refused the same way"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nSTLS\r\nUSER\r\n.\r\n"

                let s, outs =
                    runAll s0 [ Input.Submit(1L, Request.Stls); received "+OK go\r\n+OK injected\r\n" ]

                expectProtocol ProtocolErrorKind.ResponseInjection s outs
                Expect.equal (sent outs) [ "STLS" ] "only STLS sent"
                Expect.isNonEmpty (aborted outs |> List.filter (fun (id, _) -> id = 1L)) "request aborted"

            testCase "#2 STLS partial-line injection: a CRLF-free fragment after +OK aborts"
            <| fun () ->
                let s, outs = runAll (atStls ()) [ received "+OK Begin TLS\r\n\x16\x03" ]
                expectProtocol ProtocolErrorKind.ResponseInjection s outs
                Expect.isFalse (List.contains NStartTls outs) "no handshake"

            testCase "#2 STLS partial-line injection: high-bit garbage split across chunks still aborts"
            <| fun () ->
                let s, outs =
                    runAll (atStls ()) [ received "+OK Begin"; received " TLS\r\n\xff\xfe\xfd" ]

                expectProtocol ProtocolErrorKind.ResponseInjection s outs
                Expect.equal s.Partial.Length 0 "no fragment kept for the TLS stream"

            testCase "#2 the fragment is never prepended to the first TLS line"
            <| fun () ->
                let s, outs =
                    runAll (atHandshake ()) [ received "+O"; Input.TlsEstablished None; received "K\r\n" ]

                expectProtocol ProtocolErrorKind.ResponseInjection s outs

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.AuthorizationReady _ -> true
                         | _ -> false))
                    "no ready"

            testCase "#3 STLS -ERR followed by pipelined fakes: TLS required fails, nothing parsed as auth"
            <| fun () ->
                let s, outs =
                    runAll (atStls ()) [ received "-ERR no TLS\r\n+OK user accepted\r\n+OK authenticated\r\n" ]

                expectProtocol ProtocolErrorKind.TlsUnavailable s outs
                Expect.isEmpty (sent outs) "nothing sent"

                let s, outs2 = runAll s [ Input.Submit(1L, Request.User "bob") ]
                Expect.equal s.Phase.Kind PhaseKind.Failed "still failed"
                Expect.equal (aborted outs2 |> List.map fst) [ 1L ] "USER aborted"
                Expect.isEmpty (sent outs2) "no USER"

            testCase "#3 caller's STLS -ERR without TLS required: the fake replies are unsolicited"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nSTLS\r\nUSER\r\n.\r\n"

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Stls)
                            received "-ERR no\r\n+OK user accepted\r\n+OK authenticated\r\n"
                        ]

                expectProtocol ProtocolErrorKind.UnsolicitedData s outs
                Expect.equal (rejected outs |> List.map fst) [ 1L ] "STLS rejected"

            testCase "#4 STLS missing from CAPA with StartTlsRequired: failure before any credential"
            <| fun () ->
                let s, outs =
                    runAll
                        (Session.create tlsRequired)
                        [
                            received "+OK hi <a.b@c>\r\n"
                            received "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"
                            Input.Submit(1L, Request.User "bob")
                            Input.Submit(2L, Request.Apop("bob", pw ()))
                            Input.Submit(3L, Request.Auth("PLAIN", Some(pw ())))
                        ]

                expectProtocol ProtocolErrorKind.TlsUnavailable s outs
                Expect.equal (sent outs) [ "CAPA" ] "only CAPA"
                Expect.equal (aborted outs |> List.map fst) [ 1L; 2L; 3L ] "every login aborted"

            for text in [ "-ERR not now"; "-ERR [SYS/PERM] no TLS here"; "-ERR [SYS/TEMP] try later" ] do
                testCase $"#5 STLS refused ({text}): one terminal error, no retry, nothing secret"
                <| fun () ->
                    let s, outs =
                        runAll
                            (atStls ())
                            [
                                received (text + "\r\n")
                                Input.Submit(1L, Request.Stls)
                                Input.Submit(2L, Request.User "bob")
                                Input.Submit(3L, Request.Pass(pw ()))
                            ]

                    expectProtocol ProtocolErrorKind.TlsUnavailable s outs
                    Expect.equal (failedEvents outs).Length 1 "one terminal error"
                    Expect.isEmpty (sent outs) "no retry, no credential"
                    Expect.equal (aborted outs |> List.map fst) [ 1L; 2L; 3L ] "later requests aborted"

            testCase "#6 CAPA -ERR with TLS required: STLS tried blindly"
            <| fun () ->
                let s, outs =
                    runAll (Session.create tlsRequired) [ received "+OK hi\r\n"; received "-ERR unknown command\r\n" ]

                Expect.equal (sent outs) [ "CAPA"; "STLS" ] "STLS tried blindly"
                Expect.equal s.Phase.Kind PhaseKind.AwaitingStlsReply "awaiting STLS"

            testCase "#6 CAPA -ERR with TLS required, then STLS refused: no credentials ever"
            <| fun () ->
                let s, outs =
                    runAll
                        (Session.create tlsRequired)
                        [
                            received "+OK hi\r\n"
                            received "-ERR unknown command\r\n"
                            received "-ERR unknown command\r\n"
                            Input.Submit(1L, Request.User "bob")
                        ]

                expectProtocol ProtocolErrorKind.TlsUnavailable s outs
                noCredentialSent outs

            testCase "#6 CAPA -ERR with TLS required and the missing-capa event off: STLS is still tried, no event"
            <| fun () ->
                let options =
                    { tlsRequired with
                        Quirks = tlsRequired.Quirks.Remove Quirk.MissingCapa
                    }

                let s, outs =
                    runAll (Session.create options) [ received "+OK hi\r\n"; received "-ERR [SYS/PERM] no\r\n" ]

                Expect.equal s.Phase.Kind PhaseKind.AwaitingStlsReply "STLS tried blindly (CAPA -ERR is legal)"
                Expect.equal (sent outs) [ "CAPA"; "STLS" ] "no credential, STLS first"

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.QuirkTolerated _ -> true
                         | _ -> false))
                    "no event when the option is not listed"

            testCase "#7 pre-TLS state reuse: capabilities forgotten, CAPA again, SASL from the post-TLS CAPA"
            <| fun () ->
                let s0 = atHandshake ()
                Expect.equal s0.Capabilities.Sasl [ "PLAIN"; "LOGIN" ] "pre-TLS SASL"
                let s1, outs1 = runAll s0 [ Input.TlsEstablished None ]
                Expect.equal (sent outs1) [ "CAPA" ] "CAPA re-issued first"
                Expect.equal s1.Capabilities Capabilities.Empty "pre-TLS capabilities forgotten"
                Expect.isNone s1.CapaSupported "CAPA support unknown again"

                let s2, outs2 = runAll s1 [ received "+OK\r\nSASL SCRAM-SHA-256\r\nUSER\r\n.\r\n" ]
                Expect.equal s2.Phase.Kind PhaseKind.Authorization "ready"
                Expect.equal s2.Capabilities.Sasl [ "SCRAM-SHA-256" ] "post-TLS SASL only"

                let ready =
                    events outs2
                    |> List.pick (function
                        | Event.AuthorizationReady r -> Some r
                        | _ -> None)

                Expect.isTrue ready.TlsActive "TLS up"
                Expect.isFalse ready.ApopAvailable "pre-TLS timestamp not offered"
                Expect.equal ready.Capabilities.Sasl [ "SCRAM-SHA-256" ] "ready carries post-TLS SASL"
                Expect.isFalse ready.Capabilities.Stls "no STLS after TLS"

            testCase "#7 APOP after STLS is refused with ApopUnavailable naming STLS"
            <| fun () ->
                let s, _ = afterTls "+OK\r\nUSER\r\n.\r\n"
                let _, outs = runAll s [ Input.Submit(1L, Request.Apop("bob", pw ())) ]
                expectRefusedKind 1L UsageErrorKind.ApopUnavailable outs
                let _, e = (refused outs).Head
                Expect.stringContains e.Message "STLS" "says why"

            testCase "#7 a post-TLS greeting-like line cannot bring the APOP timestamp back"
            <| fun () ->
                let s, _ = afterTls "+OK <9.9@evil>\r\nUSER\r\n.\r\n"
                let _, outs = runAll s [ Input.Submit(1L, Request.Apop("bob", pw ())) ]
                expectRefusedKind 1L UsageErrorKind.ApopUnavailable outs

            testCase "#9 nothing is sent after STLS until TlsEstablished"
            <| fun () ->
                let s, outs =
                    runAll
                        (atStls ())
                        [
                            Input.Submit(1L, Request.User "bob")
                            Input.Submit(2L, Request.Capa)
                            received "+OK Begin TLS\r\n"
                            Input.Submit(3L, Request.User "bob")
                            Input.Submit(4L, Request.Noop)
                            Input.Submit(5L, Request.Quit)
                        ]

                Expect.equal s.Phase.Kind PhaseKind.AwaitingTlsHandshake "awaiting handshake"
                Expect.isEmpty (sent outs) "zero bytes before the handshake"
                Expect.equal (refused outs |> List.map fst) [ 1L; 2L; 3L; 4L; 5L ] "all refused"

                let _, outs = runAll s [ Input.TlsEstablished None ]
                Expect.equal (sent outs) [ "CAPA" ] "the first post-TLS command is the core's CAPA"

            testCase "TlsEstablished that was never asked for is refused and changes nothing"
            <| fun () ->
                let s0 = authorized noTls "+OK hi\r\n" "+OK\r\nUSER\r\n.\r\n"
                let s, outs = runAll s0 [ Input.TlsEstablished None ]
                Expect.isFalse s.TlsActive "TLS not marked active"

                Expect.equal
                    (refused outs |> List.map (fun (_, e) -> e.Kind))
                    [ UsageErrorKind.UnexpectedInput ]
                    "refused"

            testCase "StartTlsRequired refuses USER before TLS"
            <| fun () ->
                let s, outs = runAll (atStls ()) [ Input.Submit(1L, Request.User "bob") ]
                Expect.equal (refused outs |> List.map fst) [ 1L ] "refused"
                noCredentialSent outs
                Expect.equal s.Phase.Kind PhaseKind.AwaitingStlsReply "unchanged"

            testCase "StartTlsRequired logs in after TLS"
            <| fun () ->
                let s, _ = afterTls "+OK\r\nUSER\r\n.\r\n"
                let _, outs = runAll s [ Input.Submit(1L, Request.User "bob") ]
                Expect.equal (sent outs) [ "USER bob" ] "USER after TLS"

            testCase "NoTls without AllowPlaintextCredentials refuses PASS and AUTH PLAIN"
            <| fun () ->
                let s0 = authorized noTls "+OK hi\r\n" "+OK\r\nUSER\r\nSASL PLAIN CRAM-MD5\r\n.\r\n"
                let _, outs = runAll s0 [ Input.Submit(1L, Request.Auth("PLAIN", Some(pw ()))) ]
                expectRefusedKind 1L UsageErrorKind.PlaintextCredentials outs

                let s1, outs =
                    runAll s0 [ Input.Submit(2L, Request.User "bob"); received "+OK\r\n" ]

                Expect.equal (sent outs) [ "USER bob" ] "USER is not secret"
                let _, outs = runAll s1 [ Input.Submit(3L, Request.Pass(pw ())) ]
                expectRefusedKind 3L UsageErrorKind.PlaintextCredentials outs

            testCase "NoTls without AllowPlaintextCredentials allows APOP and AUTH CRAM-MD5"
            <| fun () ->
                let s0 =
                    authorized noTls "+OK hi <1.2@host>\r\n" "+OK\r\nUSER\r\nSASL CRAM-MD5\r\n.\r\n"

                let _, outs = runAll s0 [ Input.Submit(1L, Request.Apop("bob", pw ())) ]
                Expect.equal (sent outs |> List.map (fun l -> l.Substring(0, 9))) [ "APOP bob " ] "APOP sent"
                Expect.isFalse ((sent outs).Head.Contains canary) "digest, not the password"
                let _, outs = runAll s0 [ Input.Submit(2L, Request.Auth("CRAM-MD5", None)) ]
                Expect.equal (sent outs) [ "AUTH CRAM-MD5" ] "CRAM-MD5 sent"
        ]

// ----- greetings, lines, framing (#14–#22) -----------------------------------------------------

let private framingTests =
    testList
        "framing"
        [
            testCase "#14 -ERR greeting: Failed with a Server error, no auth possible"
            <| fun () ->
                let s, outs =
                    runAll
                        (Session.create tlsRequired)
                        [ received "-ERR go away\r\n"; Input.Submit(1L, Request.User "bob") ]

                match failure s with
                | Some(Pop3Error.Server e) -> Expect.equal e.Text "go away" "server text"
                | other -> failtestf "expected a Server error, got %A" other

                Expect.isEmpty (sent outs) "nothing sent"
                Expect.equal (aborted outs |> List.map fst) [ 1L ] "USER aborted"

            for greeting in
                [
                    "+Do you even care?"
                    "\x16\x03\x01\x02\x05garbage"
                    "HELLO"
                    "+OKAY fine"
                    "+ERR nope"
                ] do
                testCase $"#14 bad greeting %A{greeting}: BadGreeting, no auth"
                <| fun () ->
                    let s, outs =
                        runAll
                            (Session.create tlsRequired)
                            [ received (greeting + "\r\n"); Input.Submit(1L, Request.User "bob") ]

                    expectProtocol ProtocolErrorKind.BadGreeting s outs
                    Expect.isEmpty (sent outs) "nothing sent"

            testCase "#14 ANSI escapes in a -ERR greeting are escaped in the error message"
            <| fun () ->
                let s, outs =
                    runAll (Session.create plain) [ received "-ERR \x1b[31;1;4mred alert\x1b[0m\r\n" ]

                match failedEvents outs with
                | [ e ] ->
                    Expect.isFalse (e.Message.Contains '\x1b') "no raw ESC"
                    Expect.stringContains e.Message "\\x1b" "ESC escaped"
                | other -> failtestf "one failure expected: %A" other

                Expect.equal s.Phase.Kind PhaseKind.Failed "failed"

            testCase "#14 ANSI escapes in a +OK greeting with TLS required still lead only to CAPA and STLS"
            <| fun () ->
                let _, outs =
                    runAll
                        (Session.create tlsRequired)
                        [ received "+OK \x1b[31;1;4mhi\r\n"; received "+OK\r\nSTLS\r\n.\r\n" ]

                Expect.equal (sent outs) [ "CAPA"; "STLS" ] "negotiation only"

            testCase "#15 a 1 MiB status line without CRLF fails at the limit, the held partial stays bounded"
            <| fun () ->
                let options = Options.Default
                let chunk = Array.create 4096 (byte 'A')
                let mutable s = Session.create options
                let mutable maxPartial = 0
                let mutable fails = 0

                for _ in 1..256 do
                    let struct (next, outs) = Session.step s (Input.Received(ReadOnlyMemory chunk))
                    s <- next
                    maxPartial <- max maxPartial s.Partial.Length

                    fails <-
                        fails
                        + (outs
                           |> List.filter (function
                               | Output.Emit(Event.Failed _) -> true
                               | _ -> false))
                            .Length

                Expect.equal (protocolKind s) (Some ProtocolErrorKind.LineTooLong) "LineTooLong"
                Expect.equal fails 1 "one failure"
                Expect.isLessThan maxPartial options.Limits.MaxLineOctets "partial under the limit"

            testCase "#15 a +OK reply longer than the limit after login fails with LineTooLong"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Noop)
                            received ("+OK " + String('x', 9000) + "\r\n")
                        ]

                expectProtocol ProtocolErrorKind.LineTooLong s outs
                Expect.equal (aborted outs |> List.map fst) [ 3L ] "NOOP aborted"

            testCase "#15 Options.Strict: 512 octets with CRLF pass, 513 fail"
            <| fun () ->
                let line n = "+OK " + String('x', n - 6) + "\r\n"
                let ok, outs = runAll (Session.create strictPlain) [ received (line 512) ]
                Expect.equal ok.Phase.Kind PhaseKind.AwaitingCapa (sprintf "512 accepted: %A" (render outs))
                let bad, outs = runAll (Session.create strictPlain) [ received (line 513) ]
                expectProtocol ProtocolErrorKind.LineTooLong bad outs

            testCase "#15 Options.Strict: 600 octets dripped one byte at a time fail at 512"
            <| fun () ->
                let mutable s = Session.create strictPlain
                let mutable fedWhenFailed = -1

                for i in 1..600 do
                    s <- fst (runAll s [ received "x" ])

                    if fedWhenFailed < 0 && s.Phase.Kind = PhaseKind.Failed then
                        fedWhenFailed <- i

                    Expect.isLessThan s.Partial.Length 512 "partial bounded"

                Expect.equal fedWhenFailed 512 "fails as soon as the line cannot fit"

            testCase "#17 EndOfStream inside a LIST listing: ConnectionClosed, request aborted"
            <| fun () ->
                let s0 = loggedIn plain 3 false

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.List None)
                            received "+OK\r\n1 100\r\n2 200\r\n"
                            Input.EndOfStream
                        ]

                expectProtocol ProtocolErrorKind.ConnectionClosed s outs
                Expect.equal (aborted outs |> List.map fst) [ 3L ] "LIST aborted"

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.Answered(3L, _) -> true
                         | _ -> false))
                    "no listing"

            testCase "#17 EndOfStream inside RETR: ConnectionClosed, no BodyEnded, octets counted in the message"
            <| fun () ->
                let s0 = loggedIn plain 3 false

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Retr 1UL)
                            received "+OK\r\nSubject: x\r\n\r\nbody"
                            Input.EndOfStream
                        ]

                expectProtocol ProtocolErrorKind.ConnectionClosed s outs

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.BodyEnded _ -> true
                         | _ -> false))
                    "never complete"

                Expect.equal (aborted outs |> List.map fst) [ 3L ] "RETR aborted"
                Expect.stringContains (failedEvents outs).Head.Message "18 octets" "says how much arrived"

            testCase "#18 a lone CR inside a status line is data, never a line break"
            <| fun () ->
                let _, outs = runAll (Session.create plain) [ received "+OK hello\rworld\r\n" ]

                let g =
                    events outs
                    |> List.pick (function
                        | Event.GreetingReceived g -> Some g
                        | _ -> None)

                Expect.equal g.Text "hello\rworld" "CR kept as data"
                Expect.equal (sent outs) [ "CAPA" ] "one line, one CAPA"

            testCase "#18 a lone CR does not end a reply: '+OK done\\r-ERR' is one +OK line"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let _, outs =
                    runAll s0 [ Input.Submit(3L, Request.Noop); received "+OK done\r-ERR fake\r\n" ]

                Expect.isEmpty (rejected outs) "no -ERR parsed"

                Expect.isTrue
                    (events outs
                     |> List.exists (function
                         | Event.Answered(3L, _) -> true
                         | _ -> false))
                    "answered +OK"

            testCase "#18 bare LF refused when the quirk is disabled"
            <| fun () ->
                let s, outs = runAll (Session.create strictPlain) [ received "+OK hi\n" ]
                expectProtocol ProtocolErrorKind.BadStatusLine s outs

            testCase "#18 bare LF tolerated with the quirk, reported once, terminator semantics identical"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let _, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Retr 1UL)
                            received "+OK\nline\n..dot\n.\n"
                            Input.Submit(4L, Request.Noop)
                            received "+OK\n"
                        ]

                Expect.equal (body 3L outs) (Some "line\n.dot\n") "body unstuffed, terminator found"

                Expect.equal
                    (events outs |> List.filter ((=) (Event.QuirkTolerated Quirk.BareLineFeed))).Length
                    1
                    "reported once"

            testCase "#19 NUL in the greeting is rejected"
            <| fun () ->
                let s, outs = runAll (Session.create plain) [ received "+OK hi\000there\r\n" ]
                expectProtocol ProtocolErrorKind.NulInLine s outs

            testCase "#19 NUL in a CAPA line is rejected"
            <| fun () ->
                let s, outs =
                    runAll (Session.create plain) [ received "+OK hi\r\n"; received "+OK\r\nUS\000ER\r\n.\r\n" ]

                expectProtocol ProtocolErrorKind.NulInLine s outs

            testCase "#19 NUL inside a message body is delivered byte-exact"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Retr 1UL)
                            received "+OK\r\na\000b\r\n\000\r\n.\r\n"
                        ]

                Expect.equal (body 3L outs) (Some "a\000b\r\n\000\r\n") "NULs kept"
                Expect.equal s.Phase.Kind PhaseKind.Transaction "session fine"

            testCase "#21 a premature terminator followed by more lines with no command outstanding: UnsolicitedData"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Retr 1UL)
                            received "+OK\r\nhead\r\n.\r\n+OK fake\r\n1 2\r\n"
                        ]

                expectProtocol ProtocolErrorKind.UnsolicitedData s outs
                Expect.equal (body 3L outs) (Some "head\r\n") "body up to the terminator"

            testCase "#21 surplus lines arriving later are not taken as the reply to the next command"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Retr 1UL)
                            received "+OK\r\nhead\r\n.\r\n"
                            received "-ERR fake\r\n"
                            Input.Submit(4L, Request.Dele 1UL)
                        ]

                expectProtocol ProtocolErrorKind.UnsolicitedData s outs
                Expect.equal (aborted outs |> List.map fst) [ 4L ] "DELE aborted, not rejected by the fake"
                Expect.isEmpty (rejected outs) "no -ERR attributed"

            testCase "#22 an unsolicited listing appended to the greeting fails the session"
            <| fun () ->
                let s, outs =
                    runAll (Session.create plain) [ received "+OK hi\r\n1 100\r\n2 200\r\n.\r\n" ]

                Expect.isSome (protocolKind s) (sprintf "protocol error: %A" (render outs))

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.AuthorizationReady _ -> true
                         | _ -> false))
                    "no ready"

            testCase "#22 an extra line after a single-line reply: UnsolicitedData"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let s, outs =
                    runAll s0 [ Input.Submit(3L, Request.Noop); received "+OK\r\n+OK extra\r\n" ]

                expectProtocol ProtocolErrorKind.UnsolicitedData s outs

                Expect.isTrue
                    (events outs
                     |> List.exists (function
                         | Event.Answered(3L, _) -> true
                         | _ -> false))
                    "NOOP answered"

            testCase "#22 an extra line after the CAPA answer (authorization) is never the USER reply"
            <| fun () ->
                let s0 = Session.create plain

                let s, outs =
                    runAll
                        s0
                        [
                            received "+OK hi\r\n"
                            received "+OK\r\nUSER\r\n.\r\n+OK welcome\r\n"
                            Input.Submit(1L, Request.User "bob")
                        ]

                expectProtocol ProtocolErrorKind.UnsolicitedData s outs
                noCredentialSent outs
        ]

// ----- closing, poisoning, numbers, listings, UIDs (#25–#32) -----------------------------------

let private numberTests =
    testList
        "numbers"
        [
            testCase "#25 close mid-line before the greeting ends: ConnectionClosed, partial discarded"
            <| fun () ->
                let s, outs =
                    runAll (Session.create plain) [ received "+OK hel"; Input.EndOfStream ]

                expectProtocol ProtocolErrorKind.ConnectionClosed s outs
                Expect.equal s.Partial.Length 0 "partial discarded"

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.GreetingReceived _ -> true
                         | _ -> false))
                    "no greeting"

            testCase "#25 close mid-CAPA: ConnectionClosed, no capabilities"
            <| fun () ->
                let s, outs =
                    runAll
                        (Session.create plain)
                        [ received "+OK hi\r\n"; received "+OK\r\nUSER\r\nTO"; Input.EndOfStream ]

                expectProtocol ProtocolErrorKind.ConnectionClosed s outs

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.CapabilitiesReceived _ -> true
                         | _ -> false))
                    "no CAPA"

            testCase "#25 close after DELE while QUIT awaits its reply: deletions reported as not committed"
            <| fun () ->
                let s0 = loggedIn plain 3 false

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Dele 1UL)
                            received "+OK deleted\r\n"
                            Input.Submit(4L, Request.Quit)
                            received "+OK bye"
                            Input.EndOfStream
                        ]

                expectProtocol ProtocolErrorKind.ConnectionClosed s outs
                Expect.equal (aborted outs |> List.map fst) [ 4L ] "QUIT aborted"

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.Answered(4L, _) -> true
                         | _ -> false))
                    "QUIT never confirmed"

                Expect.stringContains (failedEvents outs).Head.Message "not have been committed" "says so"

            testCase "#26 poisoned session: later Submits are Aborted with the same error, bytes are ignored"
            <| fun () ->
                let s0 = loggedIn plain 3 false
                let s1, outs1 = runAll s0 [ Input.Submit(3L, Request.Stat); received "+OK x y\r\n" ]
                let err = (failedEvents outs1).Head

                let s2, outs2 =
                    runAll
                        s1
                        [
                            received "+OK 1 2\r\n"
                            Input.Submit(4L, Request.Noop)
                            received "+OK\r\n"
                            Input.Submit(5L, Request.Retr 1UL)
                            Input.EndOfStream
                            Input.SaslCancel
                        ]

                Expect.equal (aborted outs2) [ 4L, err; 5L, err ] "same error for every later request"
                Expect.isEmpty (sent outs2) "nothing sent"
                Expect.isEmpty (failedEvents outs2) "no second failure"
                Expect.equal (failure s2) (Some err) "sticky"

                Expect.isFalse
                    (events outs2
                     |> List.exists (function
                         | Event.Answered _ -> true
                         | _ -> false))
                    "bytes ignored"

            testCase "#26 after a write failure the session is poisoned too"
            <| fun () ->
                let s0 = loggedIn plain 3 false

                let te =
                    {
                        Operation = "write"
                        Endpoint = "h:110"
                        Message = "reset"
                        Exception = None
                    }

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Noop)
                            Input.WriteFailed te
                            Input.Submit(4L, Request.Noop)
                        ]

                Expect.equal (aborted outs) [ 3L, Pop3Error.Transport te; 4L, Pop3Error.Transport te ] "aborted"
                Expect.equal (failure s) (Some(Pop3Error.Transport te)) "failed"

            testCase "#28 STAT with a count above 2^64 is a BadNumber, never wrapped"
            <| fun () ->
                let s, outs = loginWithStat plain "+OK 2 99999999999999999999\r\n"
                expectProtocol ProtocolErrorKind.BadNumber s outs
                Expect.equal (aborted outs |> List.map fst) [ 2L ] "login aborted"

            testCase "#28 2^64-1 is legal"
            <| fun () ->
                let s, _ = loginWithStat plain "+OK 1 18446744073709551615\r\n"

                match s.Phase with
                | Phase.Transaction snap -> Expect.equal snap.Octets UInt64.MaxValue "64-bit size"
                | other -> failtestf "logged in expected: %A" other

            testCase "#28 LIST 2 4294967400 is read as 64 bits with NumbersAbove2Pow31"
            <| fun () ->
                let s0 = loggedIn plain 3 false

                let _, outs =
                    runAll s0 [ Input.Submit(3L, Request.List(Some 2UL)); received "+OK 2 4294967400\r\n" ]

                Expect.contains
                    (events outs)
                    (Event.Answered(3L, Reply.ListEntry { Number = 2UL; Octets = 4294967400UL }))
                    "64-bit"

                Expect.contains (events outs) (Event.QuirkTolerated Quirk.NumbersAbove2Pow31) "quirk"

            testCase "#28 LIST 2 4294967400 without the event listed is still parsed as 64-bit, silently"
            <| fun () ->
                let options =
                    { plain with
                        Quirks = plain.Quirks.Remove Quirk.NumbersAbove2Pow31
                    }

                let s0 = loggedIn options 3 false

                let s, outs =
                    runAll s0 [ Input.Submit(3L, Request.List(Some 2UL)); received "+OK 2 4294967400\r\n" ]

                Expect.equal s.Phase.Kind PhaseKind.Transaction "legal (DESIGN §12)"

                Expect.contains
                    (events outs)
                    (Event.Answered(3L, Reply.ListEntry { Number = 2UL; Octets = 4294967400UL }))
                    "no wrap"

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.QuirkTolerated _ -> true
                         | _ -> false))
                    "no event"

            // " 5 100" (a second space after +OK) is the ExtraSpaces quirk: refused when not tolerated.
            for stat, options in
                [
                    "-1 100", plain
                    "+5 100", plain
                    "0x10 100", plain
                    "seven 100", plain
                    "5", plain
                    "5 -3", plain
                    "5 1e3", plain
                    " 5 100", { plain with Quirks = Set.empty }
                ] do
                testCase $"#29 STAT answered '+OK {stat}' is rejected"
                <| fun () ->
                    let s0 = loggedIn options 3 false

                    let s, outs =
                        runAll s0 [ Input.Submit(3L, Request.Stat); received $"+OK {stat}\r\n" ]

                    Expect.isTrue
                        (List.contains
                            (protocolKind s)
                            [ Some ProtocolErrorKind.BadNumber; Some ProtocolErrorKind.BadListing ])
                        (sprintf "BadNumber or BadListing: %A" (render outs))

                    Expect.equal (aborted outs |> List.map fst) [ 3L ] "STAT aborted"

            for line in [ "1 -1"; "-1 100"; "1 +5"; "1 0x10"; "1 seven"; "1"; "x 7 #octets" ] do
                testCase $"#29 a LIST line '{line}' is rejected"
                <| fun () ->
                    let s0 = loggedIn plain 3 false

                    let s, outs =
                        runAll s0 [ Input.Submit(3L, Request.List None); received $"+OK\r\n{line}\r\n.\r\n" ]

                    Expect.isTrue
                        (List.contains
                            (protocolKind s)
                            [ Some ProtocolErrorKind.BadNumber; Some ProtocolErrorKind.BadListing ])
                        (sprintf "BadNumber or BadListing: %A" (render outs))

            testCase "#30 a duplicate message number in LIST is a DuplicateMessageNumber"
            <| fun () ->
                let s0 = loggedIn plain 3 false

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.List None)
                            received "+OK\r\n1 10\r\n2 10\r\n1 10\r\n.\r\n"
                        ]

                expectProtocol ProtocolErrorKind.DuplicateMessageNumber s outs

            testCase "#30 message number 0 in UIDL is a WrongMessageNumber"
            <| fun () ->
                let s0 = loggedIn plain 3 false

                let s, outs =
                    runAll s0 [ Input.Submit(3L, Request.Uidl None); received "+OK\r\n0 abc\r\n.\r\n" ]

                expectProtocol ProtocolErrorKind.WrongMessageNumber s outs

            testCase "#30 a number above the STAT count is a WrongMessageNumber"
            <| fun () ->
                let s0 = loggedIn plain 3 false

                let s, outs =
                    runAll s0 [ Input.Submit(3L, Request.List None); received "+OK\r\n1 10\r\n4 10\r\n.\r\n" ]

                expectProtocol ProtocolErrorKind.WrongMessageNumber s outs

            testCase "#30 LIST 2 answered for message 3 is a WrongMessageNumber"
            <| fun () ->
                let s0 = loggedIn plain 3 false

                let s, outs =
                    runAll s0 [ Input.Submit(3L, Request.List(Some 2UL)); received "+OK 3 120\r\n" ]

                expectProtocol ProtocolErrorKind.WrongMessageNumber s outs

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.Answered(3L, _) -> true
                         | _ -> false))
                    "not answered"

            testCase "#30 UIDL 2 answered for message 1 is a WrongMessageNumber"
            <| fun () ->
                let s0 = loggedIn plain 3 false

                let s, outs =
                    runAll s0 [ Input.Submit(3L, Request.Uidl(Some 2UL)); received "+OK 1 abc\r\n" ]

                expectProtocol ProtocolErrorKind.WrongMessageNumber s outs

            testCase "#30 an out-of-order listing is a quirk event by default and an error under Strict"
            <| fun () ->
                let feed o =
                    runAll
                        (loggedIn o 3 false)
                        [
                            Input.Submit(3L, Request.List None)
                            received "+OK\r\n2 10\r\n1 10\r\n3 10\r\n.\r\n"
                        ]

                let s, outs = feed plain
                Expect.equal s.Phase.Kind PhaseKind.Transaction "tolerated"
                Expect.contains (events outs) (Event.QuirkTolerated Quirk.ListingOutOfOrder) "reported"
                let s, outs = feed strictPlain
                expectProtocol ProtocolErrorKind.BadListing s outs

            testCase "#30 a gap not explained by deletions is a quirk event by default and an error under Strict"
            <| fun () ->
                let feed o =
                    runAll
                        (loggedIn o 3 false)
                        [ Input.Submit(3L, Request.Uidl None); received "+OK\r\n1 a\r\n3 c\r\n.\r\n" ]

                let s, outs = feed plain
                Expect.equal s.Phase.Kind PhaseKind.Transaction "tolerated"
                Expect.contains (events outs) (Event.QuirkTolerated Quirk.ListingGaps) "reported"
                let s, outs = feed strictPlain
                expectProtocol ProtocolErrorKind.BadListing s outs

            testCase "#30 a gap left by our own deletion is legal even under Strict"
            <| fun () ->
                let s, outs =
                    runAll
                        (loggedIn strictPlain 3 false)
                        [
                            Input.Submit(3L, Request.Dele 2UL)
                            received "+OK\r\n"
                            Input.Submit(4L, Request.List None)
                            received "+OK\r\n1 10\r\n3 10\r\n.\r\n"
                        ]

                Expect.equal s.Phase.Kind PhaseKind.Transaction (sprintf "legal: %A" (render outs))

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.QuirkTolerated _ -> true
                         | _ -> false))
                    "no quirk"

            testCase "#31 MaxListingEntries is enforced before the terminator"
            <| fun () ->
                let options = withLimits plain (fun l -> { l with MaxListingEntries = 3UL })
                let s0 = loggedIn options 100 false

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.List None)
                            received "+OK\r\n1 1\r\n2 1\r\n3 1\r\n4 1\r\n"
                        ]

                expectProtocol ProtocolErrorKind.ListingTooLong s outs

            testCase "#31 a listing cannot hold more entries than STAT counted, even with repeated numbers"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let s, outs =
                    runAll s0 [ Input.Submit(3L, Request.List None); received "+OK\r\n1 1\r\n2 1\r\n1 1\r\n" ]

                Expect.isSome (protocolKind s) (sprintf "fails before the terminator: %A" (render outs))

            testCase "#31 STAT claiming 2^31 messages allocates nothing up front"
            <| fun () ->
                // Log in up to the core's STAT, then measure only the step that receives its answer.
                let pre, _ =
                    runAll
                        (Session.create plain)
                        [
                            received "+OK ready\r\n"
                            received "+OK\r\nUSER\r\n.\r\n"
                            Input.Submit(1L, Request.User "bob")
                            received "+OK\r\n"
                            Input.Submit(2L, Request.Pass(pw ()))
                            received "+OK logged in\r\n"
                            received "+OK\r\nUSER\r\n.\r\n"
                        ]

                let input = received "+OK 2147483648 99999999999\r\n"
                Session.step pre input |> ignore // warm up
                let before = GC.GetAllocatedBytesForCurrentThread()
                let struct (after, _) = Session.step pre input
                let allocated = GC.GetAllocatedBytesForCurrentThread() - before
                Expect.isLessThan allocated 65536L "no allocation sized from the count"

                match after.Phase with
                | Phase.Transaction snap -> Expect.equal snap.Count 2147483648UL "count kept as a number"
                | other -> failtestf "logged in expected: %A" other

            testCase "#32 a UID of 71 characters is a BadUid; LongUids accepts it"
            <| fun () ->
                let uid = String('u', 71)

                let feed o =
                    runAll
                        (loggedIn o 1 false)
                        [ Input.Submit(3L, Request.Uidl None); received $"+OK\r\n1 {uid}\r\n.\r\n" ]

                let s, outs = feed plain
                expectProtocol ProtocolErrorKind.BadUid s outs

                let s, outs =
                    feed
                        { plain with
                            Quirks = plain.Quirks.Add Quirk.LongUids
                        }

                Expect.equal s.Phase.Kind PhaseKind.Transaction "accepted"
                Expect.contains (events outs) (Event.QuirkTolerated Quirk.LongUids) "reported"

            for line in [ "1 ab cd"; "1 ab\x01cd"; "1 ab\x7fcd"; "1 ab\xe9"; "1"; "1 " ] do
                testCase $"#32 a UIDL line %A{line} is rejected"
                <| fun () ->
                    let s0 = loggedIn plain 1 false

                    let s, outs =
                        runAll s0 [ Input.Submit(3L, Request.Uidl None); received $"+OK\r\n{line}\r\n.\r\n" ]

                    Expect.isTrue
                        (List.contains
                            (protocolKind s)
                            [ Some ProtocolErrorKind.BadUid; Some ProtocolErrorKind.BadListing ])
                        (sprintf "BadUid: %A" (render outs))

            testCase "#32 duplicate UIDs: a quirk event by default, a BadUid under Strict"
            <| fun () ->
                let feed o =
                    runAll
                        (loggedIn o 2 false)
                        [
                            Input.Submit(3L, Request.Uidl None)
                            received "+OK\r\n1 same\r\n2 same\r\n.\r\n"
                        ]

                let s, outs = feed plain
                Expect.equal s.Phase.Kind PhaseKind.Transaction "listed"
                Expect.contains (events outs) (Event.QuirkTolerated Quirk.DuplicateUids) "reported"
                let s, outs = feed strictPlain
                expectProtocol ProtocolErrorKind.BadUid s outs
        ]

// ----- APOP and SASL (#34–#36) -----------------------------------------------------------------

let private authTests =
    testList
        "auth"
        [
            for name, greeting in
                [
                    "non-ASCII", "+OK <ab\xe9@host>"
                    "control characters", "+OK <a\x01b@host>"
                    "no @", "+OK <1896.697170952.dbc>"
                    "two @", "+OK <a@b@c>"
                    "nested <", "+OK <a<b@c>d>"
                    "2 KB", "+OK <" + String('a', 2048) + "@host>"
                    "< without >", "+OK <1896.697170952@dbc"
                    "empty local part", "+OK <@host>"
                ] do
                testCase $"#34 APOP timestamp abuse ({name}): no APOP"
                <| fun () ->
                    let s0 = authorized plain (greeting + "\r\n") "+OK\r\nUSER\r\n.\r\n"
                    let _, outs = runAll s0 [ Input.Submit(1L, Request.Apop("bob", pw ())) ]
                    expectRefusedKind 1L UsageErrorKind.ApopUnavailable outs

            testCase "#34 a strict timestamp anywhere in the greeting enables APOP"
            <| fun () ->
                let s0 =
                    authorized plain "+OK POP3 <1896.697170952@dbc.mtview.ca.us> ready\r\n" "+OK\r\nUSER\r\n.\r\n"

                let _, outs =
                    runAll s0 [ Input.Submit(1L, Request.Apop("mrose", Secret.FromString "tanstaaf")) ]

                Expect.equal (sent outs) [ "APOP mrose c4c9334bac560ecc979e58001b3e22fb" ] "RFC 1939 example digest"

            for challenge in [ "not base64!"; "===="; "QUJD RA=="; "QUJDRA"; "QU=JD"; "+junk+" ] do
                testCase $"#35 bad SASL challenge %A{challenge}: '*' sent, then BadSaslChallenge"
                <| fun () ->
                    let s0 = authorized plain "+OK hi\r\n" "+OK\r\nSASL CRAM-MD5\r\n.\r\n"

                    let s, outs =
                        runAll
                            s0
                            [
                                Input.Submit(1L, Request.Auth("CRAM-MD5", None))
                                received $"+ {challenge}\r\n"
                            ]

                    Expect.equal (sent outs) [ "AUTH CRAM-MD5"; "*" ] "cancelled with *"
                    expectProtocol ProtocolErrorKind.BadSaslChallenge s outs

                    Expect.isFalse
                        (events outs
                         |> List.exists (function
                             | Event.SaslChallenge _ -> true
                             | _ -> false))
                        "no challenge handed out"

            testCase "#36 a challenge over MaxSaslChallengeOctets: '*' and SaslLimitExceeded"
            <| fun () ->
                let options = withLimits plain (fun l -> { l with MaxSaslChallengeOctets = 16 })
                let s0 = authorized options "+OK hi\r\n" "+OK\r\nSASL CRAM-MD5\r\n.\r\n"
                let big = Convert.ToBase64String(Array.create 64 65uy)

                let s, outs =
                    runAll s0 [ Input.Submit(1L, Request.Auth("CRAM-MD5", None)); received $"+ {big}\r\n" ]

                Expect.equal (sent outs) [ "AUTH CRAM-MD5"; "*" ] "cancelled"
                expectProtocol ProtocolErrorKind.SaslLimitExceeded s outs

            testCase "#36 a 16 MiB challenge fails with bounded memory"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nSASL CRAM-MD5\r\n.\r\n"

                let mutable s =
                    fst (runAll s0 [ Input.Submit(1L, Request.Auth("CRAM-MD5", None)); received "+ " ])

                let chunk = Encoding.ASCII.GetBytes(String('A', 65536))

                for _ in 1..256 do
                    let struct (next, _) = Session.step s (Input.Received(ReadOnlyMemory chunk))
                    s <- next
                    // A challenge line may grow to the SASL limit in base64 (RFC 5034 §4), no further.
                    Expect.isLessThan
                        s.Partial.Length
                        ((s.Options.Limits.MaxSaslChallengeOctets + 2) / 3 * 4 + 4)
                        "bounded"

                Expect.isSome (protocolKind s) "failed"

            testCase "#36 endless SASL rounds stop at MaxSaslRounds"
            <| fun () ->
                let options = withLimits plain (fun l -> { l with MaxSaslRounds = 3 })
                let s0 = authorized options "+OK hi\r\n" "+OK\r\nSASL X-ENDLESS\r\n.\r\n"
                let mutable s = fst (runAll s0 [ Input.Submit(1L, Request.Auth("CRAM-MD5", None)) ])
                let all = ResizeArray<Norm>()

                for _ in 1..5 do
                    let s', outs =
                        runAll s [ received "+ QUJD\r\n"; Input.SaslRespond(Secret.FromString "x") ]

                    s <- s'
                    all.AddRange outs

                let outs = List.ofSeq all
                expectProtocol ProtocolErrorKind.SaslLimitExceeded s outs

                Expect.equal
                    (events outs
                     |> List.filter (function
                         | Event.SaslChallenge _ -> true
                         | _ -> false))
                        .Length
                    3
                    "three rounds"

                Expect.contains (sent outs) "*" "cancelled"

            testCase "#36 a second challenge before the caller answered is UnsolicitedData"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nSASL CRAM-MD5\r\n.\r\n"

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Auth("CRAM-MD5", None))
                            received "+ QUJD\r\n+ QUJD\r\n"
                        ]

                expectProtocol ProtocolErrorKind.UnsolicitedData s outs

            testCase "#36 -ERR to AUTH is a rejection, never decoded as a challenge"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nSASL CRAM-MD5\r\n.\r\n"

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Auth("CRAM-MD5", None))
                            received "-ERR [AUTH] UUJE\r\n"
                        ]

                Expect.equal s.Phase.Kind PhaseKind.Authorization "back to authorization"

                Expect.equal
                    (rejected outs |> List.map (fun (id, e) -> id, e.Code))
                    [ 1L, Some ResponseCode.Auth ]
                    "rejected"

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.SaslChallenge _ -> true
                         | _ -> false))
                    "no challenge"

            testCase "#36 a SASL answer with no exchange waiting is refused"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\n.\r\n"
                let _, outs = runAll s0 [ Input.SaslRespond(pw ()); Input.SaslCancel ]

                Expect.equal
                    (refused outs |> List.map (fun (_, e) -> e.Kind))
                    [ UsageErrorKind.NoSaslExchange; UsageErrorKind.NoSaslExchange ]
                    "refused"

                Expect.isEmpty (sent outs) "nothing sent"
        ]

// ----- response codes, caller input, secrets, server text (#38–#42) ----------------------------

let private codes =
    [
        "IN-USE", ResponseCode.InUse
        "LOGIN-DELAY", ResponseCode.LoginDelay
        "SYS/TEMP", ResponseCode.SysTemp
        "SYS/PERM", ResponseCode.SysPerm
        "AUTH", ResponseCode.Auth
        "X-VENDOR/ODD", ResponseCode.Other "X-VENDOR/ODD"
    ]

let private inputTests =
    testList
        "input"
        [
            for wire, code in codes do
                testCase $"#38 PASS -ERR [{wire}] is typed, rejected once, never retried"
                <| fun () ->
                    let s0 = authorized plain "+OK hi\r\n" "+OK\r\nUSER\r\n.\r\n"

                    let s, outs =
                        runAll
                            s0
                            [
                                Input.Submit(1L, Request.User "bob")
                                received "+OK\r\n"
                                Input.Submit(2L, Request.Pass(pw ()))
                                received $"-ERR [{wire}] go away\r\n"
                            ]

                    Expect.equal
                        (rejected outs)
                        [
                            2L,
                            {
                                Command = "PASS"
                                Code = Some code
                                Text = "go away"
                            }
                        ]
                        "typed"

                    Expect.equal ((sent outs) |> List.filter (fun l -> l.StartsWith "PASS")).Length 1 "no retry"
                    Expect.equal s.Phase.Kind PhaseKind.Authorization "may try again"

                testCase $"#38 a greeting -ERR [{wire}] fails with the typed code"
                <| fun () ->
                    let s, _ = runAll (Session.create plain) [ received $"-ERR [{wire}] later\r\n" ]

                    match failure s with
                    | Some(Pop3Error.Server e) -> Expect.equal e.Code (Some code) "code"
                    | other -> failtestf "Server error expected: %A" other

            testCase "#38 a +OK [IN-USE] greeting keeps the code and goes on"
            <| fun () ->
                let _, outs = runAll (Session.create plain) [ received "+OK [IN-USE] hi\r\n" ]

                let g =
                    events outs
                    |> List.pick (function
                        | Event.GreetingReceived g -> Some g
                        | _ -> None)

                Expect.equal g.Code (Some ResponseCode.InUse) "code kept"

            testCase "#38 QUIT -ERR [SYS/TEMP] is typed and commits nothing"
            <| fun () ->
                let s, outs =
                    runAll
                        (loggedIn plain 2 false)
                        [
                            Input.Submit(3L, Request.Dele 1UL)
                            received "+OK\r\n"
                            Input.Submit(4L, Request.Quit)
                            received "-ERR [SYS/TEMP] could not commit\r\n"
                        ]

                Expect.equal
                    (rejected outs |> List.map (fun (id, e) -> id, e.Code))
                    [ 4L, Some ResponseCode.SysTemp ]
                    "typed"

                Expect.equal s.Phase.Kind PhaseKind.Closed "closed"

            for what, request in
                [
                    "user name CR LF", Request.User "bob\r\nDELE 1"
                    "user name NUL", Request.User "bob\000"
                    "user name LF", Request.User "bob\nQUIT"
                    "APOP name", Request.Apop("bob\r\nDELE 1", Secret.FromString "x")
                    "APOP secret", Request.Apop("bob", Secret.FromString "x\ry")
                    "AUTH mechanism", Request.Auth("PLAIN\r\nUSER x", None)
                    "LANG tag", Request.Lang(Some "en\r\nDELE 1")
                    "RPOP-like USER with CR only", Request.User "bob\rx"
                ] do
                testCase $"#39 caller injection in the {what} is refused before any byte"
                <| fun () ->
                    let s0 =
                        authorized plain "+OK hi <1.2@host>\r\n" "+OK\r\nUSER\r\nLANG\r\nSASL PLAIN\r\n.\r\n"

                    let s, outs = runAll s0 [ Input.Submit(1L, request) ]
                    expectRefusedKind 1L UsageErrorKind.InvalidArgument outs
                    Expect.equal s.Phase s0.Phase "session unchanged"

            for what, password in [ "CR LF", "pw\r\nDELE 1"; "NUL", "pw\000"; "LF", "pw\n" ] do
                testCase $"#39 caller injection in the password ({what}) is refused before any byte"
                <| fun () ->
                    let s0 = authorized plain "+OK hi\r\n" "+OK\r\nUSER\r\n.\r\n"
                    let s1, _ = runAll s0 [ Input.Submit(1L, Request.User "bob"); received "+OK\r\n" ]

                    let s, outs =
                        runAll s1 [ Input.Submit(2L, Request.Pass(Secret.FromString password)) ]

                    expectRefusedKind 2L UsageErrorKind.InvalidArgument outs
                    Expect.equal s.Phase s1.Phase "session unchanged"

            testCase "#39 RPOP user with CR LF is refused"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nUSER\r\n.\r\n"
                let s1, _ = runAll s0 [ Input.Submit(1L, Request.User "bob"); received "+OK\r\n" ]
                let _, outs = runAll s1 [ Input.Submit(2L, Request.Rpop "bob\r\nDELE 1") ]
                expectRefusedKind 2L UsageErrorKind.InvalidArgument outs

            testCase "#40 a command over 255 octets is refused as CommandTooLong"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nUSER\r\n.\r\n"
                let name = String('a', 250)
                let _, outs = runAll s0 [ Input.Submit(1L, Request.User name) ]
                expectRefusedKind 1L UsageErrorKind.CommandTooLong outs

            testCase "#40 exactly 255 octets with CRLF is sent; long e-mail user names are fine"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nUSER\r\n.\r\n"
                let name = String('a', 248)
                let _, outs = runAll s0 [ Input.Submit(1L, Request.User name) ]
                Expect.equal (sent outs) [ "USER " + name ] "255 octets sent"

                let _, outs =
                    runAll
                        s0
                        [
                            Input.Submit(2L, Request.User "first.last.with.a.long.name@example.example.com")
                        ]

                Expect.equal (sent outs).Length 1 "no 40-character cap"

            testCase "#40 a space in a user name is refused"
            <| fun () ->
                let s0 = authorized plain "+OK hi <1.2@host>\r\n" "+OK\r\nUSER\r\n.\r\n"
                let _, outs = runAll s0 [ Input.Submit(1L, Request.User "bob smith") ]
                expectRefusedKind 1L UsageErrorKind.InvalidArgument outs
                let _, outs = runAll s0 [ Input.Submit(2L, Request.Apop("bob smith", pw ())) ]
                expectRefusedKind 2L UsageErrorKind.InvalidArgument outs

            testCase "#40 PASS with spaces is allowed (RFC 1939 §7)"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nUSER\r\n.\r\n"

                let _, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.User "bob")
                            received "+OK\r\n"
                            Input.Submit(2L, Request.Pass(Secret.FromString "correct horse battery"))
                        ]

                Expect.equal (sent outs) [ "USER bob"; "PASS correct horse battery" ] "sent as is"

            testCase "#40 an AUTH initial response that does not fit goes in the first continuation"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nSASL PLAIN\r\n.\r\n"
                let ir = String('p', 300)

                let _, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Auth("PLAIN", Some(Secret.FromString ir)))
                            received "+ \r\n"
                        ]

                Expect.equal (sent outs) [ "AUTH PLAIN"; Convert.ToBase64String(Encoding.UTF8.GetBytes ir) ] "deferred"

            testCase "#41 the canary password never appears in LogText, events, errors or the session's text"
            <| fun () ->
                let ir = Encoding.UTF8.GetBytes("\000bob\000" + canary)
                let b64 = Convert.ToBase64String ir
                let b64Canary = Convert.ToBase64String(Encoding.UTF8.GetBytes canary)

                let inputs =
                    [
                        received "+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n"
                        received "+OK\r\nUSER\r\nSASL PLAIN CRAM-MD5\r\n.\r\n"
                        Input.Submit(1L, Request.User "bob")
                        received "+OK\r\n"
                        Input.Submit(2L, Request.Pass(pw ()))
                        received "-ERR [AUTH] wrong\r\n"
                        Input.Submit(3L, Request.Apop("bob", pw ()))
                        received "-ERR [AUTH] wrong\r\n"
                        Input.Submit(4L, Request.Auth("PLAIN", Some(Secret.FromBytes(ReadOnlySpan ir))))
                        received "-ERR [AUTH] wrong\r\n"
                        Input.Submit(5L, Request.Auth("PLAIN", None))
                        received "+ \r\n"
                        Input.SaslRespond(Secret.FromBytes(ReadOnlySpan ir))
                        received "-ERR [AUTH] wrong\r\n"
                        Input.Submit(6L, Request.Auth("PLAIN", Some(Secret.FromString(canary + String('x', 300)))))
                        received "+ \r\n"
                        received "-ERR no\r\n"
                        Input.Submit(7L, Request.User "bob")
                        received "+OK\r\n"
                        Input.Submit(8L, Request.Pass(Secret.FromString(canary + "\r\n")))
                        Input.Submit(9L, Request.Pass(pw ()))
                        received "+OK welcome\r\n"
                        received "+OK\r\nUSER\r\n.\r\n"
                        received "+OK 1 10\r\n"
                        Input.Submit(10L, Request.Stat)
                        received "+OK x\r\n"
                    ]

                let s, texts, wire = observe (Session.create plain) inputs

                // The exchange really carried the secrets, so the scan below is meaningful.
                Expect.stringContains wire ("PASS " + canary) "PASS sent"
                Expect.stringContains wire ("AUTH PLAIN " + b64) "PLAIN initial response sent"
                Expect.stringContains wire (b64 + "\r\n") "continuation sent"
                Expect.stringContains wire b64Canary "deferred response sent"
                Expect.equal s.Phase.Kind PhaseKind.Failed "ends failed"

                for t in texts do
                    for needle in [ canary; b64; b64Canary ] do
                        Expect.isFalse (t.Contains needle) $"secret in %s{t}"

            testCase "#42 hostile -ERR text is data: format strings kept, controls escaped in the message"
            <| fun () ->
                let hostile = "{0} %s%n \x1b[2J\x9b31m bell\x07 " + String('z', 500)
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nUSER\r\n.\r\n"

                let _, outs =
                    runAll s0 [ Input.Submit(1L, Request.User "bob"); received $"-ERR {hostile}\r\n" ]

                let _, e = (rejected outs).Head
                Expect.equal e.Text hostile "text kept verbatim"
                Expect.stringContains e.Message "{0} %s%n" "never a format template"

                for c in e.Message do
                    Expect.isFalse (Char.IsControl c) $"control U+{int c:X4} escaped"

            testCase "#42 bidi controls in UTF-8 server text are escaped in the message"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nUTF8\r\nUSER\r\n.\r\n"

                let s1, _ = runAll s0 [ Input.Submit(1L, Request.Utf8); received "+OK utf8\r\n" ]

                let bytes =
                    Array.concat
                        [
                            ascii "-ERR evil "
                            Encoding.UTF8.GetBytes "\u202Egnp.exe\u2066x"
                            ascii "\r\n"
                        ]

                let _, outs =
                    runAll s1 [ Input.Submit(2L, Request.User "bob"); Input.Received(ReadOnlyMemory bytes) ]

                let _, e = (rejected outs).Head
                Expect.stringContains e.Text "\u202E" "text kept"
                Expect.isFalse (e.Message.Contains '\u202E' || e.Message.Contains '\u2066') "bidi escaped"

            testCase "#42 control characters in a protocol error quote are escaped"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let _, outs =
                    runAll s0 [ Input.Submit(3L, Request.Stat); received "+OK \x1b[31m 5\r\n" ]

                let e = (failedEvents outs).Head

                for c in e.Message do
                    Expect.isFalse (Char.IsControl c) $"control U+{int c:X4} escaped"
        ]

// ----- UTF8, pipelining, states, QUIT (#43–#46) ------------------------------------------------

let private sessionTests =
    testList
        "session"
        [
            testCase "#43 UTF8 not advertised: Refused CapabilityMissing"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nUSER\r\n.\r\n"
                let _, outs = runAll s0 [ Input.Submit(1L, Request.Utf8) ]
                expectRefusedKind 1L UsageErrorKind.CapabilityMissing outs

            testCase "#43 UTF8 after login: Refused WrongState"
            <| fun () ->
                let _, outs = runAll (loggedIn plain 2 false) [ Input.Submit(3L, Request.Utf8) ]
                expectRefusedKind 3L UsageErrorKind.WrongState outs

            testCase "#43 invalid UTF-8 in replies after UTF8 decodes deterministically"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nUTF8\r\nUSER\r\n.\r\n"
                let s1, _ = runAll s0 [ Input.Submit(1L, Request.Utf8); received "+OK\r\n" ]

                let step () =
                    runAll s1 [ Input.Submit(2L, Request.User "bob"); received "-ERR \xff\xfe\xc3\r\n" ]

                let s, outs = step ()
                Expect.equal s.Phase.Kind PhaseKind.Authorization "rejected, not failed"
                Expect.equal (render outs) (render (snd (step ()))) "deterministic"

            testCase "#44 broken pipelining: fewer replies then close aborts every pending request, none mispaired"
            <| fun () ->
                let s0 = loggedIn plain 3 true

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.List(Some 1UL))
                            Input.Submit(4L, Request.List(Some 2UL))
                            Input.Submit(5L, Request.List(Some 3UL))
                            received "+OK 1 100\r\n"
                            Input.EndOfStream
                        ]

                Expect.equal (sent outs) [ "LIST 1"; "LIST 2"; "LIST 3" ] "pipelined"

                Expect.contains
                    (events outs)
                    (Event.Answered(3L, Reply.ListEntry { Number = 1UL; Octets = 100UL }))
                    "first answered"

                Expect.equal (aborted outs |> List.map fst) [ 4L; 5L ] "the rest aborted"
                expectProtocol ProtocolErrorKind.ConnectionClosed s outs

            testCase "#44 broken pipelining: a reply for the wrong message is never paired with another request"
            <| fun () ->
                let s0 = loggedIn plain 3 true

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.List(Some 1UL))
                            Input.Submit(4L, Request.List(Some 2UL))
                            received "+OK 2 200\r\n"
                        ]

                expectProtocol ProtocolErrorKind.WrongMessageNumber s outs
                Expect.equal (aborted outs |> List.map fst) [ 3L; 4L ] "both aborted"

            testCase "#44 broken pipelining: an extra reply is UnsolicitedData"
            <| fun () ->
                let s0 = loggedIn plain 3 true

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Noop)
                            Input.Submit(4L, Request.Noop)
                            received "+OK\r\n+OK\r\n+OK\r\n"
                        ]

                expectProtocol ProtocolErrorKind.UnsolicitedData s outs

                Expect.equal
                    (events outs
                     |> List.filter (function
                         | Event.Answered _ -> true
                         | _ -> false))
                        .Length
                    2
                    "two answered"

            testCase "#45 STLS after login is refused before any byte"
            <| fun () ->
                let _, outs = runAll (loggedIn plain 2 false) [ Input.Submit(3L, Request.Stls) ]
                expectRefusedKind 3L UsageErrorKind.WrongState outs

            testCase "#45 a second STLS with TLS active is refused before any byte"
            <| fun () ->
                let s, _ = afterTls "+OK\r\nUSER\r\nSTLS\r\n.\r\n"
                let _, outs = runAll s [ Input.Submit(1L, Request.Stls) ]
                expectRefusedKind 1L UsageErrorKind.WrongState outs
                let s0 = authorized Options.Default "+OK hi\r\n" "+OK\r\nSTLS\r\n.\r\n"
                let _, outs = runAll s0 [ Input.Submit(2L, Request.Stls) ]
                expectRefusedKind 2L UsageErrorKind.WrongState outs

            testCase "#45 RETR, DELE, STAT before login are refused before any byte"
            <| fun () ->
                let s0 = authorized plain "+OK hi\r\n" "+OK\r\nUSER\r\n.\r\n"

                for id, r in
                    [
                        1L, Request.Retr 1UL
                        2L, Request.Dele 1UL
                        3L, Request.Stat
                        4L, Request.Pass(pw ())
                    ] do
                    let _, outs = runAll s0 [ Input.Submit(id, r) ]
                    expectRefusedKind id UsageErrorKind.WrongState outs

            testCase "#45 a command before the greeting is refused"
            <| fun () ->
                let _, outs = runAll (Session.create plain) [ Input.Submit(1L, Request.User "bob") ]
                expectRefusedKind 1L UsageErrorKind.WrongState outs

            testCase "#45 RETR of a message outside the snapshot or deleted is refused"
            <| fun () ->
                let s0 = loggedIn plain 2 false
                let _, outs = runAll s0 [ Input.Submit(3L, Request.Retr 3UL) ]
                expectRefusedKind 3L UsageErrorKind.NoSuchMessage outs
                let s1, _ = runAll s0 [ Input.Submit(4L, Request.Dele 1UL); received "+OK\r\n" ]
                let _, outs = runAll s1 [ Input.Submit(5L, Request.Retr 1UL) ]
                expectRefusedKind 5L UsageErrorKind.MessageDeleted outs

            testCase "#46 QUIT refused: Rejected, Close, deletions not reported as committed"
            <| fun () ->
                let s, outs =
                    runAll
                        (loggedIn plain 2 false)
                        [
                            Input.Submit(3L, Request.Dele 1UL)
                            received "+OK\r\n"
                            Input.Submit(4L, Request.Quit)
                            received "-ERR please stay\r\n"
                        ]

                Expect.equal (rejected outs |> List.map fst) [ 4L ] "QUIT rejected"
                Expect.equal (List.last outs) NClose "then Close"
                Expect.equal s.Phase.Kind PhaseKind.Closed "closed"

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.Answered(_, Reply.Quit _) -> true
                         | _ -> false))
                    "no commit reported"

            testCase "#46 a DELE refused while QUIT waits is not reported as committed"
            <| fun () ->
                let s0 = loggedIn plain 2 true

                let _, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Dele 1UL)
                            Input.Submit(4L, Request.Dele 2UL)
                            Input.Submit(5L, Request.Quit)
                            received "+OK\r\n-ERR locked\r\n"
                            received "+OK bye\r\n"
                        ]

                let quit =
                    events outs
                    |> List.pick (function
                        | Event.Answered(5L, Reply.Quit q) -> Some q
                        | _ -> None)

                Expect.equal quit.DeletionsCommitted [ 1UL ] "only the accepted DELE"
        ]

[<Tests>]
let tests =
    testList "SecurityTests" [ stlsTests; framingTests; numberTests; authTests; inputTests; sessionTests ]
