/// Regression tests from the review of the core (issue #3): each one proved a defect, now fixed.
module Pop3Functional.Core.Tests.RegressionTests

open System
open System.IO
open System.Reflection
open System.Xml.Linq
open Expecto
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

let private protocolKind (s: SessionState) =
    match s.Phase with
    | Phase.Failed(Pop3Error.Protocol e) -> Some e.Kind
    | _ -> None

/// Steps and turns any escaping exception into a test failure naming it.
let private noThrow (f: unit -> 'a) =
    try
        f ()
    with ex ->
        failtestf "an exception escaped Session.step: %s: %s" (ex.GetType().Name) ex.Message

let private authorized (options: Options) =
    let s, _ =
        runAll (Session.create options) [ received "+OK hi\r\n"; received "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n" ]

    if s.Phase.Kind <> PhaseKind.Authorization then
        failtestf "not in authorization: %A" s.Phase.Kind

    s

/// Logged in with every reply carrying text (so no EmptyStatusText is needed).
let private loggedInTexts (options: Options) =
    let s, outs =
        runAll
            (Session.create options)
            [
                received "+OK ready\r\n"
                received "+OK caps\r\nUSER\r\n.\r\n"
                Input.Submit(1L, Request.User "bob")
                received "+OK user\r\n"
                Input.Submit(2L, Request.Pass(Secret.FromString "pw"))
                received "+OK logged in\r\n"
                received "+OK caps\r\nUSER\r\n.\r\n"
                received "+OK 2 200\r\n"
            ]

    if s.Phase.Kind <> PhaseKind.Transaction then
        failtestf "not logged in: %A" (render outs)

    s

let private committed outs =
    events outs
    |> List.choose (function
        | Event.Answered(_, Reply.Quit q) -> Some q.DeletionsCommitted
        | _ -> None)

[<Tests>]
let tests =
    testList
        "RegressionTests"
        [
            // ---- mispairing: bytes in the same chunk as a reply are given to a command sent in this step
            testCase "R1 a fake CAPA answer in the greeting's chunk is unsolicited (security.md #22)"
            <| fun () ->
                // The client cannot have sent CAPA before this chunk was received.
                let s, outs =
                    runAll (Session.create plain) [ received "+OK hi\r\n+OK\r\nSASL PLAIN\r\nUSER\r\n.\r\n" ]

                Expect.equal
                    (protocolKind s)
                    (Some ProtocolErrorKind.UnsolicitedData)
                    (sprintf "expected UnsolicitedData; got %A" (render outs))

            testCase
                "R1b lock-step: a line after a reply, in the same chunk, is not the reply to the command sent in this step"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Noop)
                            Input.Submit(4L, Request.Stat)
                            received "+OK\r\n+OK 99 9999\r\n"
                        ]

                Expect.equal
                    (protocolKind s)
                    (Some ProtocolErrorKind.UnsolicitedData)
                    (sprintf "STAT was sent after this chunk arrived; got %A" (render outs))

            // ---- exceptions escaping Session.step
            testCase "R2a a deferred AUTH initial response disposed after Submit: the server's '+ ' throws"
            <| fun () ->
                let s0 = authorized plain
                let ir = Secret.FromString(String('x', 300)) // does not fit in 255 octets: deferred
                let s1, _ = runAll s0 [ Input.Submit(1L, Request.Auth("PLAIN", Some ir)) ]
                (ir :> IDisposable).Dispose() // the caller is done with it
                noThrow (fun () -> Session.step s1 (received "+ \r\n")) |> ignore

            testCase "R2b SaslRespond with a disposed secret throws"
            <| fun () ->
                let s0 = authorized plain

                let s1, _ =
                    runAll s0 [ Input.Submit(1L, Request.Auth("PLAIN", None)); received "+ \r\n" ]

                let r = Secret.FromString "resp"
                (r :> IDisposable).Dispose()
                noThrow (fun () -> Session.step s1 (Input.SaslRespond r)) |> ignore

            testCase "R2c Request.Auth(mech, Some null) throws instead of a UsageError (Secret allows null)"
            <| fun () ->
                let s0 = authorized plain

                noThrow (fun () -> Session.step s0 (Input.Submit(1L, Request.Auth("PLAIN", Some null))))
                |> ignore

            testCase "R2d a small MaxCommandOctets makes the greeting throw (core CAPA cannot be encoded)"
            <| fun () ->
                let o =
                    { plain with
                        Limits =
                            { plain.Limits with
                                MaxCommandOctets = 5
                            }
                    }

                noThrow (fun () -> Session.step (Session.create o) (received "+OK hi\r\n"))
                |> ignore

            testCase "R2e PASS with a disposed secret: misleading 'CR, LF or NUL' message"
            <| fun () ->
                let s0, _ =
                    runAll (authorized plain) [ Input.Submit(1L, Request.User "bob"); received "+OK\r\n" ]

                let pw = Secret.FromString "hunter2"
                (pw :> IDisposable).Dispose()
                let _, outs = runAll s0 [ Input.Submit(2L, Request.Pass pw) ]

                let msg =
                    events outs
                    |> List.pick (function
                        | Event.Refused(_, e) -> Some e.Message
                        | _ -> None)

                Expect.isFalse (msg.Contains "CR, LF or NUL") $"message for a disposed secret: {msg}"

            // ---- SASL challenge size limit unreachable
            testCase "R3 a 12 KiB SASL challenge (under MaxSaslChallengeOctets 64 KiB) is refused as LineTooLong"
            <| fun () ->
                let s0 = authorized plain
                let challenge = Convert.ToBase64String(Array.create 12000 65uy)

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Auth("GSSAPI", None))
                            received ("+ " + challenge + "\r\n")
                        ]

                Expect.isNone
                    (protocolKind s)
                    (sprintf "RFC 5034 §4: challenge size is independent of line limits; %A" s.Phase)

                Expect.isTrue
                    (events outs
                     |> List.exists (function
                         | Event.SaslChallenge _ -> true
                         | _ -> false))
                    "challenge delivered"

            // ---- ExtraSpaces quirk does not cover a leading double space
            testCase "R4 '+OK  2 320' to STAT with ExtraSpaces enabled is tolerated"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let s, outs =
                    runAll s0 [ Input.Submit(3L, Request.Stat); received "+OK  2 320\r\n" ]

                Expect.isNone (protocolKind s) (sprintf "tolerated as extra-spaces; got %A" (render outs))

            testCase "R4b LIST 1 answered '+OK  1 120' with ExtraSpaces enabled is tolerated"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let s, outs =
                    runAll s0 [ Input.Submit(3L, Request.List(Some 1UL)); received "+OK  1 120\r\n" ]

                Expect.isNone (protocolKind s) (sprintf "tolerated as extra-spaces; got %A" (render outs))

            // ---- deletion bookkeeping keyed by message number, not by request
            testCase "R5a DELE 1 -ERR, RSET -ERR, QUIT +OK: message 1 reported committed though never marked"
            <| fun () ->
                let s0 = loggedIn plain 3 true

                let _, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Dele 1UL)
                            Input.Submit(4L, Request.Rset)
                            Input.Submit(5L, Request.Quit)
                            received "-ERR cannot\r\n-ERR cannot\r\n"
                            received "+OK bye\r\n"
                        ]

                Expect.equal (committed outs) [ [] ] (sprintf "nothing was deleted; %A" (render outs))

            testCase "R5b DELE 1 -ERR, RSET +OK, DELE 1 +OK, QUIT +OK: message 1 deleted but not reported"
            <| fun () ->
                let s0 = loggedIn plain 3 true

                let _, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Dele 1UL)
                            Input.Submit(4L, Request.Rset)
                            Input.Submit(5L, Request.Dele 1UL)
                            Input.Submit(6L, Request.Quit)
                            received "-ERR busy\r\n+OK\r\n+OK deleted\r\n"
                            received "+OK bye\r\n"
                        ]

                Expect.equal (committed outs) [ [ 1UL ] ] (sprintf "message 1 was deleted; %A" (render outs))

            // ---- DESIGN §12: legal, not quirks
            testCase "R6a '+OK' with no text is legal with no quirk option (DESIGN §12)"
            <| fun () ->
                let o = { plain with Quirks = Set.empty }
                let s0 = loggedInTexts o
                let s, outs = runAll s0 [ Input.Submit(3L, Request.Noop); received "+OK\r\n" ]
                Expect.isNone (protocolKind s) (sprintf "legal per RFC 1939; got %A" (render outs))

            testCase "R6b CAPA -ERR is legal with no quirk option (DESIGN §12)"
            <| fun () ->
                let o = { plain with Quirks = Set.empty }

                let s, outs =
                    runAll (Session.create o) [ received "+OK hi\r\n"; received "-ERR what\r\n" ]

                Expect.equal s.Phase.Kind PhaseKind.Authorization (sprintf "RFC 1939 server; got %A" (render outs))

            testCase "R6c a size above 2^31 is legal with no quirk option (DESIGN §12)"
            <| fun () ->
                let o = { plain with Quirks = Set.empty }
                let s0 = loggedInTexts o

                let s, outs =
                    runAll s0 [ Input.Submit(3L, Request.Stat); received "+OK 2 5000000000\r\n" ]

                Expect.isNone (protocolKind s) (sprintf "numbers up to 2^64-1; got %A" (render outs))

            // ---- the phase moves at submission: a LIST before a queued QUIT loses its STAT bound
            testCase "R7 LIST answered after QUIT was queued is still bounded by the STAT count"
            <| fun () ->
                let s0 = loggedIn plain 2 true

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.List None)
                            Input.Submit(4L, Request.Quit)
                            received "+OK\r\n1 100\r\n2 100\r\n7 100\r\n.\r\n"
                        ]

                Expect.equal
                    (protocolKind s)
                    (Some ProtocolErrorKind.WrongMessageNumber)
                    (sprintf "message 7 > STAT count 2; got %A" (render outs))

            // ---- bare LF inside a CRLF body terminates it without the bare-lf quirk
            testCase "R8 without bare-lf, 'x LF . CRLF' inside a body is data, not the terminator"
            <| fun () ->
                let o = { plain with Quirks = Set.empty }

                let s0 =
                    loggedIn
                        { o with
                            Quirks = Set.ofList [ Quirk.EmptyStatusText; Quirk.MissingCapa ]
                        }
                        2
                        false

                let s, outs =
                    runAll s0 [ Input.Submit(3L, Request.Retr 1UL); received "+OK\r\nab\n.\r\ncd\r\n.\r\n" ]

                Expect.isNone (protocolKind s) (sprintf "only CRLF.CRLF terminates; got %A" (render outs))

            // ---- error message for an empty mailbox
            testCase "R9 RETR 1 in an empty mailbox: message should not say 'messages 1 to 0'"
            <| fun () ->
                let s0 = loggedIn plain 0 false
                let _, outs = runAll s0 [ Input.Submit(3L, Request.Retr 1UL) ]

                let msg =
                    events outs
                    |> List.pick (function
                        | Event.Refused(_, e) -> Some e.Message
                        | _ -> None)

                Expect.isFalse (msg.Contains "1 to 0") msg

            // ---- SASL: a final status while the caller still owes an answer
            testCase "R12 '+OK' while the client has not answered the last challenge is not a login (security.md #37)"
            <| fun () ->
                let s0 = authorized plain

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Auth("SCRAM-SHA-256", None))
                            received "+ cj1zb21l\r\n+OK welcome\r\n"
                        ]

                Expect.isFalse
                    (events outs
                     |> List.exists (function
                         | Event.Answered(1L, _) -> true
                         | _ -> false)
                     || s.Phase.Kind = PhaseKind.OpeningMailbox
                     || s.Phase.Kind = PhaseKind.Transaction)
                    (sprintf "the client never sent its response; got %A" (render outs))

            testCase
                "R13 '+OK' to the '*' cancel is a protocol error, not a login (RFC 5034 §4: server MUST reply -ERR)"
            <| fun () ->
                let s0 = authorized plain

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Auth("SCRAM-SHA-256", None))
                            received "+ cj1zb21l\r\n"
                            Input.SaslCancel
                            received "+OK welcome\r\n"
                        ]

                Expect.isFalse
                    (s.Phase.Kind = PhaseKind.OpeningMailbox || s.Phase.Kind = PhaseKind.Transaction)
                    (sprintf "cancelled exchange logged in; got %A" (render outs))

            // ---- STLS: the server forgets UTF8 mode (RFC 2595 §4), the client does not
            testCase "R14 UTF8 mode negotiated before STLS is forgotten after the handshake"
            <| fun () ->
                let s0, _ =
                    runAll
                        (Session.create plain)
                        [ received "+OK hi\r\n"; received "+OK\r\nSTLS\r\nUTF8\r\nUSER\r\n.\r\n" ]

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Utf8)
                            received "+OK utf8\r\n"
                            Input.Submit(2L, Request.Stls)
                            received "+OK go\r\n"
                            Input.TlsEstablished None
                        ]

                Expect.isTrue s.TlsActive (sprintf "TLS up: %A" (render outs))
                Expect.isFalse s.Utf8Active "RFC 2595 §4: the server discards what the client told it before TLS"

            // ---- a session printed with %A must not show the password
            testCase "R15 (guard, passes) %A of a session with PASS in flight does not contain the password"
            <| fun () ->
                let s0, _ =
                    runAll (authorized plain) [ Input.Submit(1L, Request.User "bob"); received "+OK\r\n" ]

                let s, _ =
                    runAll s0 [ Input.Submit(2L, Request.Pass(Secret.FromString "Canary-P4ss")) ]

                let printed = sprintf "%A" s
                Expect.isFalse (printed.Contains "Canary-P4ss") "no password in %A"

            // ---- the C# face: F# types in Pop3Machine & co. signatures
            testCase "R10 no F# union, option, list, set, function or tuple type in the C# face's public signatures"
            <| fun () ->
                let face =
                    [
                        typeof<Pop3Machine>
                        typeof<Pop3Output>
                        typeof<Pop3Request>
                        typeof<Pop3Capabilities>
                        typeof<Pop3Failure>
                    ]

                let isFSharp (t: Type) =
                    let rec go (t: Type) =
                        if t.IsGenericType && t.GetGenericArguments() |> Array.exists go then
                            true
                        else
                            let t = if t.IsByRef then t.GetElementType() else t

                            t.Assembly = typeof<option<int>>.Assembly
                            || (t.Assembly = typeof<Pop3Machine>.Assembly
                                && t.GetCustomAttributes(typeof<CompilationMappingAttribute>, false)
                                   |> Array.exists (fun a ->
                                       let f = (a :?> CompilationMappingAttribute).SourceConstructFlags
                                       // Records are plain classes with properties to C#; unions are not.
                                       f = SourceConstructFlags.SumType))

                    go t

                let leaks =
                    [
                        for t in face do
                            for m in
                                t.GetMembers(
                                    BindingFlags.Public
                                    ||| BindingFlags.Instance
                                    ||| BindingFlags.Static
                                    ||| BindingFlags.DeclaredOnly
                                ) do
                                match m with
                                | :? PropertyInfo as p when isFSharp p.PropertyType ->
                                    $"{t.Name}.{p.Name} : {p.PropertyType.Name}"
                                | :? MethodInfo as mi when not mi.IsSpecialName ->
                                    if isFSharp mi.ReturnType then
                                        $"{t.Name}.{mi.Name} returns {mi.ReturnType.Name}"

                                    for p in mi.GetParameters() do
                                        if isFSharp p.ParameterType then
                                            $"{t.Name}.{mi.Name}({p.Name} : {p.ParameterType.Name})"
                                | :? ConstructorInfo as c ->
                                    for p in c.GetParameters() do
                                        if isFSharp p.ParameterType then
                                            $"{t.Name}.ctor({p.Name} : {p.ParameterType.Name})"
                                | _ -> ()
                    ]
                    |> List.distinct

                Expect.isEmpty leaks (sprintf "F# types in the C# face:\n%s" (String.Join("\n", leaks)))

        ]

