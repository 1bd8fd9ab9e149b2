/// Every fault of FaultPlan against the client core: the client ends with a typed error or a
/// tolerated quirk, never throws, never hangs, and what completed before the fault is exact.
module Pop3Functional.Simulator.Tests.FaultPlanTests

open System
open Expecto
open Pop3Functional.Core
open Pop3Functional.Simulator
open Pop3Functional.Simulator.Tests.Loop
open Pop3Functional.Simulator.Tests.ClientServerTests

/// Message k: about 2 KiB of lines, some starting with "." and some a lone ".".
let private message (k: int) =
    let lines =
        [
            $"Subject: message {k}"
            $"Message-ID: <{k}@faults.invalid>"
            ""
            for i in 1..60 do
                if i % 7 = 0 then "."
                elif i % 5 = 0 then $".line {i} of message {k}"
                elif i % 11 = 0 then ""
                else $"line {i} of message {k} with some text"
        ]

    {
        Uid = $"uid-{k}"
        Content = utf8 (String.Join("\r\n", lines) + "\r\n")
    }

let private messages = [ message 1; message 2; message 3 ]
let private content k = messages[k - 1].Content

/// Ids in the standard session: USER 1, PASS 2, then the steps' requests from 3 on.
let private retrieveAll =
    [ [ Request.Retr 1UL; Request.Retr 2UL; Request.Retr 3UL ]; [ Request.Quit ] ]

/// A fixed clock, so that two runs greet with the same APOP timestamp.
let private fixedClock =
    Func<DateTimeOffset>(fun () -> DateTimeOffset(2024, 6, 1, 8, 0, 0, TimeSpan.Zero))

type private Outcome =
    {
        R: RunResult
        Box: Mailbox
        Boxes: Mailboxes
        Transcript: Transcript
        Connection: ServerConnection
    }

/// Runs login and these steps against a personality under a fault plan; the connection is
/// disposed afterwards (as a host would), so the maildrop is released.
let private runFaulty
    (p: Personality)
    (plan: FaultPlan)
    (client: Options)
    (chunking: Chunking)
    (stlsAvailable: bool)
    (steps: Request list list)
    =
    let boxes, box, _ = mailboxesWith messages
    let transcript = Transcript()

    let conn =
        new ServerConnection(
            (ServerOptions.Create p).WithFaults(plan).WithClock(fixedClock),
            boxes,
            transcript,
            1,
            false,
            stlsAvailable
        )

    let r = run client conn chunking steps
    conn.Dispose()

    {
        R = r
        Box = box
        Boxes = boxes
        Transcript = transcript
        Connection = conn
    }

let private standard p plan steps =
    runFaulty p plan plainClient (Random 11) false (login @ steps)

let private protocolKind (r: RunResult) =
    match r.Failure with
    | Some(Pop3Error.Protocol e) -> Some e.Kind
    | _ -> None

let private abortedKind (r: RunResult) (id: RequestId) =
    match r.Final id with
    | Some(Event.Aborted(_, Pop3Error.Protocol e)) -> Some e.Kind
    | _ -> None

let private rejectedCode (r: RunResult) (id: RequestId) =
    match r.Final id with
    | Some(Event.Rejected(_, e)) -> Some e.Code
    | _ -> None

let private noCr (bytes: byte[]) =
    bytes |> Array.filter (fun b -> b <> 13uy)

let private isPrefix (prefix: byte[]) (whole: byte[]) =
    prefix.Length <= whole.Length && whole[.. prefix.Length - 1] = prefix

/// The events without BodyData (whose slices compare by reference), for run-to-run comparison.
let private comparable (r: RunResult) =
    r.Events
    |> List.filter (function
        | Event.BodyData _ -> false
        | _ -> true),
    r.Bodies,
    r.Sent

/// After a fault the maildrop is unchanged and free: a new, honest session logs in and sees it.
let private expectIntact (o: Outcome) (p: Personality) =
    Expect.equal o.Box.Count messages.Length $"{p.Name}: nothing removed"
    use conn = connect (ServerOptions.Create p) o.Boxes o.Transcript 2
    let r = run plainClient conn Whole (login @ [ [ Request.Quit ] ])

    check o.Transcript ((loggedIn r 2L |> Option.map _.Count) = Some(uint64 messages.Length)) (fun () ->
        $"{p.Name}: a new session logs in after the fault")

