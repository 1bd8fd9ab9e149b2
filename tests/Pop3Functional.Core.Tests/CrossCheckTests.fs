/// Cross-checks from the second review of the core: the SASL guards around a deferred initial
/// response and the challenge limit (each proved a defect, now fixed), plus exhaustive checks of
/// deletion bookkeeping (every +OK/-ERR combination) and strict/tolerant body decoding against a
/// reference decoder at every split.
module Pop3Functional.Core.Tests.CrossCheckTests

open System
open System.Text
open Expecto
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

let private protocolKind (s: SessionState) =
    match s.Phase with
    | Phase.Failed(Pop3Error.Protocol e) -> Some e.Kind
    | _ -> None

let private authorized (options: Options) =
    let s, _ =
        runAll (Session.create options) [ received "+OK hi\r\n"; received "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n" ]

    if s.Phase.Kind <> PhaseKind.Authorization then
        failtestf "not in authorization: %A" s.Phase.Kind

    s

let private challenges outs =
    events outs
    |> List.choose (function
        | Event.SaslChallenge(_, c) -> Some c
        | _ -> None)

let private withSasl (octets: int) =
    { plain with
        Limits = plain.Limits.WithSaslLimits(octets, 16)
    }

// ----- a reference body decoder (RFC 1939 §3) for a differential check ------------------------

/// Decodes a whole multi-line body: lines end at CRLF (or at any LF when bareLf), "." alone ends,
/// a leading "." is removed. Returns the data and the index after the terminator, or None.
let private referenceDecode (bareLf: bool) (input: byte[]) =
    let out = ResizeArray<byte>()
    let mutable i = 0
    let mutable result = None

    while result.IsNone && i < input.Length do
        // find the end of this line
        let mutable j = i
        let mutable eol = -1
        let mutable eolLen = 0

        while eol < 0 && j < input.Length do
            if input[j] = 13uy && j + 1 < input.Length && input[j + 1] = 10uy then
                eol <- j
                eolLen <- 2
            elif bareLf && input[j] = 10uy then
                eol <- j
                eolLen <- 1
            else
                j <- j + 1

        if eol < 0 then
            i <- input.Length // incomplete line: no terminator
        else
            let line = input[i .. eol - 1]

            if line = [| 46uy |] then
                result <- Some(out.ToArray(), eol + eolLen)
            else
                let data =
                    if line.Length > 0 && line[0] = 46uy then
                        line[1..]
                    else
                        line

                out.AddRange data
                out.AddRange input[eol .. eol + eolLen - 1]
                i <- eol + eolLen

    result

/// Runs BodyDecoder over the given chunks; returns the data and the consumed length, or None.
let private decodeChunks (bareLf: bool) (chunks: byte[] list) =
    let out = ResizeArray<byte>()
    let mutable cursor = BodyCursor.LineStart
    let mutable consumed = 0
    let mutable ended = None

    for chunk in chunks do
        if ended.IsNone then
            let p =
                BodyDecoder.decode bareLf cursor (ReadOnlyMemory chunk) 0 (fun seg -> out.AddRange(seg.ToArray()))

            cursor <- p.Cursor

            if p.Ended then
                ended <- Some(out.ToArray(), consumed + p.Next)
            else
                consumed <- consumed + chunk.Length

    ended

let private alphabet = [| 46uy; 13uy; 10uy; 120uy |] // '.', CR, LF, 'x'

let rec private strings (n: int) : byte list seq =
    seq {
        if n = 0 then
            yield []
        else
            for rest in strings (n - 1) do
                for b in alphabet do
                    yield b :: rest
    }

let private show (b: byte[]) =
    Encoding.Latin1.GetString(b).Replace("\r", "\\r").Replace("\n", "\\n")

// ----- deletion model -------------------------------------------------------------------------

type private Op =
    | D of uint64
    | R

