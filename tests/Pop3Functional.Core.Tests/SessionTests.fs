module Pop3Functional.Core.Tests.SessionTests

open System
open System.Text
open Expecto
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

let private greeting = "+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n"
let private capaPlain = "+OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n"
let private capaPipelining = "+OK\r\nUSER\r\nPIPELINING\r\nTOP\r\nUIDL\r\n.\r\n"

/// A session in the authorization state after the greeting and the given CAPA answer.
let private authorized (options: Options) (capa: string) =
    let s, outs = runAll (Session.create options) [ received greeting; received capa ]
    Expect.equal s.Phase.Kind PhaseKind.Authorization (sprintf "authorized: %A" (render outs))
    s

/// The raw command lines sent, CRLF included.
let private sentRaw (outs: Norm list) =
    outs
    |> List.choose (function
        | NSend s -> Some s
        | _ -> None)

let private isFinalFor (id: RequestId) (e: Event) =
    match e with
    | Event.Answered(i, Reply.MessageFollows _) -> false
    | Event.Answered(i, _)
    | Event.BodyEnded(i, _)
    | Event.Rejected(i, _)
    | Event.Refused(i, _)
    | Event.Aborted(i, _) -> i = id
    | _ -> false

let private finals (id: RequestId) (outs: Norm list) =
    events outs |> List.filter (isFinalFor id)

let private protocolFailure (outs: Norm list) =
    events outs
    |> List.tryPick (function
        | Event.Failed(Pop3Error.Protocol e) -> Some e
        | _ -> None)

let private expectProtocolFailure kind (outs: Norm list) =
    match protocolFailure outs with
    | Some e -> Expect.equal e.Kind kind (sprintf "protocol error kind: %s" e.Message)
    | None -> failtestf "expected a %A protocol error, got %A" kind (render outs)

let private refusal (id: RequestId) (outs: Norm list) =
    match events outs with
    | [ Event.Refused(i, e) ] when i = id -> e
    | other -> failtestf "expected exactly one Refused(%d), got %A" id other

/// Submits a request that must be refused: no byte sent, the session value unchanged.
let private expectRefused (s: SessionState) (id: RequestId) (request: Request) (kind: UsageErrorKind) =
    let struct (after, outputs) = Session.step s (Input.Submit(id, request))
    let outs = normalize outputs
    Expect.isEmpty (sent outs) "nothing sent"
    let e = refusal id outs
    Expect.equal e.Kind kind $"kind: {e.Message}"
    Expect.equal e.Command request.Keyword "names the command"
    Expect.isTrue (after = s) "the session is unchanged"
    e

let private snapshotOf (s: SessionState) =
    match s.Phase with
    | Phase.Transaction snap -> snap
    | other -> failtestf "not in the transaction state: %A" other.Kind

let private answered (id: RequestId) (outs: Norm list) =
    events outs
    |> List.pick (function
        | Event.Answered(i, r) when i = id -> Some r
        | _ -> None)

let private bodyOf (id: RequestId) (outs: Norm list) =
    outs
    |> List.choose (function
        | NBody(i, t) when i = id -> Some t
        | _ -> None)
    |> String.concat ""

let private saslOptions =
    { plain with
        Limits = { plain.Limits with MaxSaslRounds = 3 }
    }

let private capaSasl = "+OK\r\nUSER\r\nSASL PLAIN LOGIN CRAM-MD5\r\n.\r\n"

