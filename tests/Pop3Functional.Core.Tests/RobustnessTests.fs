/// The machine never throws, stays bounded on adversarial input, and Session.step is pure.
module Pop3Functional.Core.Tests.RobustnessTests

open System
open System.Text
open Expecto
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

// ----- starting points in every phase ----------------------------------------------------------

let private pw () = Secret.FromString "pw"

let private tlsRequired =
    { Options.Default with
        Tls = TlsMode.StartTlsRequired
    }

let private tiny =
    { plain with
        Limits =
            { plain.Limits with
                MaxLineOctets = 64
                MaxCapaLines = 8
                MaxListingEntries = 3UL
                MaxSaslChallengeOctets = 12
                MaxSaslRounds = 2
                MaxMessageOctets = Some 50UL
            }
    }

let private through (options: Options) (inputs: Input list) =
    fst (runAll (Session.create options) inputs)

let private greeted = [ received "+OK hi <1.2@host>\r\n" ]

let private capa =
    [
        received "+OK\r\nUSER\r\nSASL PLAIN CRAM-MD5\r\nSTLS\r\nUTF8\r\nLANG\r\nPIPELINING\r\n.\r\n"
    ]

let private inTransaction (options: Options) (more: Input list) =
    let s = loggedIn options 3 true
    fst (runAll s more)

/// Sessions in every phase a hostile server can reach.
let private starts (options: Options) =
    [|
        "awaiting greeting", Session.create options
        "awaiting CAPA", through options greeted
        "authorization", through options (greeted @ capa)
        "awaiting PASS", through options (greeted @ capa @ [ Input.Submit(1L, Request.User "bob"); received "+OK\r\n" ])
        "SASL pending",
        through
            options
            (greeted
             @ capa
             @ [ Input.Submit(1L, Request.Auth("CRAM-MD5", None)); received "+ QUJD\r\n" ])
        "SASL awaiting the server",
        through
            options
            (greeted
             @ capa
             @ [
                 Input.Submit(1L, Request.Auth("CRAM-MD5", None))
                 received "+ QUJD\r\n"
                 Input.SaslRespond(pw ())
             ])
        "awaiting STLS reply", through tlsRequired (greeted @ capa)
        "awaiting TLS handshake", through tlsRequired (greeted @ capa @ [ received "+OK\r\n" ])
        "transaction", inTransaction options []
        "RETR pending", inTransaction options [ Input.Submit(10L, Request.Retr 1UL); received "+OK\r\nSubject: x\r\n" ]
        "listing pending", inTransaction options [ Input.Submit(10L, Request.List None); received "+OK\r\n1 100\r\n" ]
        "UIDL pending", inTransaction options [ Input.Submit(10L, Request.Uidl None) ]
        "QUIT pending", inTransaction options [ Input.Submit(10L, Request.Dele 1UL); Input.Submit(11L, Request.Quit) ]
    |]

let private plainStarts = starts plain
let private tinyStarts = starts tiny

// ----- random inputs ---------------------------------------------------------------------------

let private tokens =
    [|
        "+OK\r\n"
        "+OK 2 200\r\n"
        "-ERR no\r\n"
        "-ERR [IN-USE] busy\r\n"
        ".\r\n"
        "1 100\r\n"
        "2 200\r\n"
        "1 abc\r\n"
        "+ \r\n"
        "+ QUJD\r\n"
        "+ ====\r\n"
        "\r\n"
        "\r"
        "\n"
        ".."
        "+OK <1.2@h>\r\n"
        "STLS\r\n"
        "PIPELINING\r\n"
        "SASL PLAIN\r\n"
        "\000"
        "+ok\r\n"
        "99999999999999999999"
        "x"
    |]