[<Tests>]
let controlCharacters =
    testList
        "RegressionTests.control characters in arguments"
        [
            for name in [ "bob\u001b[31m"; "bob\u007f"; "bob\u0007" ] do
                testCase
                    $"USER {Pop3Functional.Core.Bytes.escapeControls name} is refused before any byte (RFC 2449 §3 VCHAR)"
                <| fun () ->
                    let s0 = authorized plain
                    let s, outs = runAll s0 [ Input.Submit(1L, Request.User name) ]
                    Expect.isEmpty (sent outs) "nothing sent"
                    Expect.equal s s0 "session unchanged"

                    match events outs with
                    | [ Event.Refused(1L, e) ] -> Expect.equal e.Kind UsageErrorKind.InvalidArgument "kind"
                    | other -> failtestf "expected one refusal, got %A" other
        ]

[<Tests>]
let drip =
    testCase
        "RegressionTests.a line dripped one byte a step costs linear work: each byte is copied once, not the whole line again"
    <| fun () ->
        let mutable s = Session.create plain
        let one = [| byte 'a' |]
        let before = GC.GetAllocatedBytesForCurrentThread()

        for _ in 1..8000 do
            let struct (next, _) = Session.step s (Input.Received(ReadOnlyMemory one))
            s <- next

        let allocated = GC.GetAllocatedBytesForCurrentThread() - before
        Expect.equal s.Partial.Length 8000 "the line is held"
        // Copying the held line on every step would allocate about 8000²/2 = 32 MB.
        Expect.isLessThan allocated 8_000_000L $"allocated {allocated} bytes for 8,000 one-byte steps"