[<Tests>]
let tests =
    testList
        "SessionTests"
        [
            testList
                "opening (DESIGN §12)"
                [
                    testCase "the greeting is reported and CAPA is sent at once (RFC 2449 §5)"
                    <| fun () ->
                        let s, outs = stepN (Session.create plain) (received greeting)
                        Expect.equal (sentRaw outs) [ "CAPA\r\n" ] "CAPA bytes"

                        match events outs with
                        | [ Event.GreetingReceived g ] ->
                            Expect.equal g.ApopTimestamp (Some "<1896.697170952@dbc.mtview.ca.us>") "timestamp"
                        | other -> failtestf "events: %A" other

                        Expect.equal s.Phase.Kind PhaseKind.AwaitingCapa "awaiting CAPA"

                    testCase "CAPA +OK makes the session ready with the capabilities"
                    <| fun () ->
                        let s, outs =
                            runAll (Session.create plain) [ received greeting; received capaPipelining ]

                        Expect.equal s.Phase.Kind PhaseKind.Authorization "authorization"

                        let ready =
                            events outs
                            |> List.pick (function
                                | Event.AuthorizationReady r -> Some r
                                | _ -> None)

                        Expect.isTrue ready.CapaSupported "CAPA supported"
                        Expect.isTrue ready.Capabilities.Pipelining "PIPELINING seen"
                        Expect.isTrue ready.ApopAvailable "APOP timestamp"

                    testCase "CAPA -ERR is an RFC 1939 server: MissingCapa reported, session ready"
                    <| fun () ->
                        let s, outs =
                            runAll (Session.create plain) [ received greeting; received "-ERR unknown command\r\n" ]

                        Expect.equal s.Phase.Kind PhaseKind.Authorization "authorization"
                        Expect.contains (events outs) (Event.QuirkTolerated Quirk.MissingCapa) "quirk reported"
                        Expect.equal s.CapaSupported (Some false) "CAPA unsupported"

                        let ready =
                            events outs
                            |> List.pick (function
                                | Event.AuthorizationReady r -> Some r
                                | _ -> None)

                        Expect.isFalse ready.CapaSupported "ready says CAPA unsupported"

                    testCase "CAPA -ERR is legal without the missing-capa option, and then not reported (DESIGN §12)"
                    <| fun () ->
                        let opts = { plain with Quirks = Set.empty }

                        let s, outs =
                            runAll (Session.create opts) [ received greeting; received "-ERR no\r\n" ]

                        Expect.equal s.Phase.Kind PhaseKind.Authorization "an RFC 1939 server"
                        Expect.equal s.CapaSupported (Some false) "CAPA unsupported"

                        Expect.isFalse
                            (events outs
                             |> List.exists (function
                                 | Event.QuirkTolerated _ -> true
                                 | _ -> false))
                            "no event"

                    testCase "after CAPA -ERR commands are lock-step even with many queued"
                    <| fun () ->
                        let s = authorized plain "-ERR no\r\n"

                        let s, outs =
                            runAll s [ Input.Submit(1L, Request.Capa); Input.Submit(2L, Request.Capa) ]

                        Expect.equal (sent outs) [ "CAPA" ] "one command in flight"
                        let _, outs = runAll s [ received "-ERR no\r\n" ]
                        Expect.equal (sent outs) [ "CAPA" ] "the next after the reply"

                    testCase "a -ERR greeting fails the session with the server's error"
                    <| fun () ->
                        let s, outs = runAll (Session.create plain) [ received "-ERR [SYS/TEMP] busy\r\n" ]
                        Expect.equal s.Phase.Kind PhaseKind.Failed "failed"
                        Expect.isEmpty (sent outs) "nothing sent"

                        match events outs with
                        | [ Event.Failed(Pop3Error.Server e) ] -> Expect.equal e.Code (Some ResponseCode.SysTemp) "code"
                        | other -> failtestf "events: %A" other

                        Expect.equal (List.last outs) NClose "closed"
                ]

            testList
                "login and the snapshot (DESIGN §3, §12)"
                [
                    testCase "after PASS +OK the core sends CAPA then STAT; LoggedIn only after STAT"
                    <| fun () ->
                        let s = authorized plain capaPlain

                        let s, outs =
                            runAll
                                s
                                [
                                    Input.Submit(1L, Request.User "bob")
                                    received "+OK\r\n"
                                    Input.Submit(2L, Request.Pass(Secret.FromString "pw"))
                                ]

                        Expect.equal (sentRaw outs) [ "USER bob\r\n"; "PASS pw\r\n" ] "USER and PASS bytes"
                        let s, outs = stepN s (received "+OK welcome\r\n")
                        Expect.equal (sentRaw outs) [ "CAPA\r\n" ] "CAPA first, STAT waits (lock-step)"
                        Expect.isEmpty (finals 2L outs) "login not answered yet"
                        Expect.equal s.Phase.Kind PhaseKind.OpeningMailbox "opening the mailbox"
                        let s, outs = stepN s (received capaPlain)
                        Expect.equal (sentRaw outs) [ "STAT\r\n" ] "STAT after CAPA"
                        Expect.isEmpty (finals 2L outs) "login still not answered"
                        let s, outs = stepN s (received "+OK 3 345\r\n")
                        Expect.equal s.Phase.Kind PhaseKind.Transaction "transaction"

                        match answered 2L outs with
                        | Reply.LoggedIn(status, snap) ->
                            Expect.equal status.Text "welcome" "login status text"

                            Expect.equal
                                snap
                                {
                                    Count = 3UL
                                    Octets = 345UL
                                    Deleted = Set.empty
                                    Confirmed = Set.empty
                                }
                                "snapshot"
                        | other -> failtestf "reply: %A" other

                        Expect.equal (finals 2L outs).Length 1 "one final event for the login"

                    testCase "after CAPA -ERR the core sends only STAT after login"
                    <| fun () ->
                        let s = authorized plain "-ERR no\r\n"

                        let _, outs =
                            runAll
                                s
                                [
                                    Input.Submit(1L, Request.User "bob")
                                    received "+OK\r\n"
                                    Input.Submit(2L, Request.Pass(Secret.FromString "pw"))
                                    received "+OK\r\n"
                                    received "+OK 0 0\r\n"
                                ]

                        Expect.equal (sent outs) [ "USER bob"; "PASS pw"; "STAT" ] "no CAPA after login"

                        match answered 2L outs with
                        | Reply.LoggedIn(_, snap) -> Expect.equal snap.Count 0UL "empty mailbox"
                        | other -> failtestf "reply: %A" other

                    testCase "with PIPELINING the core's CAPA and STAT go out together after login (RFC 2449 §6.6)"
                    <| fun () ->
                        let s = authorized plain capaPipelining

                        let _, outs =
                            runAll
                                s
                                [
                                    Input.Submit(1L, Request.User "bob")
                                    received "+OK\r\n"
                                    Input.Submit(2L, Request.Pass(Secret.FromString "pw"))
                                    received "+OK\r\n"
                                ]

                        Expect.equal (sent outs) [ "USER bob"; "PASS pw"; "CAPA"; "STAT" ] "pipelined"

                    testCase "STAT -ERR after login is SnapshotUnavailable and aborts the login"
                    <| fun () ->
                        let s = authorized plain "-ERR no\r\n"

                        let s, outs =
                            runAll
                                s
                                [
                                    Input.Submit(1L, Request.User "bob")
                                    received "+OK\r\n"
                                    Input.Submit(2L, Request.Pass(Secret.FromString "pw"))
                                    received "+OK\r\n"
                                    received "-ERR mailbox locked\r\n"
                                ]

                        Expect.equal s.Phase.Kind PhaseKind.Failed "failed"
                        expectProtocolFailure ProtocolErrorKind.SnapshotUnavailable outs

                        match finals 2L outs with
                        | [ Event.Aborted(2L, Pop3Error.Protocol e) ] ->
                            Expect.equal e.Kind ProtocolErrorKind.SnapshotUnavailable "aborted for that reason"
                        | other -> failtestf "login finals: %A" other

                    testCase "USER -ERR returns to authorization; PASS -ERR too, with the response code (RFC 3206)"
                    <| fun () ->
                        let s = authorized plain capaPlain

                        let s, outs =
                            runAll s [ Input.Submit(1L, Request.User "bob"); received "-ERR who?\r\n" ]

                        Expect.equal s.Phase.Kind PhaseKind.Authorization "back to authorization"

                        match finals 1L outs with
                        | [ Event.Rejected(1L, e) ] -> Expect.equal e.Text "who?" "server text"
                        | other -> failtestf "%A" other

                        let s, outs =
                            runAll
                                s
                                [
                                    Input.Submit(2L, Request.User "bob")
                                    received "+OK\r\n"
                                    Input.Submit(3L, Request.Pass(Secret.FromString "bad"))
                                    received "-ERR [AUTH] wrong password\r\n"
                                ]

                        Expect.equal s.Phase.Kind PhaseKind.Authorization "back to authorization"

                        match finals 3L outs with
                        | [ Event.Rejected(3L, e) ] ->
                            Expect.equal e.Code (Some ResponseCode.Auth) "AUTH code"
                            Expect.equal e.Command "PASS" "command"
                        | other -> failtestf "%A" other
                ]

            testList
                "snapshot range checks (RFC 1939 §5; refused before sending, session unchanged)"
                [
                    testCase "RETR 0 is NoSuchMessage"
                    <| fun () ->
                        expectRefused (loggedIn plain 3 false) 5L (Request.Retr 0UL) UsageErrorKind.NoSuchMessage
                        |> ignore

                    testCase "RETR above the STAT count is NoSuchMessage and names the range"
                    <| fun () ->
                        let e =
                            expectRefused (loggedIn plain 3 false) 5L (Request.Retr 4UL) UsageErrorKind.NoSuchMessage

                        Expect.stringContains e.Message "1 to 3" "the range"

                    testCase "every message command is range-checked against an empty mailbox"
                    <| fun () ->
                        let s = loggedIn plain 0 false

                        for r in
                            [
                                Request.Retr 1UL
                                Request.Dele 1UL
                                Request.Top(1UL, 0UL)
                                Request.List(Some 1UL)
                                Request.Uidl(Some 1UL)
                            ] do
                            expectRefused s 5L r UsageErrorKind.NoSuchMessage |> ignore

                    testCase "DELE of a message already marked is MessageDeleted"
                    <| fun () ->
                        let s, _ =
                            runAll (loggedIn plain 3 false) [ Input.Submit(5L, Request.Dele 2UL); received "+OK\r\n" ]

                        let e = expectRefused s 6L (Request.Dele 2UL) UsageErrorKind.MessageDeleted
                        Expect.stringContains e.Message "marked deleted" "says why"

                    testCase "LIST, UIDL, RETR and TOP of a marked message are MessageDeleted"
                    <| fun () ->
                        let s, _ =
                            runAll (loggedIn plain 3 true) [ Input.Submit(5L, Request.Dele 3UL); received "+OK\r\n" ]

                        for r in
                            [
                                Request.List(Some 3UL)
                                Request.Uidl(Some 3UL)
                                Request.Retr 3UL
                                Request.Top(3UL, 5UL)
                            ] do
                            expectRefused s 6L r UsageErrorKind.MessageDeleted |> ignore

                    testCase "a DELE still in flight already counts for later requests"
                    <| fun () ->
                        let s, outs = stepN (loggedIn plain 3 false) (Input.Submit(5L, Request.Dele 1UL))
                        Expect.equal (sent outs) [ "DELE 1" ] "sent"
                        Expect.equal (snapshotOf s).Deleted (Set.singleton 1UL) "marked at once"
                        expectRefused s 6L (Request.Retr 1UL) UsageErrorKind.MessageDeleted |> ignore
                ]

            testList
                "deletion marks and QUIT (RFC 1939 §5, §6)"
                [
                    testCase "-ERR to DELE unmarks the message"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (loggedIn plain 3 false)
                                [ Input.Submit(5L, Request.Dele 2UL); received "-ERR cannot\r\n" ]

                        Expect.isEmpty (snapshotOf s).Deleted "unmarked"

                        match finals 5L outs with
                        | [ Event.Rejected(5L, e) ] -> Expect.equal e.Command "DELE" "DELE rejected"
                        | other -> failtestf "%A" other

                        let _, outs = stepN s (Input.Submit(6L, Request.Retr 2UL))
                        Expect.equal (sent outs) [ "RETR 2" ] "the message can be read again"

                    testCase "RSET clears every mark and answers Reset"
                    <| fun () ->
                        let s, _ =
                            runAll
                                (loggedIn plain 3 false)
                                [
                                    Input.Submit(5L, Request.Dele 1UL)
                                    received "+OK\r\n"
                                    Input.Submit(6L, Request.Dele 3UL)
                                    received "+OK\r\n"
                                ]

                        Expect.equal (snapshotOf s).Deleted (set [ 1UL; 3UL ]) "marked"

                        let s, outs =
                            runAll s [ Input.Submit(7L, Request.Rset); received "+OK maildrop has 3 messages\r\n" ]

                        Expect.equal (sent outs) [ "RSET" ] "RSET sent"
                        Expect.isEmpty (snapshotOf s).Deleted "cleared"

                        match answered 7L outs with
                        | Reply.Reset st -> Expect.equal st.Text "maildrop has 3 messages" "text"
                        | other -> failtestf "%A" other

                    testCase "QUIT +OK in transaction reports the deletions committed, sorted, and closes"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (loggedIn plain 3 false)
                                [
                                    Input.Submit(5L, Request.Dele 3UL)
                                    received "+OK\r\n"
                                    Input.Submit(6L, Request.Dele 1UL)
                                    received "+OK\r\n"
                                    Input.Submit(7L, Request.Quit)
                                    received "+OK bye\r\n"
                                ]

                        Expect.equal s.Phase.Kind PhaseKind.Closed "closed"
                        Expect.equal (List.last outs) NClose "Close output"

                        Expect.equal
                            (answered 7L outs)
                            (Reply.Quit
                                {
                                    Text = "bye"
                                    UpdateCompleted = true
                                    DeletionsCommitted = [ 1UL; 3UL ]
                                })
                            "outcome"

                    testCase "QUIT -ERR is Rejected and closes: nothing committed"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (loggedIn plain 3 false)
                                [
                                    Input.Submit(5L, Request.Dele 2UL)
                                    received "+OK\r\n"
                                    Input.Submit(7L, Request.Quit)
                                    received "-ERR some deleted messages not removed\r\n"
                                ]

                        Expect.equal s.Phase.Kind PhaseKind.Closed "closed"
                        Expect.equal (List.last outs) NClose "Close output"

                        match finals 7L outs with
                        | [ Event.Rejected(7L, e) ] -> Expect.equal e.Command "QUIT" "QUIT rejected"
                        | other -> failtestf "%A" other

                    testCase "QUIT in authorization: UpdateCompleted false (RFC 1939 §6)"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (authorized plain capaPlain)
                                [ Input.Submit(1L, Request.Quit); received "+OK bye\r\n" ]

                        Expect.equal (sent outs) [ "QUIT" ] "sent"
                        Expect.equal s.Phase.Kind PhaseKind.Closed "closed"

                        Expect.equal
                            (answered 1L outs)
                            (Reply.Quit
                                {
                                    Text = "bye"
                                    UpdateCompleted = false
                                    DeletionsCommitted = []
                                })
                            "no update"

                    testCase "QUIT after USER (awaiting PASS): UpdateCompleted false"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (authorized plain capaPlain)
                                [
                                    Input.Submit(1L, Request.User "bob")
                                    received "+OK\r\n"
                                    Input.Submit(2L, Request.Quit)
                                    received "+OK\r\n"
                                ]

                        Expect.equal s.Phase.Kind PhaseKind.Closed "closed"

                        match answered 2L outs with
                        | Reply.Quit q -> Expect.isFalse q.UpdateCompleted "no update"
                        | other -> failtestf "%A" other

                    testCase "EndOfStream after Closed is silent"
                    <| fun () ->
                        let s, _ =
                            runAll (authorized plain capaPlain) [ Input.Submit(1L, Request.Quit); received "+OK\r\n" ]

                        let s2, outs = stepN s Input.EndOfStream
                        Expect.isEmpty outs "no output"
                        Expect.equal s2.Phase.Kind PhaseKind.Closed "still closed"

                    testCase "EndOfStream while QUIT is awaited with marks says deletions may not be committed"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 3 false)
                                [
                                    Input.Submit(5L, Request.Dele 2UL)
                                    received "+OK\r\n"
                                    Input.Submit(6L, Request.Quit)
                                    Input.EndOfStream
                                ]

                        match protocolFailure outs with
                        | Some e ->
                            Expect.equal e.Kind ProtocolErrorKind.ConnectionClosed "closed"
                            Expect.stringContains e.Message "deletions may not have been committed" "warns"
                        | None -> failtest "expected a failure"

                        Expect.equal (finals 6L outs).Length 1 "QUIT aborted"
                ]

            testList
                "wrong state and request ids"
                [
                    testCase "RETR before login is WrongState naming the authorization state"
                    <| fun () ->
                        let e =
                            expectRefused (authorized plain capaPlain) 1L (Request.Retr 1UL) UsageErrorKind.WrongState

                        Expect.stringContains e.Message "authorization state" "names the state"

                    testCase "USER in the transaction state is WrongState naming it"
                    <| fun () ->
                        let e =
                            expectRefused (loggedIn plain 1 false) 5L (Request.User "x") UsageErrorKind.WrongState

                        Expect.stringContains e.Message "transaction state" "names the state"

                    testCase "PASS without USER is WrongState (RFC 1939 §7)"
                    <| fun () ->
                        expectRefused
                            (authorized plain capaPlain)
                            1L
                            (Request.Pass(Secret.FromString "pw"))
                            UsageErrorKind.WrongState
                        |> ignore

                    testCase "anything before the greeting is WrongState naming it"
                    <| fun () ->
                        let e =
                            expectRefused (Session.create plain) 1L Request.Noop UsageErrorKind.WrongState

                        Expect.stringContains e.Message "awaiting the greeting" "names the state"

                    testCase "anything while USER is answered is WrongState"
                    <| fun () ->
                        let s, _ = stepN (authorized plain capaPlain) (Input.Submit(1L, Request.User "bob"))

                        let e =
                            expectRefused s 2L (Request.Pass(Secret.FromString "pw")) UsageErrorKind.WrongState

                        Expect.stringContains e.Message "reply to USER" "names the state"

                    testCase "anything after Closed is WrongState naming it"
                    <| fun () ->
                        let s, _ =
                            runAll (authorized plain capaPlain) [ Input.Submit(1L, Request.Quit); received "+OK\r\n" ]

                        let e = expectRefused s 2L Request.Noop UsageErrorKind.WrongState
                        Expect.stringContains e.Message "closed" "names the state"

                    testCase "request ids 0 and negative are refused"
                    <| fun () ->
                        let s = loggedIn plain 2 false

                        for id in [ 0L; -1L; Int64.MinValue ] do
                            expectRefused s id Request.Noop UsageErrorKind.InvalidRequestId |> ignore

                    testCase "a request id in flight or waiting cannot be reused"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (loggedIn plain 3 false)
                                [ Input.Submit(5L, Request.Retr 1UL); Input.Submit(6L, Request.Retr 2UL) ]

                        Expect.equal (sent outs) [ "RETR 1" ] "lock-step"
                        expectRefused s 5L Request.Noop UsageErrorKind.InvalidRequestId |> ignore
                        expectRefused s 6L Request.Noop UsageErrorKind.InvalidRequestId |> ignore

                    testCase "the login request id stays in use until the snapshot is fixed"
                    <| fun () ->
                        let s, _ =
                            runAll
                                (authorized plain capaPlain)
                                [
                                    Input.Submit(1L, Request.User "bob")
                                    received "+OK\r\n"
                                    Input.Submit(2L, Request.Pass(Secret.FromString "pw"))
                                    received "+OK\r\n"
                                ]

                        Expect.equal s.Phase.Kind PhaseKind.OpeningMailbox "opening"
                        let _, outs = stepN s (Input.Submit(2L, Request.Noop))

                        match events outs with
                        | [ Event.Refused(2L, e) ] ->
                            Expect.isTrue
                                (e.Kind = UsageErrorKind.InvalidRequestId || e.Kind = UsageErrorKind.WrongState)
                                "refused"
                        | other -> failtestf "%A" other

                    testCase "an argument with CRLF is refused before sending (command injection)"
                    <| fun () ->
                        expectRefused
                            (authorized plain capaPlain)
                            1L
                            (Request.User "bob\r\nDELE 1")
                            UsageErrorKind.InvalidArgument
                        |> ignore
                ]

            testList
                "failure is sticky (DESIGN §4)"
                [
                    testCase "after a ProtocolError every later Submit is Aborted with the same error"
                    <| fun () ->
                        let s, outs =
                            runAll (loggedIn plain 2 false) [ Input.Submit(5L, Request.Noop); received "HELLO\r\n" ]

                        let err =
                            events outs
                            |> List.pick (function
                                | Event.Failed e -> Some e
                                | _ -> None)

                        Expect.equal (List.last outs) NClose "Close output"
                        Expect.contains (events outs) (Event.Aborted(5L, err)) "the in-flight request aborted"

                        for id, r in
                            [
                                6L, Request.Noop
                                7L, Request.Retr 1UL
                                8L, Request.User "x"
                                0L, Request.Quit
                            ] do
                            let s2, o = stepN s (Input.Submit(id, r))

                            Expect.equal
                                (events o)
                                [ Event.Aborted(id, err) ]
                                $"{r.Keyword} aborted with the same error"

                            Expect.isEmpty (sent o) "nothing sent"
                            Expect.equal s2.Phase s.Phase "still failed"

                    testCase "bytes and EndOfStream after a failure produce nothing"
                    <| fun () ->
                        let s, _ =
                            runAll (loggedIn plain 2 false) [ Input.Submit(5L, Request.Noop); received "HELLO\r\n" ]

                        let _, outs = runAll s [ received "+OK\r\n"; Input.EndOfStream ]
                        Expect.isEmpty outs "silent"

                    testCase
                        "EndOfStream mid-body is ConnectionClosed with the octet count, aborting every pending request"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (loggedIn plain 3 true)
                                [
                                    Input.Submit(5L, Request.Retr 1UL)
                                    Input.Submit(6L, Request.Retr 2UL)
                                    Input.Submit(7L, Request.Noop)
                                    received "+OK\r\nHello world\r\nsecond "
                                    Input.EndOfStream
                                ]

                        Expect.equal (sent outs) [ "RETR 1"; "RETR 2"; "NOOP" ] "pipelined"
                        Expect.equal s.Phase.Kind PhaseKind.Failed "failed"

                        match protocolFailure outs with
                        | Some e ->
                            Expect.equal e.Kind ProtocolErrorKind.ConnectionClosed "kind"
                            Expect.stringContains e.Message "after 20 octets" "octets delivered"
                            Expect.stringContains e.Message "RETR 1" "names the command"
                        | None -> failtest "expected ConnectionClosed"

                        for id in [ 5L; 6L; 7L ] do
                            match finals id outs with
                            | [ Event.Aborted(i, _) ] -> Expect.equal i id "aborted"
                            | other -> failtestf "request %d: %A" id other

                        Expect.equal (bodyOf 5L outs) "Hello world\r\nsecond " "the partial body was delivered"

                    testCase "WriteFailed fails the session with the transport error and aborts pending requests"
                    <| fun () ->
                        let err =
                            {
                                Operation = "write"
                                Endpoint = "host:110"
                                Message = "reset"
                                Exception = None
                            }

                        let s, outs =
                            runAll (loggedIn plain 2 false) [ Input.Submit(5L, Request.Noop); Input.WriteFailed err ]

                        Expect.equal s.Phase (Phase.Failed(Pop3Error.Transport err)) "failed with it"
                        Expect.contains (events outs) (Event.Aborted(5L, Pop3Error.Transport err)) "aborted"
                ]

            testList
                "every request gets exactly one final event"
                [
                    testCase "a mixed session: each id has one final event; RETR is MessageFollows, BodyData, BodyEnded"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 3 true)
                                [
                                    Input.Submit(5L, Request.Retr 1UL)
                                    Input.Submit(6L, Request.Stat)
                                    Input.Submit(7L, Request.Retr 9UL)
                                    Input.Submit(8L, Request.Dele 2UL)
                                    Input.Submit(9L, Request.Noop)
                                    received "+OK 12 octets\r\nab\r\n..c\r\n\r\n.\r\n+OK 3 300\r\n-ERR no\r\n+OK\r\n"
                                    Input.Submit(10L, Request.Top(3UL, 0UL))
                                    received "+OK\r\nSubject: x\r\n.\r\n"
                                    Input.Submit(11L, Request.Quit)
                                    received "+OK\r\n"
                                ]

                        for id in 5L .. 11L do
                            Expect.equal (finals id outs).Length 1 $"request {id}: one final event"

                        let forRetr =
                            outs
                            |> List.filter (function
                                | NEvent(Event.Answered(5L, _))
                                | NEvent(Event.BodyEnded(5L, _))
                                | NBody(5L, _) -> true
                                | _ -> false)

                        match forRetr with
                        | [ NEvent(Event.Answered(5L, Reply.MessageFollows st))
                            NBody(5L, body)
                            NEvent(Event.BodyEnded(5L, n)) ] ->
                            Expect.equal st.Text "12 octets" "status"
                            Expect.equal body "ab\r\n.c\r\n\r\n" "unstuffed body (RFC 1939 §3)"
                            Expect.equal n 10UL "octets after unstuffing"
                        | other -> failtestf "RETR events: %A" other

                        Expect.equal (answered 6L outs) (Reply.Stat { Count = 3UL; Octets = 300UL }) "STAT"

                        Expect.equal
                            (finals 9L outs)
                            [ Event.Answered(9L, Reply.Ok { IsOk = true; Code = None; Text = "" }) ]
                            "NOOP"

                        Expect.equal (bodyOf 10L outs) "Subject: x\r\n" "TOP body"

                        Expect.isTrue
                            (finals 7L outs
                             |> List.exists (function
                                 | Event.Refused _ -> true
                                 | _ -> false))
                            "RETR 9 refused"

                    testCase "an empty body is Answered then BodyEnded 0 with no BodyData"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 1 false)
                                [ Input.Submit(5L, Request.Retr 1UL); received "+OK\r\n.\r\n" ]

                        Expect.equal (bodyOf 5L outs) "" "no data"
                        Expect.equal (finals 5L outs) [ Event.BodyEnded(5L, 0UL) ] "ends with 0 octets"

                    testCase "RETR -ERR is a Rejected with no body events"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 1 false)
                                [ Input.Submit(5L, Request.Retr 1UL); received "-ERR gone\r\n" ]

                        match events outs with
                        | [ Event.Rejected(5L, e) ] -> Expect.equal e.Text "gone" "text"
                        | other -> failtestf "%A" other
                ]

            testList
                "pipelining (RFC 2449 §6.6, DESIGN §7)"
                [
                    testCase "with PIPELINING several RETRs go out before any reply"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 5 true)
                                [ for i in 1..5 -> Input.Submit(int64 (10 + i), Request.Retr(uint64 i)) ]

                        Expect.equal (sent outs) [ for i in 1..5 -> $"RETR {i}" ] "all five in flight"

                    testCase "without PIPELINING strictly lock-step: the next after each reply"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (loggedIn plain 3 false)
                                [ for i in 1..3 -> Input.Submit(int64 (10 + i), Request.Retr(uint64 i)) ]

                        Expect.equal (sent outs) [ "RETR 1" ] "one in flight"
                        let s, outs = stepN s (received "+OK\r\nx\r\n")
                        Expect.isEmpty (sent outs) "not before the body ends"
                        let s, outs = stepN s (received ".\r\n")
                        Expect.equal (sent outs) [ "RETR 2" ] "after the body"
                        let _, outs = stepN s (received "+OK\r\n.\r\n")
                        Expect.equal (sent outs) [ "RETR 3" ] "and so on"

                    testCase "PIPELINING is not used when UsePipelining is off"
                    <| fun () ->
                        let opts = { plain with UsePipelining = false }

                        let _, outs =
                            runAll
                                (loggedIn opts 3 true)
                                [ for i in 1..3 -> Input.Submit(int64 (10 + i), Request.Retr(uint64 i)) ]

                        Expect.equal (sent outs) [ "RETR 1" ] "lock-step"

                    testCase "the window holds at most PipelineMaxCommands"
                    <| fun () ->
                        let opts =
                            { plain with
                                Limits =
                                    { plain.Limits with
                                        PipelineMaxCommands = 2
                                    }
                            }

                        let s, outs =
                            runAll
                                (loggedIn opts 5 true)
                                [ for i in 1..5 -> Input.Submit(int64 (10 + i), Request.Retr(uint64 i)) ]

                        Expect.equal (sent outs) [ "RETR 1"; "RETR 2" ] "two in flight"
                        let s, outs = stepN s (received "+OK\r\n")
                        Expect.isEmpty (sent outs) "a body still open keeps its slot"
                        let _, outs = stepN s (received ".\r\n")
                        Expect.equal (sent outs) [ "RETR 3" ] "one slot freed"

                    testCase "the window holds at most PipelineMaxOctets of commands"
                    <| fun () ->
                        // "RETR n\r\n" is 8 octets: 20 octets hold two of them.
                        let opts =
                            { plain with
                                Limits =
                                    { plain.Limits with
                                        PipelineMaxOctets = 20
                                    }
                            }

                        let s, outs =
                            runAll
                                (loggedIn opts 5 true)
                                [ for i in 1..4 -> Input.Submit(int64 (10 + i), Request.Retr(uint64 i)) ]

                        Expect.equal (sent outs) [ "RETR 1"; "RETR 2" ] "two fit"
                        let _, outs = stepN s (received "+OK\r\n.\r\n")
                        Expect.equal (sent outs) [ "RETR 3" ] "room for one more"

                    testCase "QUIT is sent only after every earlier reply, bodies included, has arrived"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (loggedIn plain 3 true)
                                [
                                    Input.Submit(5L, Request.Retr 1UL)
                                    Input.Submit(6L, Request.Retr 2UL)
                                    Input.Submit(7L, Request.Quit)
                                ]

                        Expect.equal (sent outs) [ "RETR 1"; "RETR 2" ] "QUIT held back"
                        let s, outs = stepN s (received "+OK\r\nbody\r\n.\r\n+OK\r\nmore\r\n")
                        Expect.isEmpty (sent outs) "not while the last body streams"
                        let s, outs = stepN s (received ".\r")
                        Expect.isEmpty (sent outs) "not before the terminator's LF"
                        let _, outs = stepN s (received "\n")
                        Expect.equal (sent outs) [ "QUIT" ] "now"

                    testCase "USER waits for every command in flight and nothing follows it (barrier)"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (authorized plain capaPipelining)
                                [
                                    Input.Submit(1L, Request.Capa)
                                    Input.Submit(2L, Request.Capa)
                                    Input.Submit(3L, Request.User "bob")
                                ]

                        Expect.equal (sent outs) [ "CAPA"; "CAPA" ] "CAPAs pipelined, USER held"
                        let s, outs = stepN s (received capaPipelining)
                        Expect.isEmpty (sent outs) "still one CAPA in flight"
                        let _, outs = stepN s (received capaPipelining)
                        Expect.equal (sent outs) [ "USER bob" ] "USER alone"

                    testCase "STLS, AUTH and APOP also wait for every command in flight"
                    <| fun () ->
                        let caps = "+OK\r\nUSER\r\nPIPELINING\r\nSTLS\r\nSASL PLAIN\r\n.\r\n"

                        for r in
                            [
                                Request.Stls
                                Request.Auth("PLAIN", Some(Secret.FromString "\000bob\000pw"))
                                Request.Apop("bob", Secret.FromString "tanstaaf")
                            ] do
                            let s, outs =
                                runAll (authorized plain caps) [ Input.Submit(1L, Request.Capa); Input.Submit(2L, r) ]

                            Expect.equal (sent outs) [ "CAPA" ] $"{r.Keyword} held"
                            let _, outs = stepN s (received caps)

                            Expect.equal
                                (sent outs |> List.map (fun l -> l.Split(' ')[0]))
                                [ r.Keyword ]
                                $"{r.Keyword} after CAPA"

                    testCase "nothing is pipelined behind UTF8 (it changes how replies decode)"
                    <| fun () ->
                        let caps = "+OK\r\nPIPELINING\r\nUTF8\r\nLANG\r\n.\r\n"

                        let s, outs =
                            runAll
                                (authorized plain caps)
                                [ Input.Submit(1L, Request.Utf8); Input.Submit(2L, Request.Lang None) ]

                        Expect.equal (sent outs) [ "UTF8" ] "LANG held"
                        let _, outs = stepN s (received "+OK\r\n")
                        Expect.equal (sent outs) [ "LANG" ] "LANG after UTF8's reply"
                ]

            testList
                "commands and replies"
                [
                    testCase "UTF8 +OK switches text decoding to UTF-8 (RFC 6856 §2)"
                    <| fun () ->
                        let caps = "+OK\r\nUSER\r\nUTF8\r\n.\r\n"
                        let s = authorized plain caps
                        let errUtf8 = Encoding.Latin1.GetString(Encoding.UTF8.GetBytes "-ERR naïve ü\r\n")
                        let _, before = runAll s [ Input.Submit(1L, Request.User "x"); received errUtf8 ]

                        match finals 1L before with
                        | [ Event.Rejected(_, e) ] -> Expect.equal e.Text "naÃ¯ve Ã¼" "Latin-1 before UTF8"
                        | other -> failtestf "%A" other

                        let s, outs =
                            runAll s [ Input.Submit(2L, Request.Utf8); received "+OK UTF8 enabled\r\n" ]

                        Expect.equal (sent outs) [ "UTF8" ] "UTF8 sent"
                        Expect.isTrue s.Utf8Active "active"
                        let _, after = runAll s [ Input.Submit(3L, Request.User "x"); received errUtf8 ]

                        match finals 3L after with
                        | [ Event.Rejected(_, e) ] -> Expect.equal e.Text "naïve ü" "UTF-8 after UTF8"
                        | other -> failtestf "%A" other

                    testCase "UTF8 without the capability in CAPA is CapabilityMissing"
                    <| fun () ->
                        expectRefused (authorized plain capaPlain) 1L Request.Utf8 UsageErrorKind.CapabilityMissing
                        |> ignore

                    testCase "LANG without argument returns the language listing (RFC 6856 §3)"
                    <| fun () ->
                        let caps = "+OK\r\nLANG\r\n.\r\n"

                        let _, outs =
                            runAll
                                (authorized plain caps)
                                [
                                    Input.Submit(1L, Request.Lang None)
                                    received "+OK\r\nen English\r\nde Deutsch\r\ni-default\r\n.\r\n"
                                ]

                        Expect.equal (sent outs) [ "LANG" ] "sent"

                        Expect.equal
                            (answered 1L outs)
                            (Reply.Languages
                                [
                                    { Tag = "en"; Description = "English" }
                                    { Tag = "de"; Description = "Deutsch" }
                                    { Tag = "i-default"; Description = "" }
                                ])
                            "listing"

                    testCase "LANG tag sends the tag and is a plain +OK"
                    <| fun () ->
                        let caps = "+OK\r\nLANG\r\n.\r\n"

                        let _, outs =
                            runAll
                                (authorized plain caps)
                                [
                                    Input.Submit(1L, Request.Lang(Some "de"))
                                    received "+OK Sprache geändert\r\n"
                                ]

                        Expect.equal (sentRaw outs) [ "LANG de\r\n" ] "bytes"

                        match answered 1L outs with
                        | Reply.Ok st -> Expect.equal st.Text "Sprache geändert" "text"
                        | other -> failtestf "%A" other

                    testCase "LANG without the capability is CapabilityMissing"
                    <| fun () ->
                        expectRefused
                            (authorized plain capaPlain)
                            1L
                            (Request.Lang None)
                            UsageErrorKind.CapabilityMissing
                        |> ignore

                    testCase "TOP n m sends both numbers and streams the unstuffed head (RFC 1939 §7)"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 2 true)
                                [
                                    Input.Submit(5L, Request.Top(2UL, 10UL))
                                    received "+OK\r\nSubject: a\r\n\r\n..x\r\n.\r\n"
                                ]

                        Expect.equal (sentRaw outs) [ "TOP 2 10\r\n" ] "bytes"
                        Expect.equal (bodyOf 5L outs) "Subject: a\r\n\r\n.x\r\n" "head"
                        Expect.equal (finals 5L outs) [ Event.BodyEnded(5L, 18UL) ] "ended"

                    testCase "UIDL n returns one entry"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 2 true)
                                [
                                    Input.Submit(5L, Request.Uidl(Some 2UL))
                                    received "+OK 2 QhdPYR:00WBw1Ph7x7\r\n"
                                ]

                        Expect.equal (sentRaw outs) [ "UIDL 2\r\n" ] "bytes"

                        match answered 5L outs with
                        | Reply.UidEntry e ->
                            Expect.equal e.Number 2UL "number"
                            Expect.equal e.Uid.Value "QhdPYR:00WBw1Ph7x7" "uid"
                        | other -> failtestf "%A" other

                    testCase "UIDL returns the listing, omitting messages this session deleted"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 3 true)
                                [
                                    Input.Submit(5L, Request.Dele 2UL)
                                    received "+OK\r\n"
                                    Input.Submit(6L, Request.Uidl None)
                                    received "+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n3 QhdPYR:00WBw1Ph7x7\r\n.\r\n"
                                ]

                        match answered 6L outs with
                        | Reply.UidListing entries ->
                            Expect.equal
                                (entries |> List.map (fun e -> e.Number, e.Uid.Value))
                                [ 1UL, "whqtswO00WBw418f9t5JxYwZ"; 3UL, "QhdPYR:00WBw1Ph7x7" ]
                                "entries"
                        | other -> failtestf "%A" other

                    testCase "LIST returns the listing and LIST n one entry"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 2 true)
                                [
                                    Input.Submit(5L, Request.List None)
                                    received "+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"
                                    Input.Submit(6L, Request.List(Some 2UL))
                                    received "+OK 2 200\r\n"
                                ]

                        Expect.equal
                            (answered 5L outs)
                            (Reply.Listing [ { Number = 1UL; Octets = 120UL }; { Number = 2UL; Octets = 200UL } ])
                            "listing"

                        Expect.equal (answered 6L outs) (Reply.ListEntry { Number = 2UL; Octets = 200UL }) "entry"

                    testCase "LIST n answered for another number is WrongMessageNumber"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (loggedIn plain 3 false)
                                [ Input.Submit(5L, Request.List(Some 2UL)); received "+OK 3 200\r\n" ]

                        Expect.equal s.Phase.Kind PhaseKind.Failed "failed"
                        expectProtocolFailure ProtocolErrorKind.WrongMessageNumber outs

                        match finals 5L outs with
                        | [ Event.Aborted(5L, _) ] -> ()
                        | other -> failtestf "%A" other

                    testCase "UIDL n answered for another number is WrongMessageNumber"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 3 false)
                                [ Input.Submit(5L, Request.Uidl(Some 2UL)); received "+OK 1 abc\r\n" ]

                        expectProtocolFailure ProtocolErrorKind.WrongMessageNumber outs
                        Expect.equal (finals 5L outs).Length 1 "UIDL aborted"

                    testCase "a pipelined LIST omits messages deleted before it even if RSET follows (RFC 1939 §5)"
                    <| fun () ->
                        // The server answers LIST after DELE 1 and before RSET: message 1 is rightly
                        // missing, though RSET already cleared the session's marks when the reply arrives.
                        for opts in
                            [
                                plain
                                { Options.Strict with
                                    Tls = TlsMode.NoTls
                                    AllowPlaintextCredentials = true
                                }
                            ] do
                            let s, outs =
                                runAll
                                    (loggedIn opts 3 true)
                                    [
                                        Input.Submit(5L, Request.Dele 1UL)
                                        Input.Submit(6L, Request.List None)
                                        Input.Submit(7L, Request.Rset)
                                        received "+OK deleted\r\n+OK listing\r\n2 100\r\n3 100\r\n.\r\n+OK reset\r\n"
                                    ]

                            Expect.equal (sent outs) [ "DELE 1"; "LIST"; "RSET" ] "pipelined"
                            Expect.equal s.Phase.Kind PhaseKind.Transaction "no failure"

                            Expect.isFalse
                                (events outs
                                 |> List.exists (function
                                     | Event.QuirkTolerated _ -> true
                                     | _ -> false))
                                "no quirk"

                            Expect.equal
                                (answered 6L outs)
                                (Reply.Listing [ { Number = 2UL; Octets = 100UL }; { Number = 3UL; Octets = 100UL } ])
                                "listing"

                    testCase "a listing above the STAT count is WrongMessageNumber"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 2 false)
                                [
                                    Input.Submit(5L, Request.List None)
                                    received "+OK\r\n1 10\r\n2 10\r\n3 10\r\n.\r\n"
                                ]

                        expectProtocolFailure ProtocolErrorKind.WrongMessageNumber outs
                        Expect.equal (finals 5L outs).Length 1 "LIST aborted"

                    testCase "a listing with a duplicate number fails and aborts the LIST (its final event)"
                    <| fun () ->
                        let _, outs =
                            runAll
                                (loggedIn plain 2 false)
                                [ Input.Submit(5L, Request.List None); received "+OK\r\n1 10\r\n1 10\r\n.\r\n" ]

                        expectProtocolFailure ProtocolErrorKind.DuplicateMessageNumber outs

                        match finals 5L outs with
                        | [ Event.Aborted(5L, Pop3Error.Protocol e) ] ->
                            Expect.equal e.Kind ProtocolErrorKind.DuplicateMessageNumber "why"
                        | other -> failtestf "%A" other

                    testCase "a STAT answer that does not parse fails and aborts the STAT"
                    <| fun () ->
                        let _, outs =
                            runAll (loggedIn plain 2 false) [ Input.Submit(5L, Request.Stat); received "+OK many\r\n" ]

                        expectProtocolFailure ProtocolErrorKind.BadNumber outs
                        Expect.equal (finals 5L outs).Length 1 "STAT aborted"

                    testCase "a reply with no command outstanding is UnsolicitedData"
                    <| fun () ->
                        let _, outs = stepN (loggedIn plain 2 false) (received "+OK surprise\r\n")
                        expectProtocolFailure ProtocolErrorKind.UnsolicitedData outs
                ]

            testList
                "SASL (RFC 5034 §4)"
                [
                    testCase "AUTH PLAIN with an initial response sends it on the AUTH line; +OK logs in"
                    <| fun () ->
                        let s = authorized plain capaSasl
                        let ir = Secret.FromString "\000bob\000pw"
                        let s, outs = stepN s (Input.Submit(1L, Request.Auth("PLAIN", Some ir)))
                        Expect.equal (sentRaw outs) [ "AUTH PLAIN AGJvYgBwdw==\r\n" ] "bytes"

                        let s, outs =
                            runAll s [ received "+OK\r\n"; received capaSasl; received "+OK 1 10\r\n" ]

                        Expect.equal (sent outs) [ "CAPA"; "STAT" ] "opening the mailbox"
                        Expect.equal s.Phase.Kind PhaseKind.Transaction "logged in"

                        match answered 1L outs with
                        | Reply.LoggedIn(_, snap) -> Expect.equal snap.Count 1UL "snapshot"
                        | other -> failtestf "%A" other

                    testCase
                        "AUTH without an initial response: '+ ' challenge is a SaslChallenge; SaslRespond sends base64"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (authorized plain capaSasl)
                                [ Input.Submit(1L, Request.Auth("LOGIN", None)); received "+ VXNlcm5hbWU6\r\n" ]

                        Expect.equal (sentRaw outs) [ "AUTH LOGIN\r\n" ] "AUTH line"

                        match events outs with
                        | [ Event.SaslChallenge(1L, c) ] ->
                            Expect.equal (Encoding.ASCII.GetString c) "Username:" "decoded"
                        | other -> failtestf "%A" other

                        let s, outs = stepN s (Input.SaslRespond(Secret.FromString "bob"))
                        Expect.equal (sentRaw outs) [ "Ym9i\r\n" ] "base64 answer"
                        let s, outs = runAll s [ received "+ \r\n" ]

                        match events outs with
                        | [ Event.SaslChallenge(1L, c) ] -> Expect.isEmpty c "an empty challenge"
                        | other -> failtestf "%A" other

                        let _, outs = stepN s (Input.SaslRespond(Secret.FromString "pw"))
                        Expect.equal (sentRaw outs) [ "cHc=\r\n" ] "second answer"

                    testCase "SaslCancel sends '*' and the -ERR that follows is a Rejected"
                    <| fun () ->
                        let s, _ =
                            runAll
                                (authorized plain capaSasl)
                                [ Input.Submit(1L, Request.Auth("LOGIN", None)); received "+ VXNlcm5hbWU6\r\n" ]

                        let s, outs = stepN s Input.SaslCancel
                        Expect.equal (sentRaw outs) [ "*\r\n" ] "cancel line"
                        let s, outs = stepN s (received "-ERR authentication cancelled\r\n")
                        Expect.equal s.Phase.Kind PhaseKind.Authorization "back to authorization"

                        match events outs with
                        | [ Event.Rejected(1L, e) ] -> Expect.equal e.Command "AUTH" "command"
                        | other -> failtestf "%A" other

                    testCase "an initial response too long for 255 octets goes after the first '+ ' instead"
                    <| fun () ->
                        let ir = Secret.FromString(String('a', 200))

                        let s, outs =
                            stepN (authorized plain capaSasl) (Input.Submit(1L, Request.Auth("PLAIN", Some ir)))

                        Expect.equal (sentRaw outs) [ "AUTH PLAIN\r\n" ] "no initial response on the AUTH line"
                        let s, outs = stepN s (received "+ \r\n")

                        Expect.equal
                            (sentRaw outs)
                            [ Convert.ToBase64String(Encoding.ASCII.GetBytes(String('a', 200))) + "\r\n" ]
                            "the deferred response"

                        Expect.isEmpty (events outs) "no challenge reaches the caller"
                        let _, outs = runAll s [ received "+OK\r\n" ]
                        Expect.equal (sent outs) [ "CAPA" ] "logged in: the core's CAPA follows"

                    testCase "a challenge that is not base64 sends '*' and fails with BadSaslChallenge"
                    <| fun () ->
                        let s, outs =
                            runAll
                                (authorized plain capaSasl)
                                [ Input.Submit(1L, Request.Auth("LOGIN", None)); received "+ not base64!\r\n" ]

                        Expect.equal (sent outs) [ "AUTH LOGIN"; "*" ] "cancelled"
                        Expect.equal s.Phase.Kind PhaseKind.Failed "failed"
                        expectProtocolFailure ProtocolErrorKind.BadSaslChallenge outs
                        Expect.equal (finals 1L outs).Length 1 "AUTH aborted"

                    testCase "more than MaxSaslRounds challenges sends '*' and fails with SaslLimitExceeded"
                    <| fun () ->
                        let s, _ =
                            stepN (authorized saslOptions capaSasl) (Input.Submit(1L, Request.Auth("LOGIN", None)))

                        let mutable s = s

                        for _ in 1..3 do
                            let s2, outs =
                                runAll s [ received "+ eA==\r\n"; Input.SaslRespond(Secret.FromString "y") ]

                            Expect.equal (sent outs) [ "eQ==" ] "answered"
                            s <- s2

                        let s, outs = stepN s (received "+ eA==\r\n")
                        Expect.equal (sent outs) [ "*" ] "cancelled"
                        Expect.equal s.Phase.Kind PhaseKind.Failed "failed"
                        expectProtocolFailure ProtocolErrorKind.SaslLimitExceeded outs

                    testCase "SaslRespond with no exchange is Refused(0, NoSaslExchange)"
                    <| fun () ->
                        let s = authorized plain capaSasl
                        let s2, outs = stepN s (Input.SaslRespond(Secret.FromString "x"))
                        Expect.isEmpty (sent outs) "nothing sent"

                        match events outs with
                        | [ Event.Refused(0L, e) ] -> Expect.equal e.Kind UsageErrorKind.NoSaslExchange "kind"
                        | other -> failtestf "%A" other

                        Expect.isTrue (s2 = s) "unchanged"

                    testCase "SaslRespond before the server's challenge is Refused(0, NoSaslExchange)"
                    <| fun () ->
                        let s, _ =
                            stepN (authorized plain capaSasl) (Input.Submit(1L, Request.Auth("LOGIN", None)))

                        let _, outs = stepN s Input.SaslCancel
                        Expect.isEmpty (sent outs) "nothing sent"

                        match events outs with
                        | [ Event.Refused(0L, e) ] -> Expect.equal e.Kind UsageErrorKind.NoSaslExchange "kind"
                        | other -> failtestf "%A" other

                    testCase "AUTH PLAIN over plaintext without the opt-in is PlaintextCredentials"
                    <| fun () ->
                        let opts =
                            { plain with
                                AllowPlaintextCredentials = false
                            }

                        expectRefused
                            (authorized opts capaSasl)
                            1L
                            (Request.Auth("PLAIN", Some(Secret.FromString "\000a\000b")))
                            UsageErrorKind.PlaintextCredentials
                        |> ignore
                ]
        ]