let private requests =
    [|
        Request.User "bob"
        Request.Pass(Secret.FromString "pw")
        Request.Apop("bob", Secret.FromString "pw")
        Request.Auth("CRAM-MD5", None)
        Request.Auth("PLAIN", Some(Secret.FromString "\000bob\000pw"))
        Request.Stat
        Request.List None
        Request.List(Some 1UL)
        Request.Retr 1UL
        Request.Dele 1UL
        Request.Noop
        Request.Rset
        Request.Quit
        Request.Top(2UL, 0UL)
        Request.Uidl None
        Request.Uidl(Some 2UL)
        Request.Capa
        Request.Stls
        Request.Utf8
        Request.Lang None
        Request.Rpop "bob"
    |]

/// One random thing that can happen to a session.
type Op =
    | Bytes of byte[]
    | Token of int
    | Submit of int
    /// A request and a server line right after it: makes request/reply pairs common.
    | Exchange of int * int
    | Eos
    | Tls
    | Respond
    | Cancel
    | WriteFail

let private transportError =
    {
        Operation = "write"
        Endpoint = ""
        Message = "reset"
        Exception = None
    }

/// Turns ops into inputs; submits get fresh ids from 100 up.
let private toInputs (ops: Op list) =
    let mutable next = 100L

    let submit i =
        next <- next + 1L
        Input.Submit(next, requests[abs (i % requests.Length)])

    let token i =
        received tokens[abs (i % tokens.Length)]

    ops
    |> List.collect (fun op ->
        match op with
        | Bytes b -> [ received (text (if isNull b then [||] else b)) ]
        | Token i -> [ token i ]
        | Submit i -> [ submit i ]
        | Exchange(i, j) -> [ submit i; token j ]
        | Eos -> [ Input.EndOfStream ]
        | Tls -> [ Input.TlsEstablished None ]
        | Respond -> [ Input.SaslRespond(Secret.FromString "answer") ]
        | Cancel -> [ Input.SaslCancel ]
        | WriteFail -> [ Input.WriteFailed transportError ])

// ----- invariants ------------------------------------------------------------------------------

let private finalId (e: Event) =
    match e with
    | Event.Answered(_, Reply.MessageFollows _) -> None
    | Event.Answered(id, _)
    | Event.Rejected(id, _)
    | Event.Refused(id, _)
    | Event.Aborted(id, _)
    | Event.BodyEnded(id, _) -> Some id
    | _ -> None

/// Runs inputs from a start, checking after every step what must hold whatever the server does.
/// Returns the final session, all normalised outputs and the body octets per request.
let private runChecked (s0: SessionState) (inputs: Input list) =
    let limit = s0.Options.Limits.MaxLineOctets
    let mutable s = s0
    let mutable failed = s0.Phase.Kind = PhaseKind.Failed
    let all = ResizeArray<Norm>()
    let bodyOctets = Collections.Generic.Dictionary<RequestId, int64>()

    for input in inputs do
        let struct (next, outs) = Session.step s input

        for o in outs do
            match o with
            | Output.Emit(Event.BodyData(id, data)) ->
                Expect.isGreaterThan id 0L "body for a caller request"

                bodyOctets[id] <-
                    (match bodyOctets.TryGetValue id with
                     | true, n -> n
                     | _ -> 0L)
                    + int64 data.Length
            | Output.Emit(Event.Failed e) ->
                Expect.isFalse failed "Failed at most once"
                Expect.isNotEmpty e.Message "a failure says why"
                failed <- true
            | Output.Emit(Event.Aborted(_, e)) -> Expect.isNotEmpty e.Message "an abort says why"
            | Output.Emit(Event.Refused(_, e)) -> Expect.isNotEmpty e.Message "a refusal says why"
            | Output.Emit e ->
                match e with
                | Event.Answered(id, _)
                | Event.Rejected(id, _)
                | Event.SaslChallenge(id, _)
                | Event.BodyEnded(id, _) -> Expect.isGreaterThan id 0L "caller ids only"
                | _ -> ()
            | Output.Send _ -> Expect.isFalse (failed && s.Phase.Kind = PhaseKind.Failed) "nothing sent once failed"
            | _ -> ()

        s <- next
        Expect.isLessThan s.Partial.Length limit "the held partial line stays under the limit"
        all.AddRange(normalize outs)

    s, List.ofSeq all, bodyOctets