let private bodyPersonalities =
    [
        Personalities.simulator
        Personalities.cyrus
        Personalities.exchange
        Personalities.qmail
    ]

let private stlsPersonalities =
    Personalities.all
    |> List.map snd
    |> List.filter (fun p -> p.CapabilitiesBeforeLogin |> List.contains "STLS")

let private nth verb n = FaultTrigger.NthOfVerb(verb, n)

[<Tests>]
let tests =
    testList
        "Fault plans"
        [
            testList
                "wire faults"
                [
                    for p in bodyPersonalities do
                        for fault in
                            [
                                Fault.Latency(TimeSpan.FromSeconds 2.0)
                                Fault.Drip TimeSpan.Zero
                                Fault.Drip(TimeSpan.FromMilliseconds 5.0)
                            ] do
                            testCase $"{fault} changes nothing in memory ({p.Name})"
                            <| fun () ->
                                let steps = [ [ Request.List None; Request.Uidl None ] ] @ retrieveAll
                                let honest = standard p FaultPlan.None steps
                                let faulty = standard p (FaultPlan.Of fault) steps
                                Expect.isNone faulty.R.Failure "no failure"

                                Expect.equal
                                    (comparable faulty.R)
                                    (comparable honest.R)
                                    "the same events, bodies and commands"

                    for p in bodyPersonalities do
                        testCase $"DisconnectAfterOctets at every cut fails with ConnectionClosed ({p.Name})"
                        <| fun () ->
                            let honest = standard p FaultPlan.None retrieveAll
                            let total = honest.Connection.OctetsSent

                            for cut in [ 0L .. 53L .. total + 60L ] @ [ total - 1L; total ] do
                                let o = standard p (FaultPlan.Of(Fault.DisconnectAfterOctets cut)) retrieveAll
                                let r = o.R
                                let what = $"{p.Name}, cut at {cut} of {total}"

                                if cut >= total then
                                    Expect.isNone r.Failure $"{what}: the whole session fits"
                                else
                                    Expect.equal (protocolKind r) (Some ProtocolErrorKind.ConnectionClosed) what
                                    Expect.equal o.Connection.OctetsSent cut $"{what}: octets sent"

                                    for k in 1..3 do
                                        let id = 2L + int64 k

                                        match r.Final id with
                                        | Some(Event.BodyEnded _) ->
                                            Expect.equal
                                                (bodyOf r id)
                                                (content k)
                                                $"{what}: message {k} complete and exact"
                                        | Some(Event.Aborted(_, Pop3Error.Protocol e)) ->
                                            Expect.equal e.Kind ProtocolErrorKind.ConnectionClosed what

                                            Expect.isTrue
                                                (isPrefix (bodyOf r id) (content k))
                                                $"{what}: message {k} cut short, a prefix"
                                        | None ->
                                            Expect.isNone
                                                (loggedIn r 2L)
                                                $"{what}: unanswered only when never logged in"
                                        | other -> failtestf "%s: message %d ended with %A" what k other

                                    Expect.equal o.Box.Count 3 $"{what}: no QUIT, nothing removed"

                    for p in bodyPersonalities do
                        testCase $"BareLineFeeds: tolerated by default, bodies without CR ({p.Name})"
                        <| fun () ->
                            let o =
                                standard p (FaultPlan.Of Fault.BareLineFeeds) ([ [ Request.Dele 2UL ] ] @ retrieveAll)

                            let r = o.R
                            Expect.isNone r.Failure "no failure"
                            Expect.contains r.Quirks Quirk.BareLineFeed "the quirk is reported"
                            Expect.equal (bodyOf r 4L) (noCr (content 1)) "message 1 arrives with bare LFs"

                            Expect.isTrue
                                (match r.Final 5L with
                                 | Some(Event.Refused(_, e)) -> e.Kind = UsageErrorKind.MessageDeleted
                                 | _ -> false)
                                "RETR 2 refused by the client (marked deleted)"

                            Expect.equal (bodyOf r 6L) (noCr (content 3)) "message 3"

                            Expect.equal
                                (match r.Final 7L with
                                 | Some(Event.Answered(_, Reply.Quit q)) -> q.DeletionsCommitted
                                 | _ -> [])
                                [ 2UL ]
                                "QUIT commits"

                            Expect.equal o.Box.Uids [ "uid-1"; "uid-3" ] "message 2 removed"

                    testCase "BareLineFeeds: a strict client fails at the greeting"
                    <| fun () ->
                        let o =
                            runFaulty
                                Personalities.simulator
                                (FaultPlan.Of Fault.BareLineFeeds)
                                { plainClient with
                                    Quirks = Options.Strict.Quirks
                                }
                                Whole
                                false
                                (login @ retrieveAll)

                        Expect.equal (protocolKind o.R) (Some ProtocolErrorKind.BadStatusLine) "BadStatusLine"
                        Expect.isEmpty o.R.Sent "nothing was sent"

                    for p in stlsPersonalities do
                        for chunking in [ Whole; Fixed 1; Random 3 ] do
                            testCase $"InjectAfterStls: ResponseInjection, nothing secret sent ({p.Name}, {chunking})"
                            <| fun () ->
                                let o =
                                    runFaulty
                                        p
                                        (FaultPlan.Of(Fault.InjectAfterStls "+OK injected\r\n"B))
                                        { plainClient with
                                            Tls = TlsMode.StartTlsRequired
                                        }
                                        chunking
                                        true
                                        (login @ retrieveAll)

                                Expect.equal (protocolKind o.R) (Some ProtocolErrorKind.ResponseInjection) "injection"
                                Expect.equal o.R.Sent [ "CAPA"; "STLS" ] "only CAPA and STLS were sent"
                ]

            testList
                "reply faults"
                [
                    for p in bodyPersonalities @ [ Personalities.courier ] do
                        testCase
                            $"ErrorReply SYS/TEMP to the 2nd RETR: Rejected with the code, the session goes on ({p.Name})"
                        <| fun () ->
                            let plan =
                                FaultPlan.Of(Fault.ErrorReply(nth "RETR" 2, Some "SYS/TEMP", "Try again later."))

                            let o = standard p plan retrieveAll
                            let r = o.R
                            Expect.isNone r.Failure "no failure"
                            Expect.equal (bodyOf r 3L) (content 1) "message 1"

                            Expect.equal
                                (rejectedCode r 4L)
                                (Some(Some ResponseCode.SysTemp))
                                "RETR 2 rejected with [SYS/TEMP]"

                            Expect.isFalse (r.Bodies.ContainsKey 4L) "no body for RETR 2"
                            Expect.equal (bodyOf r 5L) (content 3) "message 3"
                            Expect.isTrue r.ServerClosed "QUIT answered"

                    testCase "ErrorReply SYS/TEMP to PASS (the 3rd command): the login can be repeated"
                    <| fun () ->
                        let plan =
                            FaultPlan.Of(Fault.ErrorReply(FaultTrigger.NthCommand 3, Some "SYS/TEMP", "Busy."))

                        let o =
                            runFaulty
                                Personalities.dovecot
                                plan
                                plainClient
                                (Random 2)
                                false
                                (login @ login @ [ [ Request.Retr 2UL ]; [ Request.Quit ] ])

                        Expect.equal (rejectedCode o.R 2L) (Some(Some ResponseCode.SysTemp)) "PASS rejected"
                        Expect.isSome (loggedIn o.R 4L) "the second PASS logs in"
                        Expect.equal (bodyOf o.R 5L) (content 2) "message 2"

                    testCase "ErrorReply SYS/PERM to DELE: nothing is committed at QUIT"
                    <| fun () ->
                        let plan =
                            FaultPlan.Of(Fault.ErrorReply(FaultTrigger.Verb "DELE", Some "SYS/PERM", "Read-only."))

                        let o =
                            standard
                                Personalities.simulator
                                plan
                                [ [ Request.Dele 1UL; Request.Dele 3UL ]; [ Request.Quit ] ]

                        Expect.equal (rejectedCode o.R 3L) (Some(Some ResponseCode.SysPerm)) "DELE 1"
                        Expect.equal (rejectedCode o.R 4L) (Some(Some ResponseCode.SysPerm)) "DELE 3"

                        match o.R.Final 5L with
                        | Some(Event.Answered(_, Reply.Quit q)) ->
                            Expect.isTrue q.UpdateCompleted "UPDATE"
                            Expect.isEmpty q.DeletionsCommitted "nothing confirmed"
                        | other -> failtestf "QUIT: %A" other

                        Expect.equal o.Box.Count 3 "nothing removed"

                    for p in bodyPersonalities do
                        testCase $"GarbageLine to LIST: BadStatusLine, earlier bodies exact ({p.Name})"
                        <| fun () ->
                            let o =
                                standard
                                    p
                                    (FaultPlan.Of(Fault.GarbageLine(FaultTrigger.Verb "LIST")))
                                    [ [ Request.Retr 1UL ]; [ Request.List None ]; [ Request.Retr 2UL ] ]

                            Expect.equal (bodyOf o.R 3L) (content 1) "message 1"
                            Expect.equal (abortedKind o.R 4L) (Some ProtocolErrorKind.BadStatusLine) "LIST aborted"
                            Expect.equal (protocolKind o.R) (Some ProtocolErrorKind.BadStatusLine) "failed"
                            Expect.isNone (o.R.Final 5L) "nothing submitted after the failure"
                            expectIntact o p

                    testCase "OversizedLine beyond MaxLineOctets: LineTooLong"
                    <| fun () ->
                        let o =
                            standard
                                Personalities.simulator
                                (FaultPlan.Of(Fault.OversizedLine(FaultTrigger.Verb "NOOP", 10_000)))
                                [ [ Request.Noop ] ]

                        Expect.equal (abortedKind o.R 3L) (Some ProtocolErrorKind.LineTooLong) "NOOP aborted"
                        Expect.equal (protocolKind o.R) (Some ProtocolErrorKind.LineTooLong) "failed"

                    testCase "OversizedLine within MaxLineOctets is accepted; a strict client's 512 is not"
                    <| fun () ->
                        let plan = FaultPlan.Of(Fault.OversizedLine(FaultTrigger.Verb "NOOP", 1000))

                        let o =
                            standard Personalities.simulator plan [ [ Request.Noop ]; [ Request.Retr 1UL ] ]

                        Expect.isTrue
                            (match o.R.Final 3L with
                             | Some(Event.Answered(_, Reply.Ok s)) -> s.Text.Length = 994
                             | _ -> false)
                            "NOOP answered with its long text"

                        Expect.equal (bodyOf o.R 4L) (content 1) "the session goes on"

                        let strict =
                            runFaulty
                                Personalities.simulator
                                plan
                                { plainClient with
                                    Limits = Limits.Strict
                                }
                                Whole
                                false
                                (login @ [ [ Request.Noop ] ])

                        Expect.equal (abortedKind strict.R 3L) (Some ProtocolErrorKind.LineTooLong) "512 octets at most"

                    for p in bodyPersonalities do
                        testCase $"NeverEndingLine: LineTooLong, and the run ends ({p.Name})"
                        <| fun () ->
                            let o =
                                standard
                                    p
                                    (FaultPlan.Of(Fault.NeverEndingLine(FaultTrigger.Verb "NOOP")))
                                    [ [ Request.Retr 1UL ]; [ Request.Noop ]; [ Request.Retr 2UL ] ]

                            Expect.equal (bodyOf o.R 3L) (content 1) "message 1"
                            Expect.equal (abortedKind o.R 4L) (Some ProtocolErrorKind.LineTooLong) "NOOP aborted"
                            Expect.isTrue o.R.ClientClosed "the client closed"
                            expectIntact o p

                    for p in bodyPersonalities do
                        testCase $"Silence at the 2nd RETR: ServerHung, no answer, no failure ({p.Name})"
                        <| fun () ->
                            let o = standard p (FaultPlan.Of(Fault.Silence(nth "RETR" 2))) retrieveAll
                            Expect.isTrue o.R.ServerHung "the server hung"
                            Expect.equal (bodyOf o.R 3L) (content 1) "message 1"
                            Expect.isNone (o.R.Final 4L) "RETR 2 unanswered"
                            Expect.isNone (o.R.Final 5L) "RETR 3 unanswered"
                            Expect.isNone o.R.Failure "the client only waits (timeouts are the shell's)"
                            Expect.isFalse o.R.ClientClosed "the client did not close"
                            // The host closing the connection releases the maildrop.
                            expectIntact o p

                    testCase "Silence at the greeting: nothing happens, the run ends"
                    <| fun () ->
                        let o =
                            standard
                                Personalities.simulator
                                (FaultPlan.Of(Fault.Silence(FaultTrigger.NthCommand 0)))
                                retrieveAll

                        Expect.isTrue o.R.ServerHung "hung"
                        Expect.isEmpty o.R.Events "no greeting, no event"
                        Expect.isEmpty o.R.Sent "nothing sent"

                    for p in bodyPersonalities do
                        testCase $"DisconnectInBody on the 3rd RETR: bodies 1 and 2 exact, the 3rd aborted ({p.Name})"
                        <| fun () ->
                            let o =
                                standard p (FaultPlan.Of(Fault.DisconnectInBody(nth "RETR" 3, 500L))) retrieveAll

                            let r = o.R
                            Expect.equal (bodyOf r 3L) (content 1) "message 1"
                            Expect.equal (bodyOf r 4L) (content 2) "message 2"
                            Expect.equal (abortedKind r 5L) (Some ProtocolErrorKind.ConnectionClosed) "RETR 3 truncated"
                            let partial = bodyOf r 5L
                            Expect.isTrue (isPrefix partial (content 3)) "a prefix of message 3"
                            Expect.isLessThanOrEqual partial.Length 500 "at most the octets sent"
                            Expect.isGreaterThan partial.Length 400 "most of them (a few were stuffing)"
                            Expect.equal (protocolKind r) (Some ProtocolErrorKind.ConnectionClosed) "failed"
                            Expect.isNone (r.Final 6L) "QUIT never submitted: the client had failed"
                            expectIntact o p

                    testCase "DisconnectInBody applies to TOP as well"
                    <| fun () ->
                        let o =
                            standard
                                Personalities.dovecot
                                (FaultPlan.Of(Fault.DisconnectInBody(FaultTrigger.Verb "TOP", 30L)))
                                [ [ Request.Retr 1UL ]; [ Request.Top(2UL, 5UL) ] ]

                        Expect.equal (bodyOf o.R 3L) (content 1) "RETR unaffected"
                        Expect.equal (abortedKind o.R 4L) (Some ProtocolErrorKind.ConnectionClosed) "TOP truncated"
                        Expect.equal (bodyOf o.R 4L) (content 2).[..29] "30 octets of message 2"

                    for p in bodyPersonalities do
                        testCase $"MissingTerminatorThenClose: every octet arrives, the request is aborted ({p.Name})"
                        <| fun () ->
                            let o =
                                standard p (FaultPlan.Of(Fault.MissingTerminatorThenClose(nth "RETR" 2))) retrieveAll

                            Expect.equal (bodyOf o.R 3L) (content 1) "message 1"
                            Expect.equal (bodyOf o.R 4L) (content 2) "the whole of message 2 was delivered"
                            Expect.equal (abortedKind o.R 4L) (Some ProtocolErrorKind.ConnectionClosed) "but not ended"
                            Expect.equal (abortedKind o.R 5L) (Some ProtocolErrorKind.ConnectionClosed) "RETR 3"
                            expectIntact o p

                    for p in bodyPersonalities do
                        testCase
                            $"BodyLonger: the client delivers the longer body and reports the size mismatch ({p.Name})"
                        <| fun () ->
                            let o =
                                standard
                                    p
                                    (FaultPlan.Of(Fault.BodyLonger(nth "RETR" 1, 200)))
                                    [
                                        [ Request.List(Some 1UL) ]
                                        [ Request.Retr 1UL; Request.Retr 2UL ]
                                        [ Request.Quit ]
                                    ]

                            let r = o.R
                            Expect.isNone r.Failure "no failure"
                            let listed = uint64 (content 1).Length

                            Expect.equal
                                (r.Final 3L)
                                (Some(Event.Answered(3L, Reply.ListEntry { Number = 1UL; Octets = listed })))
                                "LIST 1"

                            let body = bodyOf r 4L
                            Expect.equal body.Length ((content 1).Length + 200) "200 octets more"
                            Expect.isTrue (isPrefix (content 1) body) "the stored octets first"

                            Expect.isTrue
                                (body[(content 1).Length ..]
                                 |> Array.forall (fun b -> b = 120uy || b = 13uy || b = 10uy))
                                "then lines of x"

                            Expect.equal
                                (r.Final 4L)
                                (Some(Event.BodyEnded(4L, listed + 200UL)))
                                "BodyEnded counts them"

                            Expect.contains
                                r.Events
                                (Event.SizeMismatch(4L, 1UL, listed, listed + 200UL))
                                "the size mismatch is an event (LIST 1 was asked)"

                            Expect.equal
                                r.Quirks
                                (r.Quirks
                                 |> List.filter (fun q -> q = Quirk.EmptyStatusText || q = Quirk.MissingCapa))
                                "no other quirk"

                            Expect.equal (bodyOf r 5L) (content 2) "message 2 exact"

                    for p in bodyPersonalities do
                        testCase
                            $"BodyShorter: the client delivers the shorter body; without a LIST there is no size to compare ({p.Name})"
                        <| fun () ->
                            let o = standard p (FaultPlan.Of(Fault.BodyShorter(nth "RETR" 1, 100))) retrieveAll
                            let r = o.R
                            Expect.isNone r.Failure "no failure"
                            let stored = content 1
                            let body = bodyOf r 3L
                            // Cut back to the last line end at or before 100 octets from the end.
                            let cut = stored.Length - 100
                            let lastLf = Array.LastIndexOf(stored, 10uy, cut - 1)
                            Expect.equal body stored[..lastLf] "whole lines, at least 100 octets fewer"
                            Expect.equal (r.Final 3L) (Some(Event.BodyEnded(3L, uint64 body.Length))) "ended"

                            Expect.isFalse
                                (r.Events
                                 |> List.exists (function
                                     | Event.SizeMismatch _ -> true
                                     | _ -> false))
                                "no LIST, no comparison"

                            Expect.equal (bodyOf r 4L) (content 2) "message 2 exact"

                    for p in bodyPersonalities do
                        testCase $"NeverEndingMessage with MaxMessageOctets: MessageTooLarge ({p.Name})"
                        <| fun () ->
                            // Without a client limit Loop.run would never end: the body never does,
                            // and every round moves 4 MiB. A client must set MaxMessageOctets here.
                            let limit = 1UL <<< 20

                            let client =
                                { plainClient with
                                    Limits = plainClient.Limits.WithMaxMessageOctets(Nullable limit)
                                }

                            let o =
                                runFaulty
                                    p
                                    (FaultPlan.Of(Fault.NeverEndingMessage(nth "RETR" 2)))
                                    client
                                    (Random 9)
                                    false
                                    (login @ retrieveAll)

                            Expect.equal (bodyOf o.R 3L) (content 1) "message 1"
                            Expect.equal (abortedKind o.R 4L) (Some ProtocolErrorKind.MessageTooLarge) "RETR 2"
                            Expect.equal (uint64 (bodyOf o.R 4L).Length) limit "exactly the limit delivered"
                            Expect.equal (protocolKind o.R) (Some ProtocolErrorKind.MessageTooLarge) "failed"
                            Expect.isTrue o.R.ClientClosed "the client closed"
                            expectIntact o p
                ]

            testList
                "listing faults"
                [
                    let listBoth =
                        [
                            [ Request.List None ]
                            [ Request.Uidl None ]
                            [ Request.Retr 3UL ]
                            [ Request.Quit ]
                        ]

                    let entries (o: Outcome) = listing o.R 3L
                    let uids (o: Outcome) = uidListing o.R 4L

                    for p in bodyPersonalities do
                        testCase $"ListingGaps: tolerated and reported ({p.Name})"
                        <| fun () ->
                            let o = standard p (FaultPlan.Of Fault.ListingGaps) listBoth
                            Expect.isNone o.R.Failure "no failure"
                            Expect.contains o.R.Quirks Quirk.ListingGaps "reported"
                            Expect.equal (entries o |> Option.map (List.map fst)) (Some [ 1UL; 3UL ]) "LIST skips 2"

                            Expect.equal
                                (uids o |> Option.map (List.map snd))
                                (Some [ "uid-1"; "uid-3" ])
                                "UIDL skips 2"

                            Expect.equal (bodyOf o.R 5L) (content 3) "message 3 still retrievable"

                        testCase $"ListingDisorder: tolerated and reported, in the server's order ({p.Name})"
                        <| fun () ->
                            let o = standard p (FaultPlan.Of Fault.ListingDisorder) listBoth
                            Expect.isNone o.R.Failure "no failure"
                            Expect.contains o.R.Quirks Quirk.ListingOutOfOrder "reported"
                            Expect.equal (entries o |> Option.map (List.map fst)) (Some [ 3UL; 2UL; 1UL ]) "reversed"

                            Expect.equal
                                (uids o)
                                (Some [ 3UL, "uid-3"; 2UL, "uid-2"; 1UL, "uid-1" ])
                                "UIDL reversed, numbers and UIDs still paired"

                        testCase $"ListingHugeNumbers: sizes above 2^32 are parsed and reported ({p.Name})"
                        <| fun () ->
                            let o = standard p (FaultPlan.Of Fault.ListingHugeNumbers) listBoth
                            Expect.isNone o.R.Failure "no failure"
                            Expect.contains o.R.Quirks Quirk.NumbersAbove2Pow31 "reported"

                            Expect.equal
                                (entries o)
                                (Some [ for k in 1..3 -> uint64 k, uint64 (content k).Length + (1UL <<< 32) ])
                                "the sizes as sent"

                            Expect.equal (bodyOf o.R 5L) (content 3) "RETR unaffected"

                        testCase $"DuplicateUids: tolerated and reported ({p.Name})"
                        <| fun () ->
                            let o = standard p (FaultPlan.Of Fault.DuplicateUids) listBoth
                            Expect.isNone o.R.Failure "no failure"
                            Expect.contains o.R.Quirks Quirk.DuplicateUids "reported"
                            Expect.equal (uids o) (Some [ 1UL, "uid-1"; 2UL, "uid-1"; 3UL, "uid-1" ]) "as sent"

                    testCase "ListingDuplicates with every message listed: more entries than STAT counted"
                    <| fun () ->
                        let o =
                            standard Personalities.simulator (FaultPlan.Of Fault.ListingDuplicates) listBoth

                        Expect.equal (abortedKind o.R 3L) (Some ProtocolErrorKind.ListingTooLong) "LIST 1 2 3 1"

                    testCase "ListingDuplicates after a DELE: DuplicateMessageNumber"
                    <| fun () ->
                        let o =
                            standard
                                Personalities.simulator
                                (FaultPlan.Of Fault.ListingDuplicates)
                                [ [ Request.Dele 3UL ]; [ Request.Uidl None ] ]

                        Expect.equal (abortedKind o.R 4L) (Some ProtocolErrorKind.DuplicateMessageNumber) "UIDL 1 2 1"
                        expectIntact o Personalities.simulator

                    for fault, kind in
                        [
                            Fault.ListingGaps, ProtocolErrorKind.BadListing
                            Fault.ListingDisorder, ProtocolErrorKind.BadListing
                            Fault.DuplicateUids, ProtocolErrorKind.BadUid
                        ] do
                        testCase $"{fault} fails a strict client with {kind}"
                        <| fun () ->
                            let strict =
                                { plainClient with
                                    Quirks = Options.Strict.Quirks
                                }

                            let steps =
                                if fault = Fault.DuplicateUids then
                                    [ [ Request.Uidl None ] ]
                                else
                                    [ [ Request.List None ] ]

                            let o =
                                runFaulty Personalities.dovecot (FaultPlan.Of fault) strict Whole false (login @ steps)

                            Expect.equal (abortedKind o.R 3L) (Some kind) "aborted"
                            Expect.equal (protocolKind o.R) (Some kind) "failed"
                ]

            testList
                "SASL faults"
                [
                    for p in [ Personalities.simulator; Personalities.dovecot; Personalities.exchange ] do
                        for mechanism in [ "PLAIN"; "LOGIN" ] |> List.filter (fun m -> List.contains m p.SaslMechanisms) do
                            testCase $"SaslNotBase64: BadSaslChallenge, the exchange cancelled ({p.Name}, {mechanism})"
                            <| fun () ->
                                let o =
                                    runFaulty
                                        p
                                        (FaultPlan.Of Fault.SaslNotBase64)
                                        plainClient
                                        (Random 1)
                                        false
                                        [ [ Request.Auth(mechanism, None) ] ]

                                Expect.equal (abortedKind o.R 1L) (Some ProtocolErrorKind.BadSaslChallenge) "aborted"
                                Expect.equal (protocolKind o.R) (Some ProtocolErrorKind.BadSaslChallenge) "failed"
                                Expect.equal (List.last o.R.Sent) "*" "the client cancelled with *"
                ]

            testList
                "composed plans"
                [
                    testCase "ListingDisorder and ErrorReply: both take effect"
                    <| fun () ->
                        let plan =
                            FaultPlan
                                .Of(Fault.ListingDisorder)
                                .With(Fault.ErrorReply(nth "RETR" 1, Some "SYS/TEMP", "later"))

                        let o =
                            standard
                                Personalities.simulator
                                plan
                                [
                                    [ Request.List None ]
                                    [ Request.Retr 1UL; Request.Retr 2UL ]
                                    [ Request.Quit ]
                                ]

                        Expect.isNone o.R.Failure "no failure"
                        Expect.equal (listing o.R 3L |> Option.map (List.map fst)) (Some [ 3UL; 2UL; 1UL ]) "reversed"
                        Expect.equal (rejectedCode o.R 4L) (Some(Some ResponseCode.SysTemp)) "RETR 1 rejected"
                        Expect.equal (bodyOf o.R 5L) (content 2) "RETR 2 exact"

                    testCase "BareLineFeeds and DisconnectInBody: both take effect"
                    <| fun () ->
                        let plan =
                            FaultPlan
                                .Of(Fault.BareLineFeeds)
                                .And(FaultPlan.Of(Fault.DisconnectInBody(nth "RETR" 2, 300L)))

                        let o = standard Personalities.cyrus plan retrieveAll
                        Expect.contains o.R.Quirks Quirk.BareLineFeed "bare LF tolerated"
                        Expect.equal (bodyOf o.R 3L) (noCr (content 1)) "message 1 with bare LFs"
                        Expect.equal (abortedKind o.R 4L) (Some ProtocolErrorKind.ConnectionClosed) "RETR 2 cut"
                        Expect.isTrue (isPrefix (bodyOf o.R 4L) (noCr (content 2))) "a prefix of message 2"

                    testCase "Latency, Drip and ListingGaps over STLS: the gaps show, timing does not"
                    <| fun () ->
                        let plan =
                            FaultPlan.Of(
                                Fault.Latency(TimeSpan.FromSeconds 1.0),
                                Fault.Drip TimeSpan.Zero,
                                Fault.ListingGaps
                            )

                        let o =
                            runFaulty
                                Personalities.dovecot
                                plan
                                { Options.Default with
                                    Tls = TlsMode.StartTlsRequired
                                }
                                Whole
                                true
                                (login @ [ [ Request.List None ]; [ Request.Quit ] ])

                        Expect.isNone o.R.Failure "no failure"
                        Expect.equal (listing o.R 3L |> Option.map (List.map fst)) (Some [ 1UL; 3UL ]) "gaps"
                ]
        ]
