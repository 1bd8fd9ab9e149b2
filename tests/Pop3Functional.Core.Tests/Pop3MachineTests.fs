/// Tests of the C#-friendly face of the core (Pop3Machine.fs), driven the way the shell drives it.
module Pop3Functional.Core.Tests.Pop3MachineTests

open System
open System.Runtime.InteropServices
open Expecto
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

/// Takes every waiting output, in order.
let private drain (m: Pop3Machine) =
    let result = ResizeArray<Pop3Output>()
    let mutable o = Unchecked.defaultof<Pop3Output>

    while m.TryDequeue(&o) do
        result.Add o

    List.ofSeq result

let private feed (m: Pop3Machine) (s: string) = m.Feed(ReadOnlyMemory(ascii s))

let private bytesText (o: Pop3Output) = text (o.Bytes.ToArray())

let private sends outs =
    outs
    |> List.filter (fun (o: Pop3Output) -> o.Kind = Pop3OutputKind.Send)
    |> List.map bytesText

let private eventsOf kind outs =
    outs
    |> List.filter (fun (o: Pop3Output) -> o.Kind = Pop3OutputKind.Event && o.EventKind = kind)

let private single kind outs =
    match eventsOf kind outs with
    | [ o ] -> o
    | other -> failtestf "expected one %A event, got %d in %A" kind other.Length outs

let private capaLines =
    "+OK\r\nUSER\r\nTOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\n.\r\n"

/// A plaintext machine logged in to a mailbox of three messages (600 octets), outputs drained.
let private loggedInMachine () =
    let m = Pop3Machine plain
    feed m "+OK ready <1.2@host>\r\n"
    feed m capaLines
    m.Submit(1L, Pop3Request.User "bob")
    feed m "+OK\r\n"
    m.Submit(2L, Pop3Request.Pass(Secret.FromString "pw"))
    feed m "+OK logged in\r\n"
    feed m capaLines
    feed m "+OK 3 600\r\n"
    drain m |> ignore

    if m.State <> "Transaction" then
        failtestf "not logged in: %s" m.State

    m