/// After the run and a final EndOfStream, every submitted id has exactly one final event.
let private checkFinals (inputs: Input list) (outs: Norm list) =
    let submitted =
        inputs
        |> List.choose (function
            | Input.Submit(id, _) -> Some id
            | _ -> None)

    let finals = events outs |> List.choose finalId |> List.countBy id |> Map.ofList

    for id in submitted do
        let n = finals.TryFind id |> Option.defaultValue 0

        if n <> 1 then
            failtestf "request %d: %d final events, expected exactly one, in %A" id n (render outs)

/// The parts of a session that matter, comparable by value (command bytes copied out of their memory).
let private fingerprint (s: SessionState) =
    let pending (ps: Pending list) =
        ps
        |> List.map (fun p -> p.Id, p.Command.LogText, text (p.Command.Bytes.ToArray()), p.Expect, p.Barrier)

    (s.Phase, s.TlsActive, s.Utf8Active, s.Capabilities, s.CapaSupported),
    (pending (s.InFlight.ToList()), s.InFlightOctets, pending (s.Waiting.ToList())),
    (s.Reading, text (s.Partial.ToArray()), s.NextCoreId, s.QuirksReported, s.ChannelBinding)

let private config n =
    { FsCheckConfig.defaultConfig with
        maxTest = n
        endSize = 60
    }

let private propertyTests =
    testList
        "properties"
        [
            testPropertyWithConfig (config 1000) "random byte chunks in every phase never throw and keep the invariants"
            <| fun (start: int) (chunks: byte[] list) ->
                let _, s0 = plainStarts[abs (start % plainStarts.Length)]

                let inputs =
                    (chunks |> List.map (fun b -> received (text (if isNull b then [||] else b))))
                    @ [ Input.EndOfStream ]

                let s, _, _ = runChecked s0 inputs

                Expect.isTrue
                    (s.Phase.Kind = PhaseKind.Failed || s.Phase.Kind = PhaseKind.Closed)
                    "ends failed or closed"

            testPropertyWithConfig
                (config 1000)
                "random bytes, tokens, submits and shell reports: no exception, one final event per request"
            <| fun (start: int) (ops: Op list) ->
                let _, s0 = plainStarts[abs (start % plainStarts.Length)]
                let inputs = toInputs ops @ [ Input.EndOfStream ]
                let _, outs, _ = runChecked s0 inputs
                checkFinals inputs outs

            testPropertyWithConfig
                (config 1000)
                "request and reply pairs (no raw noise): one final event per request, never mispaired"
            <| fun (start: int) (pairs: (int * int) list) ->
                let _, s0 = plainStarts[abs (start % plainStarts.Length)]
                let inputs = toInputs (pairs |> List.map Exchange) @ [ Input.EndOfStream ]
                let _, outs, _ = runChecked s0 inputs
                checkFinals inputs outs

            testPropertyWithConfig
                (config 1000)
                "tiny limits: body never exceeds MaxMessageOctets, partial never exceeds MaxLineOctets"
            <| fun (start: int) (ops: Op list) ->
                let _, s0 = tinyStarts[abs (start % tinyStarts.Length)]
                let inputs = toInputs ops @ [ Input.EndOfStream ]
                let _, outs, bodies = runChecked s0 inputs

                for KeyValue(id, n) in bodies do
                    Expect.isLessThanOrEqual n 50L $"body of {id} within the cap"

                checkFinals inputs outs

            testPropertyWithConfig
                (config 1000)
                "Session.step is pure: same session, same input, same outputs; the original is untouched"
            <| fun (start: int) (ops: Op list) ->
                let _, s0 = plainStarts[abs (start % plainStarts.Length)]
                let before = fingerprint s0
                let inputs = toInputs ops
                let mutable s = s0

                for input in inputs do
                    let struct (a, outsA) = Session.step s input
                    let struct (b, outsB) = Session.step s input
                    Expect.equal (normalize outsB) (normalize outsA) "same outputs"
                    Expect.equal (fingerprint b) (fingerprint a) "same session"
                    s <- a

                let runA, outsA = runAll s0 inputs
                let runB, outsB = runAll s0 inputs
                Expect.equal outsB outsA "a replay gives the same outputs"
                Expect.equal (fingerprint runB) (fingerprint runA) "and the same session"
                Expect.equal (fingerprint s0) before "the original session is unchanged"
        ]