[<Tests>]
let tests =
    testList
        "CrossCheckTests"
        [
            // ---- 1. SentThisStep and the deferred initial response
            testCase
                "S1 deferred SASL initial response: '+OK' in the chunk of the first '+ ' is unsolicited (it answers a line the server never read)"
            <| fun () ->
                let s0 = authorized plain
                let ir = Secret.FromString(String('x', 300)) // does not fit in 255 octets: deferred

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Auth("PLAIN", Some ir))
                            received "+ \r\n+OK welcome\r\n"
                        ]

                // The initial response is sent while handling "+ "; the "+OK" arrived with it.
                Expect.equal
                    (protocolKind s)
                    (Some ProtocolErrorKind.UnsolicitedData)
                    (sprintf "expected UnsolicitedData (security.md #22/#37); got %A / %A" s.Phase.Kind (render outs))

            testCase
                "S2 deferred SASL initial response: a second '+ ' in the same chunk is unsolicited, never handed to the caller"
            <| fun () ->
                let s0 = authorized plain
                let ir = Secret.FromString(String('x', 300))

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Auth("PLAIN", Some ir))
                            received "+ \r\n+ YWJj\r\n"
                        ]

                Expect.equal
                    (protocolKind s)
                    (Some ProtocolErrorKind.UnsolicitedData)
                    (sprintf "expected UnsolicitedData; got %A / %A" s.Phase.Kind (render outs))

            testCase "S3 deferred initial response answered in a later chunk logs in"
            <| fun () ->
                let s0 = authorized plain
                let ir = Secret.FromString(String('x', 300))

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(1L, Request.Auth("PLAIN", Some ir))
                            received "+ \r\n"
                            received "+OK welcome\r\n"
                        ]

                Expect.equal s.Phase.Kind PhaseKind.OpeningMailbox (sprintf "%A" (render outs))

            testCase "S4 pipelined: replies to A and B in one chunk while A's reply refills the window"
            <| fun () ->
                let o =
                    { plain with
                        Limits = plain.Limits.WithPipelineWindow(2, 4096)
                    }

                let s0 = loggedIn o 3 true

                let s, outs =
                    runAll
                        s0
                        [
                            Input.Submit(3L, Request.Noop)
                            Input.Submit(4L, Request.Retr 1UL)
                            Input.Submit(5L, Request.Noop)
                            received "+OK a\r\n+OK body\r\nhi\r\n.\r\n"
                            received "+OK c\r\n"
                        ]

                Expect.equal s.Phase.Kind PhaseKind.Transaction (sprintf "%A" (render outs))

                Expect.isTrue
                    (events outs
                     |> List.exists (function
                         | Event.Answered(5L, _) -> true
                         | _ -> false))
                    (sprintf "%A" (render outs))

            testCase
                "S5 deferred initial response: '+OK' before any '+ ' is a protocol error, not a login without credentials"
            <| fun () ->
                let s0 = authorized plain
                let ir = Secret.FromString(String('x', 300))

                let s, outs =
                    runAll s0 [ Input.Submit(1L, Request.Auth("PLAIN", Some ir)); received "+OK welcome\r\n" ]

                // Same rule as RegressionTests R12: no success before the client's response was sent.
                Expect.equal
                    (protocolKind s)
                    (Some ProtocolErrorKind.UnsolicitedData)
                    (sprintf "expected a protocol error; got %A / %A" s.Phase.Kind (render outs))

            // ---- 3. SASL challenge size
            testCase
                "L1 a SASL challenge of exactly MaxSaslChallengeOctets decoded octets is accepted (padding not counted)"
            <| fun () ->
                let s0 = authorized (withSasl 4)
                // "AAAA" = 4 octets, base64 "QUFBQQ==" (8 characters)
                let s, outs =
                    runAll s0 [ Input.Submit(1L, Request.Auth("X-TEST", None)); received "+ QUFBQQ==\r\n" ]

                Expect.equal
                    (challenges outs)
                    [ "AAAA"B ]
                    (sprintf "a 4-octet challenge within a 4-octet limit; got %A / %A" s.Phase (render outs))

            testCase "L2 the default limit: a challenge of exactly 65,536 octets is accepted"
            <| fun () ->
                let s0 = authorized plain
                let challenge = Array.create 65536 7uy
                let line = "+ " + Convert.ToBase64String challenge + "\r\n"

                let s, outs =
                    runAll s0 [ Input.Submit(1L, Request.Auth("X-TEST", None)); received line ]

                Expect.equal
                    (challenges outs |> List.map _.Length)
                    [ 65536 ]
                    (sprintf "DESIGN §5: 64 KiB decoded; got %A" s.Phase)

            testCase "L3 a huge MaxSaslChallengeOctets does not overflow the AUTH line limit"
            <| fun () ->
                // (x + 2) / 3 * 4 wraps negative for x above about 1.6e9, so the line limit falls back to 8 KiB
                let s0 = authorized (withSasl 2_000_000_000)
                let challenge = Array.create 10000 7uy // 13,336 base64 characters > 8 KiB line limit
                let line = "+ " + Convert.ToBase64String challenge + "\r\n"

                let s, outs =
                    runAll s0 [ Input.Submit(1L, Request.Auth("X-TEST", None)); received line ]

                Expect.equal
                    (challenges outs |> List.map _.Length)
                    [ 10000 ]
                    (sprintf "challenge within the SASL limit; got %A" s.Phase)

            // ---- 4. BodyDecoder: exhaustive differential check against RFC 1939 §3
            testCase "B1 strict and tolerant body decoding equal the reference at every split"
            <| fun () ->
                let mutable failures = []

                for bareLf in [ false; true ] do
                    for n in 0..6 do
                        for body in strings n do
                            let input = Array.append (Array.ofList body) "\r\n.\r\nZ"B

                            match referenceDecode bareLf input with
                            | None -> ()
                            | Some expected ->
                                let check (chunks: byte[] list) =
                                    let got = decodeChunks bareLf chunks

                                    if got <> Some expected then
                                        failures <-
                                            sprintf
                                                "bareLf=%b %A: expected %A got %A"
                                                bareLf
                                                (chunks |> List.map show)
                                                (let d, k = expected in show d, k)
                                                (got |> Option.map (fun (d, k) -> show d, k))
                                            :: failures

                                check [ input ]
                                check [ for b in input -> [| b |] ]

                                for i in 1 .. input.Length - 1 do
                                    check [ input[.. i - 1]; input[i..] ]

                                    for j in i + 1 .. input.Length - 1 do
                                        check [ input[.. i - 1]; input[i .. j - 1]; input[j..] ]

                Expect.isEmpty (List.truncate 5 failures) (sprintf "%d failures" failures.Length)

            // ---- 2. deletion marks: every +OK/-ERR combination, pipelined and lock-step
            testCase "D1 DELE 1 / RSET / DELE 2 / QUIT: committed = what the server confirmed"
            <| fun () ->
                let ops = [ D 1UL; R; D 2UL ]

                for pipelining in [ false; true ] do
                    for mask in 0..15 do
                        let ok i = mask &&& (1 <<< i) <> 0
                        let s0 = loggedIn plain 3 pipelining

                        let submits =
                            [
                                for i, op in List.indexed ops do
                                    match op with
                                    | D n -> yield Input.Submit(int64 (10 + i), Request.Dele n)
                                    | R -> yield Input.Submit(int64 (10 + i), Request.Rset)
                                yield Input.Submit(20L, Request.Quit)
                            ]

                        let replies =
                            [ for i in 0..3 -> received (if ok i then "+OK x\r\n" else "-ERR no\r\n") ]

                        let s, outs = runAll s0 (submits @ replies)

                        let server =
                            List.indexed ops
                            |> List.fold
                                (fun (st: Set<uint64>) (i, op) ->
                                    match op, ok i with
                                    | D n, true -> st.Add n
                                    | R, true -> Set.empty
                                    | _ -> st)
                                Set.empty

                        let quit =
                            events outs
                            |> List.tryPick (function
                                | Event.Answered(20L, Reply.Quit q) -> Some q.DeletionsCommitted
                                | _ -> None)

                        let expected = if ok 3 then Some(Set.toList server) else None

                        Expect.equal quit expected (sprintf "pipelining=%b mask=%d: %A" pipelining mask (render outs))

                        Expect.equal s.Phase.Kind PhaseKind.Closed "closed"
        ]