[<Tests>]
let sizeMismatch =
    testList
        "RegressionTests.size mismatch"
        [
            testCase
                "a RETR that delivers another size than LIST announced is reported, once, before BodyEnded (DESIGN §9)"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let _, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.List None)
                            received "+OK\r\n1 5\r\n2 100\r\n.\r\n"
                            Input.Submit(2L, Request.Retr 1UL)
                            received "+OK\r\nabc\r\n.\r\n"
                            Input.Submit(3L, Request.Retr 2UL)
                            received "+OK\r\nlonger than listed? no: shorter\r\n.\r\n"
                            Input.Submit(4L, Request.Top(2UL, 0UL))
                            received "+OK\r\nx\r\n.\r\n"
                        ]

                let mismatches =
                    events outs
                    |> List.choose (function
                        | Event.SizeMismatch(id, n, listed, delivered) -> Some(id, n, listed, delivered)
                        | _ -> None)

                // Message 1: 5 octets listed, "abc\r\n" delivered: equal, nothing. Message 2 differs.
                // TOP delivers part of a message by design: never compared.
                Expect.equal mismatches [ 3L, 2UL, 100UL, 33UL ] "only message 2"

                let order =
                    events outs
                    |> List.filter (function
                        | Event.SizeMismatch(3L, _, _, _)
                        | Event.BodyEnded(3L, _) -> true
                        | _ -> false)

                Expect.equal
                    order
                    [ Event.SizeMismatch(3L, 2UL, 100UL, 33UL); Event.BodyEnded(3L, 33UL) ]
                    "before BodyEnded"

            testCase "without a LIST in the session there is nothing to compare, and a single LIST counts too"
            <| fun () ->
                let s0 = loggedIn plain 2 false

                let _, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Retr 1UL)
                            received "+OK\r\nabc\r\n.\r\n"
                            Input.Submit(2L, Request.List(Some 2UL))
                            received "+OK 2 7\r\n"
                            Input.Submit(3L, Request.Retr 2UL)
                            received "+OK\r\nabc\r\n.\r\n"
                        ]

                let mismatches =
                    events outs
                    |> List.filter (function
                        | Event.SizeMismatch _ -> true
                        | _ -> false)

                Expect.equal mismatches [ Event.SizeMismatch(3L, 2UL, 7UL, 5UL) ] "only after LIST 2"
        ]