// ----- bounded memory on adversarial input -----------------------------------------------------

let private feedMany (s0: SessionState) (chunk: byte[]) (times: int) =
    let mutable s = s0
    let mutable maxPartial = 0
    let all = ResizeArray<Output>()

    for _ in 1..times do
        let struct (next, outs) = Session.step s (Input.Received(ReadOnlyMemory chunk))
        s <- next
        maxPartial <- max maxPartial s.Partial.Length

        for o in outs do
            match o with
            | Output.Emit(Event.BodyData(id, d)) ->
                all.Add(Output.Emit(Event.BodyData(id, ReadOnlyMemory(d.ToArray()))))
            | o -> all.Add o

    s, maxPartial, List.ofSeq all

let private kind (s: SessionState) =
    match s.Phase with
    | Phase.Failed(Pop3Error.Protocol e) -> Some e.Kind
    | _ -> None

let private boundTests =
    testList
        "bounded"
        [
            testCase "an endless status line while LIST is awaited fails at MaxLineOctets"
            <| fun () ->
                let s0 = inTransaction plain [ Input.Submit(10L, Request.Noop) ]
                let s, maxPartial, outs = feedMany s0 (Array.create 1000 (byte 'a')) 1024
                Expect.equal (kind s) (Some ProtocolErrorKind.LineTooLong) "LineTooLong"
                Expect.isLessThan maxPartial plain.Limits.MaxLineOctets "partial bounded"

                Expect.equal
                    (outs
                     |> List.filter (function
                         | Output.Emit(Event.Aborted(10L, _)) -> true
                         | _ -> false))
                        .Length
                    1
                    "NOOP aborted once"

            testCase "an endless listing line fails at MaxLineOctets"
            <| fun () ->
                let s0 =
                    inTransaction plain [ Input.Submit(10L, Request.List None); received "+OK\r\n1 " ]

                let s, maxPartial, _ = feedMany s0 (Array.create 999 (byte '9')) 1024
                Expect.isSome (kind s) "failed"
                Expect.isLessThan maxPartial plain.Limits.MaxLineOctets "partial bounded"

            testCase "an endless listing stops at MaxListingEntries"
            <| fun () ->
                let options =
                    { plain with
                        Limits =
                            { plain.Limits with
                                MaxListingEntries = 1000UL
                            }
                    }

                let s0 =
                    fst (runAll (loggedIn options 1 false) [])
                    |> fun s ->
                        // A mailbox as large as the server claims: STAT said 2^40 messages.
                        { s with
                            Phase =
                                Phase.Transaction
                                    {
                                        Count = 1UL <<< 40
                                        Octets = 0UL
                                        Deleted = Set.empty
                                        Confirmed = Set.empty
                                    }
                        }

                let s1, _ = runAll s0 [ Input.Submit(10L, Request.Uidl None); received "+OK\r\n" ]

                let lines n0 n1 =
                    String.Join("", [ for i in n0..n1 -> $"{i} uid{i}\r\n" ])

                let s2, outs = runAll s1 [ received (lines 1 1000) ]

                Expect.equal
                    s2.Phase.Kind
                    PhaseKind.Transaction
                    (sprintf "1,000 accepted: %A" (List.truncate 3 (render outs)))

                let s3, _ = runAll s2 [ received (lines 1001 1001) ]
                Expect.equal (kind s3) (Some ProtocolErrorKind.ListingTooLong) "entry 1,001 refused"

            testCase "an endless CAPA stops at MaxCapaLines"
            <| fun () ->
                let s0 = through plain (greeted @ [ received "+OK\r\n" ])
                let lines = String.Join("", [ for i in 1..1000 -> $"X-CAP-{i}\r\n" ])
                let s1, _ = runAll s0 [ received lines ]
                Expect.equal s1.Phase.Kind PhaseKind.AwaitingCapa "1,000 lines accepted"
                let s2, _ = runAll s1 [ received "X-ONE-MORE\r\n" ]
                Expect.equal (kind s2) (Some ProtocolErrorKind.ListingTooLong) "line 1,001 refused"

            testCase "a never-ending body with MaxMessageOctets delivers exactly the cap, then MessageTooLarge"
            <| fun () ->
                let options =
                    { plain with
                        Limits =
                            { plain.Limits with
                                MaxMessageOctets = Some 10_000UL
                            }
                    }

                let s0 =
                    inTransaction options [ Input.Submit(10L, Request.Retr 1UL); received "+OK\r\n" ]

                let s, _, outs =
                    feedMany s0 (Encoding.ASCII.GetBytes(String.replicate 100 "0123456789\r\n")) 1000

                let delivered =
                    outs
                    |> List.sumBy (function
                        | Output.Emit(Event.BodyData(_, d)) -> d.Length
                        | _ -> 0)

                Expect.equal delivered 10_000 "exactly the cap"
                Expect.equal (kind s) (Some ProtocolErrorKind.MessageTooLarge) "MessageTooLarge"

                Expect.isFalse
                    (outs
                     |> List.exists (function
                         | Output.Emit(Event.BodyEnded _) -> true
                         | _ -> false))
                    "never complete"

            testCase "an unlimited streamed body holds nothing between chunks"
            <| fun () ->
                let s0 =
                    inTransaction plain [ Input.Submit(10L, Request.Retr 1UL); received "+OK\r\n" ]

                let chunk = Encoding.ASCII.GetBytes(String.replicate 100 "0123456789\r\n")
                let s, maxPartial, outs = feedMany s0 chunk 1000
                Expect.equal maxPartial 0 "no line buffer"
                Expect.equal s.Phase.Kind PhaseKind.Transaction "still streaming"

                let delivered =
                    outs
                    |> List.sumBy (function
                        | Output.Emit(Event.BodyData(_, d)) -> d.Length
                        | _ -> 0)

                Expect.equal delivered (chunk.Length * 1000) "every octet delivered"

            for line in
                [
                    "+OK " + String('9', 30) + " 1"
                    "+OK 1 " + String('9', 5000)
                    "+OK 18446744073709551616 0"
                ] do
                testCase $"a huge number in STAT ({line.Length} octets) is a BadNumber"
                <| fun () ->
                    let s0 = inTransaction plain [ Input.Submit(10L, Request.Stat) ]
                    let s, outs = runAll s0 [ received (line + "\r\n") ]
                    Expect.equal (kind s) (Some ProtocolErrorKind.BadNumber) "BadNumber"
                    Expect.contains (events outs |> List.choose finalId) 10L "STAT has its final event"

            testCase "stepping a session twice does not mutate it (explicit)"
            <| fun () ->
                let s0 =
                    inTransaction plain [ Input.Submit(10L, Request.List None); received "+OK\r\n1 1" ]

                let before = sprintf "%A" s0
                let input = received "00\r\n.\r\n"
                let a, outsA = stepN s0 input
                let b, outsB = stepN s0 input
                Expect.equal (render outsA) (render outsB) "same outputs"
                Expect.equal (sprintf "%A" a) (sprintf "%A" b) "same session"
                Expect.equal (sprintf "%A" s0) before "original untouched"
                Expect.equal (Encoding.ASCII.GetString(s0.Partial.ToArray())) "1 1" "partial kept in the original"
        ]

[<Tests>]
let tests = testList "RobustnessTests" [ propertyTests; boundTests ]