[<Tests>]
let tests =
    testList
        "Pop3MachineTests"
        [
            testCase "outputs are drained with TryDequeue in the order they happened"
            <| fun () ->
                let m = Pop3Machine plain
                Expect.equal m.PendingOutputs 0 "nothing before the greeting"
                feed m "+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n"
                Expect.equal m.PendingOutputs 2 "greeting event and CAPA"
                let mutable o = Unchecked.defaultof<Pop3Output>
                Expect.isTrue (m.TryDequeue(&o)) "first"
                Expect.equal (o.Kind, o.EventKind) (Pop3OutputKind.Event, Pop3EventKind.Greeting) "greeting first"
                Expect.equal o.Text "POP3 ready <1896.697170952@dbc.mtview.ca.us>" "greeting text"
                Expect.isTrue o.ApopAvailable "timestamp seen"
                Expect.isTrue (m.TryDequeue(&o)) "second"
                Expect.equal o.Kind Pop3OutputKind.Send "then CAPA"
                Expect.equal (bytesText o) "CAPA\r\n" "CAPA bytes"
                Expect.isFalse (m.TryDequeue(&o)) "no third"
                Expect.isNull (box o) "output cleared when empty"
                Expect.equal m.PendingOutputs 0 "drained"

            testCase "Send outputs carry the exact bytes and a redacted LogText"
            <| fun () ->
                let m = Pop3Machine plain
                feed m "+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n"
                feed m "+OK\r\nUSER\r\n.\r\n"
                m.Submit(1L, Pop3Request.User "mrose")
                let user = drain m |> List.last
                Expect.equal (bytesText user) "USER mrose\r\n" "USER bytes"
                Expect.equal user.LogText "USER mrose" "public argument logged"
                feed m "+OK\r\n"
                m.Submit(2L, Pop3Request.Pass(Secret.FromString "tanstaaf s3cret"))
                let pass = drain m |> List.last
                Expect.equal (bytesText pass) "PASS tanstaaf s3cret\r\n" "PASS bytes"
                Expect.equal pass.LogText "PASS ********" "password redacted"
                Expect.equal (string pass) "Send PASS ********" "ToString redacted too"

            testCase "APOP is sent with the RFC 1939 digest and logged without it"
            <| fun () ->
                let m = Pop3Machine plain
                feed m "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
                feed m "-ERR unknown command\r\n"
                drain m |> ignore
                m.Submit(1L, Pop3Request.Apop("mrose", Secret.FromString "tanstaaf"))
                let apop = drain m |> List.exactlyOne
                Expect.equal (bytesText apop) "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n" "RFC 1939 §7 example"
                Expect.equal apop.LogText "APOP mrose ********" "digest redacted"

            testCase "Answered outputs for the login and STAT carry Count and Octets"
            <| fun () ->
                let m = Pop3Machine plain
                feed m "+OK ready\r\n"
                feed m capaLines
                m.Submit(1L, Pop3Request.User "bob")
                feed m "+OK\r\n"
                m.Submit(2L, Pop3Request.Pass(Secret.FromString "pw"))
                feed m "+OK logged in\r\n"

                Expect.equal
                    (drain m |> sends)
                    [ "CAPA\r\n"; "USER bob\r\n"; "PASS pw\r\n"; "CAPA\r\n"; "STAT\r\n" ]
                    "CAPA and STAT pipelined after login"

                Expect.isFalse m.MessageCount.HasValue "no snapshot yet"
                feed m capaLines
                feed m "+OK 3 600\r\n"
                let login = drain m |> single Pop3EventKind.Answered
                Expect.equal login.RequestId 2L "the PASS request"
                Expect.isTrue login.LoggedIn "login"
                Expect.equal (login.Count, login.Octets) (3UL, 600UL) "snapshot"
                Expect.equal login.Text "logged in" "PASS status text"
                Expect.equal m.MessageCount (Nullable 3UL) "MessageCount"
                m.Submit(3L, Pop3Request.Stat())
                feed m "+OK 2 450\r\n"

                let stat =
                    drain m
                    |> List.filter (fun o -> o.Kind = Pop3OutputKind.Event)
                    |> List.exactlyOne

                Expect.equal (stat.EventKind, stat.RequestId) (Pop3EventKind.Answered, 3L) "STAT answered"
                Expect.isFalse stat.LoggedIn "not a login"
                Expect.equal (stat.Count, stat.Octets) (2UL, 450UL) "STAT values"

            testCase "LIST and UIDL answers carry ListEntries and UidEntries"
            <| fun () ->
                let m = loggedInMachine ()
                m.Submit(3L, Pop3Request.List())
                m.Submit(4L, Pop3Request.List 2UL)
                m.Submit(5L, Pop3Request.Uidl())
                m.Submit(6L, Pop3Request.Uidl 3UL)
                Expect.equal (drain m |> sends) [ "LIST\r\n"; "LIST 2\r\n"; "UIDL\r\n"; "UIDL 3\r\n" ] "pipelined"

                feed
                    m
                    "+OK\r\n1 100\r\n2 200\r\n3 300\r\n.\r\n+OK 2 200\r\n+OK\r\n1 a1\r\n2 b2\r\n3 c3\r\n.\r\n+OK 3 c3\r\n"

                let answers = drain m |> eventsOf Pop3EventKind.Answered
                Expect.equal (answers |> List.map _.RequestId) [ 3L; 4L; 5L; 6L ] "in order"
                let list = answers[0].ListEntries |> List.ofSeq
                let sizes = list |> List.map (fun e -> e.Number, e.Octets)
                Expect.equal sizes [ 1UL, 100UL; 2UL, 200UL; 3UL, 300UL ] "LIST"
                Expect.equal (answers[1].ListEntries |> List.ofSeq) [ { Number = 2UL; Octets = 200UL } ] "LIST 2"

                let uids =
                    answers[2].UidEntries |> Seq.map (fun e -> e.Number, e.Uid.Value) |> List.ofSeq

                Expect.equal uids [ 1UL, "a1"; 2UL, "b2"; 3UL, "c3" ] "UIDL"
                let one = answers[3].UidEntries |> Seq.exactlyOne
                Expect.equal (one.Number, one.Uid.Value) (3UL, "c3") "UIDL 3"
                Expect.isNull (box answers[0].UidEntries) "no UIDs on a LIST answer"

            testCase "capabilities are exposed as Pop3Capabilities properties"
            <| fun () ->
                let m = Pop3Machine plain

                feed m "+OK ready\r\n"

                feed
                    m
                    ("+OK Capability list follows\r\nTOP\r\nUSER\r\nSASL PLAIN SCRAM-SHA-256\r\nRESP-CODES\r\n"
                     + "AUTH-RESP-CODE\r\nLOGIN-DELAY 900\r\nPIPELINING\r\nEXPIRE 31 USER\r\nUIDL\r\n"
                     + "IMPLEMENTATION Shlemazle Plotz v302\r\nSTLS\r\nUTF8 USER\r\nLANG\r\nXOIP\r\n.\r\n")

                let outs = drain m
                let received = (single Pop3EventKind.CapabilitiesReceived outs).Capabilities
                let ready = (single Pop3EventKind.AuthorizationReady outs).Capabilities

                for c in [ received; ready; m.Capabilities ] do
                    Expect.isTrue (c.Top && c.User && c.RespCodes && c.AuthRespCode && c.Pipelining) "flags"
                    Expect.isTrue (c.Uidl && c.Stls && c.Lang && c.Utf8 && c.Utf8User) "more flags"
                    Expect.equal (List.ofSeq c.SaslMechanisms) [ "PLAIN"; "SCRAM-SHA-256" ] "SASL"
                    Expect.equal c.Implementation "Shlemazle Plotz v302" "IMPLEMENTATION"
                    Expect.equal c.LoginDelaySeconds (Nullable 900UL) "LOGIN-DELAY"
                    Expect.equal c.ExpireDays (Nullable 31UL) "EXPIRE"
                    Expect.isFalse c.ExpireNever "not NEVER"
                    Expect.equal c.Lines.Count 14 "every line"
                    Expect.equal c.Value.Other [ "XOIP", [] ] "unknown kept"

                m.Submit(1L, Pop3Request.Capa())
                feed m "+OK\r\nEXPIRE NEVER\r\nUTF8\r\n.\r\n"
                let again = drain m |> single Pop3EventKind.Answered
                Expect.equal again.RequestId 1L "caller's CAPA answered"
                let c = again.Capabilities
                Expect.isTrue c.ExpireNever "NEVER"
                Expect.isFalse c.ExpireDays.HasValue "no days"
                Expect.isTrue (c.Utf8 && not c.Utf8User) "UTF8 without USER"
                Expect.isFalse (c.LoginDelaySeconds.HasValue || c.Top || c.Pipelining) "nothing else"
                Expect.isNull c.Implementation "no IMPLEMENTATION"

            testCase "the QUIT answer carries DeletionsCommitted, then Close"
            <| fun () ->
                let m = loggedInMachine ()
                m.Submit(3L, Pop3Request.Dele 3UL)
                m.Submit(4L, Pop3Request.Dele 1UL)
                m.Submit(5L, Pop3Request.Quit())
                Expect.equal (drain m |> sends) [ "DELE 3\r\n"; "DELE 1\r\n" ] "QUIT waits for the replies"
                feed m "+OK deleted\r\n+OK deleted\r\n"
                Expect.equal (drain m |> sends) [ "QUIT\r\n" ] "then QUIT"
                Expect.isFalse m.IsClosed "not yet closed"
                feed m "+OK bye\r\n"
                let outs = drain m
                let quit = single Pop3EventKind.Answered outs
                Expect.equal quit.RequestId 5L "QUIT"
                Expect.isTrue quit.UpdateCompleted "UPDATE entered"
                Expect.equal (List.ofSeq quit.DeletionsCommitted) [ 1UL; 3UL ] "ascending"
                Expect.equal quit.Text "bye" "text"
                Expect.equal (List.last outs).Kind Pop3OutputKind.Close "Close last"
                Expect.isTrue m.IsClosed "closed"
                Expect.equal m.State "Closed" "state name"
                Expect.isFalse m.MessageCount.HasValue "no snapshot after QUIT"

            testCase "BodyData bytes are slices of the fed memory and concatenate to the unstuffed body"
            <| fun () ->
                let m = loggedInMachine ()
                m.Submit(3L, Pop3Request.Retr 2UL)
                drain m |> ignore

                let reply =
                    ascii "+OK 42 octets\r\nSubject: x\r\n\r\n..dot\r\nplain\r\n...\r\n.\r\n"

                let body = ResizeArray<byte>()
                let mutable ended = None
                // Split in the middle of "..dot" and of the terminator.
                let cuts = [ 0; 7; 30; 31; reply.Length - 2; reply.Length ]

                for (a, b) in List.pairwise cuts do
                    let chunk = ReadOnlyMemory(reply, a, b - a)
                    m.Feed(chunk)

                    for o in drain m do
                        match o.EventKind with
                        | Pop3EventKind.BodyData ->
                            Expect.equal o.RequestId 3L "body of RETR 2"
                            let mutable segment = ArraySegment<byte>()
                            Expect.isTrue (MemoryMarshal.TryGetArray(o.Bytes, &segment)) "array-backed"
                            // Valid during the step: it points into the fed bytes (or is the held CR).
                            Expect.isTrue (Object.ReferenceEquals(segment.Array, reply) || o.Bytes.Length = 1) "no copy"
                            body.AddRange(o.Bytes.ToArray())
                        | Pop3EventKind.BodyEnded -> ended <- Some o.Octets
                        | _ -> ()

                Expect.equal (text (body.ToArray())) "Subject: x\r\n\r\n.dot\r\nplain\r\n..\r\n" "unstuffed"
                Expect.equal ended (Some(uint64 body.Count)) "BodyEnded octets"

            testCase "Feed(byte[], offset, count) reads only the slice and copies it"
            <| fun () ->
                let m = loggedInMachine ()
                m.Submit(3L, Pop3Request.Retr 1UL)
                drain m |> ignore
                let reply = "+OK\r\nhello\r\n.\r\n"

                let buffer =
                    Array.append (ascii "JUNK") (Array.append (ascii reply) (ascii "MORE JUNK"))

                m.Feed(buffer, 4, reply.Length)
                // The shell reuses its read buffer before draining: the doc says the bytes are copied.
                Array.Fill(buffer, byte 'Z')
                let outs = drain m

                let data =
                    eventsOf Pop3EventKind.BodyData outs |> List.map bytesText |> String.concat ""

                Expect.equal data "hello\r\n" "body intact after the array was reused"
                Expect.equal (single Pop3EventKind.BodyEnded outs).Octets 7UL "octets"
                Expect.equal m.State "Transaction" "the junk around the slice was never read"

            testCase "Rejected outputs carry a server Pop3Failure with the response code"
            <| fun () ->
                let m = Pop3Machine plain
                feed m "+OK ready\r\n"
                feed m capaLines
                m.Submit(1L, Pop3Request.User "bob")
                feed m "+OK\r\n"
                m.Submit(2L, Pop3Request.Pass(Secret.FromString "pw"))
                feed m "-ERR [IN-USE] mailbox locked by another session\r\n"
                let r = drain m |> single Pop3EventKind.Rejected
                Expect.equal r.RequestId 2L "PASS"
                let f = r.Failure
                Expect.equal (f.Kind, f.Code, f.Command) (Pop3ErrorKind.Server, "IN-USE", "PASS") "kind, code, command"
                Expect.equal f.ServerText "mailbox locked by another session" "server text without the code"
                Expect.stringContains f.Message "[IN-USE]" "message names the code"
                Expect.equal m.State "Authorization" "the session goes on"
                m.Submit(3L, Pop3Request.User "bob")
                feed m "-ERR no such user\r\n"
                let r2 = drain m |> single Pop3EventKind.Rejected
                Expect.equal (r2.Failure.Code, r2.Failure.Command) ("ERR", "USER") "no code: ERR"

            testCase "Refused outputs carry a usage Pop3Failure and nothing is sent"
            <| fun () ->
                let m = Pop3Machine plain
                feed m "+OK ready\r\n"
                feed m capaLines
                drain m |> ignore
                m.Submit(1L, Pop3Request.Retr 1UL)
                let r = drain m |> List.exactlyOne
                Expect.equal (r.EventKind, r.RequestId) (Pop3EventKind.Refused, 1L) "refused"
                let f = r.Failure
                Expect.equal (f.Kind, f.Code, f.Command) (Pop3ErrorKind.Usage, "WrongState", "RETR") "WrongState"
                Expect.isNull f.ServerText "no server text"
                Expect.stringContains f.Message "RETR" "message names the command"
                let logged = loggedInMachine ()
                logged.Submit(3L, Pop3Request.Retr 4UL)
                let r2 = drain logged |> List.exactlyOne
                Expect.equal (r2.Failure.Code, r2.Failure.Command) ("NoSuchMessage", "RETR") "outside the snapshot"
                logged.Submit(4L, Pop3Request.User "bad\r\nDELE 1")
                let r3 = drain logged |> List.exactlyOne
                Expect.equal r3.Failure.Kind Pop3ErrorKind.Usage "injection refused"
                Expect.equal r3.EventKind Pop3EventKind.Refused "nothing sent"

            testCase "Aborted and Failed outputs carry the protocol failure; the machine is failed and closed"
            <| fun () ->
                let m = loggedInMachine ()
                m.Submit(3L, Pop3Request.Retr 1UL)
                m.Submit(4L, Pop3Request.Noop())
                drain m |> ignore
                feed m (String('x', 9000))
                let outs = drain m
                let aborted = eventsOf Pop3EventKind.Aborted outs
                Expect.equal (aborted |> List.map _.RequestId) [ 3L; 4L ] "both requests aborted"
                let f = aborted[0].Failure
                Expect.equal (f.Kind, f.Code, f.Command) (Pop3ErrorKind.Protocol, "LineTooLong", "RETR") "LineTooLong"
                let failed = single Pop3EventKind.Failed outs
                Expect.equal failed.Failure.Code "LineTooLong" "Failed too"
                Expect.equal (List.last outs).Kind Pop3OutputKind.Close "Close"
                Expect.isTrue m.IsFailed "IsFailed"
                Expect.isFalse m.IsClosed "failed, not closed"
                Expect.equal m.State "Failed" "state"
                m.Submit(5L, Pop3Request.Stat())
                let later = drain m |> List.exactlyOne
                Expect.equal (later.EventKind, later.Failure.Code) (Pop3EventKind.Aborted, "LineTooLong") "sticky"

            testCase "WriteFailed gives a Failed output of kind Transport"
            <| fun () ->
                let m = loggedInMachine ()
                m.Submit(3L, Pop3Request.Noop())
                drain m |> ignore
                let boom = IO.IOException "connection reset by peer"
                m.WriteFailed("write", "pop.example.com:110", "connection reset by peer", boom)
                let outs = drain m
                let aborted = single Pop3EventKind.Aborted outs
                Expect.equal (aborted.RequestId, aborted.Failure.Kind) (3L, Pop3ErrorKind.Transport) "NOOP aborted"
                let failed = single Pop3EventKind.Failed outs
                let f = failed.Failure
                Expect.equal (f.Kind, f.Code, f.Command) (Pop3ErrorKind.Transport, "Transport", "write") "transport"
                Expect.equal f.Message "connection reset by peer" "message"

                match f.Error with
                | Pop3Error.Transport t ->
                    Expect.equal t.Endpoint "pop.example.com:110" "endpoint"
                    Expect.isTrue (obj.ReferenceEquals(t.Exception.Value, boom)) "exception kept"
                | other -> failtestf "expected a transport error, got %A" other

                Expect.equal (List.last outs).Kind Pop3OutputKind.Close "Close"
                Expect.isTrue m.IsFailed "failed"

            testCase "STLS: StartTls output, then TlsEstablished turns IsTlsActive on and CAPA is asked again"
            <| fun () ->
                let m = Pop3Machine.Create(TlsMode.StartTlsRequired, false)
                Expect.isFalse m.IsTlsActive "plaintext at first"
                Expect.equal m.State "AwaitingGreeting" "awaiting the greeting"
                feed m "+OK ready <1.2@host>\r\n"
                feed m "+OK\r\nSTLS\r\nUSER\r\n.\r\n"
                Expect.equal (drain m |> sends) [ "CAPA\r\n"; "STLS\r\n" ] "STLS sent by the core"
                Expect.equal m.State "AwaitingStlsReply" "awaiting STLS"
                feed m "+OK begin TLS\r\n"
                let outs = drain m
                Expect.equal (outs |> List.map _.Kind) [ Pop3OutputKind.StartTls ] "StartTls only"
                Expect.equal m.State "AwaitingTlsHandshake" "awaiting the handshake"
                m.TlsEstablished null
                Expect.isTrue m.IsTlsActive "TLS up"
                Expect.equal (drain m |> sends) [ "CAPA\r\n" ] "CAPA again"
                feed m "+OK\r\nUSER\r\n.\r\n"
                let ready = drain m |> single Pop3EventKind.AuthorizationReady
                Expect.isFalse ready.ApopAvailable "timestamp discarded by STLS"
                Expect.equal m.State "Authorization" "ready to log in"

            testCase "QuirkTolerated carries the quirk's name; the default machine uses implicit TLS"
            <| fun () ->
                let m = Pop3Machine()
                Expect.isTrue m.IsTlsActive "implicit TLS"
                feed m "+OK bare\n"
                let outs = drain m
                let q = single Pop3EventKind.QuirkTolerated outs
                Expect.equal q.Quirk "bare-lf" "name"
                Expect.equal (single Pop3EventKind.Greeting outs).Text "bare" "greeting still read"

            testCase "SaslChallenge carries the decoded challenge; RespondSasl sends the redacted answer"
            <| fun () ->
                let m = Pop3Machine(Options.Default)
                feed m "+OK ready\r\n"
                feed m "+OK\r\nSASL CRAM-MD5\r\n.\r\n"
                drain m |> ignore
                m.Submit(1L, Pop3Request.Auth "CRAM-MD5")
                Expect.equal (drain m |> sends) [ "AUTH CRAM-MD5\r\n" ] "AUTH"

                feed
                    m
                    ("+ "
                     + Convert.ToBase64String(ascii "<1896.697170952@postoffice.example.net>")
                     + "\r\n")

                let challenge = drain m |> single Pop3EventKind.SaslChallenge
                Expect.equal challenge.RequestId 1L "AUTH request"
                Expect.equal (text challenge.Challenge) "<1896.697170952@postoffice.example.net>" "decoded"
                m.RespondSasl(Secret.FromString "tim b913a602c7eda7a495b4e6e7334d3890")
                let answer = drain m |> List.exactlyOne

                let expected =
                    Convert.ToBase64String(ascii "tim b913a602c7eda7a495b4e6e7334d3890") + "\r\n"

                Expect.equal (bytesText answer) expected "base64"
                Expect.equal answer.LogText "********" "redacted"
                feed m "+OK\r\n"
                Expect.equal (drain m |> sends) [ "CAPA\r\n" ] "logged in: CAPA first (no PIPELINING)"
                feed m "+OK\r\nSASL CRAM-MD5\r\n.\r\n"
                Expect.equal (drain m |> sends) [ "STAT\r\n" ] "then STAT"
                feed m "+OK 0 0\r\n"
                let login = drain m |> single Pop3EventKind.Answered
                Expect.equal (login.RequestId, login.LoggedIn, login.Count) (1L, true, 0UL) "AUTH answered as a login"

            testCase "Submit(null) throws ArgumentNullException"
            <| fun () ->
                let m = Pop3Machine plain
                Expect.throwsT<ArgumentNullException> (fun () -> m.Submit(1L, Unchecked.defaultof<Pop3Request>)) "null"

            testCase "the machine and the F# session give the same outputs for the same script"
            <| fun () ->
                let script =
                    [
                        received "+OK ready <7.8@host>\r\n"
                        received "+OK\r\nUSER\r\nPIPELINING\r\nUIDL\r\n.\r\n"
                        Input.Submit(1L, Request.User "bob")
                        received "+ok\r\n"
                        Input.Submit(2L, Request.Pass(Secret.FromString "pw"))
                        received "+OK in\r\n"
                        // The core's CAPA and STAT go out together (PIPELINING); their replies follow.
                        received "+OK\r\nUSER\r\nPIPELINING\r\nUIDL\r\n.\r\n+OK 2 30\r\n"
                        Input.Submit(3L, Request.Uidl None)
                        Input.Submit(4L, Request.Retr 2UL)
                        Input.Submit(5L, Request.Dele 2UL)
                        Input.Submit(6L, Request.Retr 9UL)
                        received "+OK\r\n2  u2\r\n1 u1\r\n.\r\n+OK\r\n..a\r\n"
                        received "b\r\n.\r\n-ERR\r\n"
                        Input.Submit(7L, Request.Quit)
                        received "+OK bye\r\n"
                    ]

                let m = Pop3Machine plain
                let mutable s = Session.create plain

                for input in script do
                    let struct (next, outs) = Session.step s input
                    s <- next

                    match input with
                    | Input.Received bytes -> m.Feed(bytes)
                    | Input.Submit(id, request) -> m.Submit(id, Pop3Request request)
                    | other -> failtestf "not in this script: %A" other

                    let fromMachine = drain m
                    let expected = render (normalize outs)
                    Expect.equal (render (normalize (fromMachine |> List.map _.Source))) expected "same outputs"

                    let kinds =
                        outs
                        |> List.map (function
                            | Output.Send _ -> Pop3OutputKind.Send
                            | Output.StartTls -> Pop3OutputKind.StartTls
                            | Output.Emit _ -> Pop3OutputKind.Event
                            | Output.Close -> Pop3OutputKind.Close)

                    Expect.equal (fromMachine |> List.map _.Kind) kinds "same kinds"

                Expect.equal m.State (string s.Phase.Kind) "same final state"
                Expect.isTrue m.IsClosed "closed"
        ]
