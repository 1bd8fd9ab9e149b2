/// Chunking invariance (DESIGN §3 and §10, security catalogue row 27): however the server's bytes
/// are split, the session sends the same commands and reports the same events.
module Pop3Functional.Core.Tests.ChunkingTests

open System
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

/// One step of a fixture: a reply from the server, an input from the caller or the shell, or a
/// causal boundary. Sync marks where the server must first read a command the core sends on its
/// own (CAPA after the greeting, STAT after lock-step CAPA, QUIT after the last reply): an honest
/// server's bytes after it can never arrive in the same chunk as the bytes before it, and the
/// core rejects them if they do (security.md #22). Chunks are cut at every Sync.
type private Step =
    | Server of string
    | Do of Input
    | Sync

type private Fixture =
    {
        Name: string
        Options: Options
        Steps: Step list
    }

let private latin1 (s: string) = Encoding.Latin1.GetBytes s

let private capa = "+OK capability list follows\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n"

let private capaPipelining =
    "+OK capability list follows\r\nUSER\r\nTOP\r\nUIDL\r\nPIPELINING\r\nSASL LOGIN\r\n.\r\n"

/// Dot-stuffed lines, a lone "." and "..", a bare CR, a NUL and ".CR" that is not a terminator.
let private trickyBody =
    "+OK 120 octets\r\nSubject: x\r\n\r\n..leading dot\r\n..\r\n...\r\nbare\rCR and NUL \000 here\r\n..\rx\r\n\r\nend\r\n.\r\n"

let private login (capaReply: string) =
    let pipelined = capaReply.Contains "PIPELINING"

    [
        Server "+OK POP3 ready <1.2@host>\r\n"
        Sync
        Server capaReply
        Do(Input.Submit(1L, Request.User "bob"))
        Server "+OK user ok\r\n"
        Do(Input.Submit(2L, Request.Pass(Secret.FromString "pw")))
        Server "+OK logged in\r\n"
        Sync
        Server capaReply
        // With PIPELINING the core sends CAPA and STAT together; else STAT waits for CAPA's reply.
        if not pipelined then
            Sync
        Server "+OK 3 360\r\n"
    ]

let private fullSession =
    {
        Name = "a whole lock-step session"
        Options = plain
        Steps =
            login capa
            @ [
                Do(Input.Submit(3L, Request.Stat))
                Server "+OK 3 360\r\n"
                Do(Input.Submit(4L, Request.List None))
                Server "+OK 3 messages\r\n1 120\r\n2 200\r\n3 40\r\n.\r\n"
                Do(Input.Submit(5L, Request.Uidl None))
                Server "+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n3 c-3\r\n.\r\n"
                Do(Input.Submit(6L, Request.Retr 1UL))
                Server trickyBody
                Do(Input.Submit(7L, Request.Top(2UL, 1UL)))
                Server "+OK top follows\r\nSubject: y\r\n\r\nfirst\r\n.\r\n"
                Do(Input.Submit(8L, Request.Uidl(Some 2UL)))
                Server "+OK 2 QhdPYR:00WBw1Ph7x7\r\n"
                Do(Input.Submit(9L, Request.Dele 1UL))
                Server "+OK message 1 deleted\r\n"
                Do(Input.Submit(10L, Request.List(Some 2UL)))
                Server "+OK 2 200\r\n"
                Do(Input.Submit(11L, Request.Retr 3UL))
                Server "-ERR [SYS/TEMP] try later\r\n"
                Do(Input.Submit(12L, Request.Quit))
                Server "+OK dewey POP3 server signing off\r\n"
            ]
    }

let private pipelinedSession =
    {
        Name = "a pipelined session"
        Options = plain
        Steps =
            login capaPipelining
            @ [
                Do(Input.Submit(3L, Request.Retr 1UL))
                Do(Input.Submit(4L, Request.Retr 2UL))
                Do(Input.Submit(5L, Request.Top(3UL, 0UL)))
                Do(Input.Submit(6L, Request.List None))
                Do(Input.Submit(7L, Request.Uidl(Some 2UL)))
                Do(Input.Submit(8L, Request.Dele 3UL))
                Do(Input.Submit(9L, Request.Noop))
                Do(Input.Submit(10L, Request.Quit))
                Server trickyBody
                Server "+OK\r\n.\r\n"
                Server "+OK\r\nSubject: z\r\n.\r\n"
                Server "+OK\r\n1 120\r\n2 200\r\n3 40\r\n.\r\n"
                Server "+OK 2 uid-2\r\n"
                Server "+OK deleted\r\n"
                Server "+OK\r\n"
                // QUIT goes out only after every earlier reply has arrived (DESIGN §9).
                Sync
                Server "+OK bye\r\n"
            ]
    }

let private saslSession =
    {
        Name = "a SASL exchange"
        Options = plain
        Steps =
            [
                Server "+OK POP3 ready\r\n"
                Sync
                Server capaPipelining
                Do(Input.Submit(1L, Request.Auth("LOGIN", None)))
                Server "+ VXNlcm5hbWU6\r\n"
                Do(Input.SaslRespond(Secret.FromString "bob"))
                Server "+ UGFzc3dvcmQ6\r\n"
                Do(Input.SaslRespond(Secret.FromString "pw"))
                Server "+OK welcome\r\n"
                Sync
                Server capaPipelining
                Server "+OK 0 0\r\n"
                Do(Input.Submit(2L, Request.Quit))
                Server "+OK bye\r\n"
            ]
    }

let private badStatusMidStream =
    {
        Name = "a bad status line mid-stream"
        Options = plain
        Steps =
            login capa
            @ [
                Do(Input.Submit(3L, Request.List None))
                Server "+OK\r\n1 120\r\n2 200\r\n3 40\r\n.\r\n"
                Do(Input.Submit(4L, Request.Noop))
                Server "HTTP/1.1 200 OK\r\n"
                Do(Input.Submit(5L, Request.Noop))
                Server "+OK\r\n"
            ]
    }

let private lineTooLong =
    {
        Name = "a status line over the limit"
        Options =
            { plain with
                Limits = { plain.Limits with MaxLineOctets = 64 }
            }
        Steps =
            login capa
            @ [
                Do(Input.Submit(3L, Request.Noop))
                Server("+OK " + String('x', 100) + "\r\n")
                Do(Input.Submit(4L, Request.Noop))
            ]
    }

let private closedMidBody =
    {
        Name = "the connection closed mid-body"
        Options = plain
        Steps =
            login capaPipelining
            @ [
                Do(Input.Submit(3L, Request.Retr 1UL))
                Do(Input.Submit(4L, Request.Retr 2UL))
                Server "+OK\r\nabc\r\n..def\r\n.\rghi"
                Do Input.EndOfStream
            ]
    }

let private successes = [ fullSession; pipelinedSession; saslSession ]
let private failures = [ badStatusMidStream; lineTooLong; closedMidBody ]
let private fixtures = successes @ failures

/// The server bytes of a fixture and, for every other input, the stream offset it comes at.
let private layout (f: Fixture) =
    let stream = StringBuilder()
    let inputs = ResizeArray<int * Input>()
    let boundaries = ResizeArray<int>()
    let syncs = ResizeArray<int>()

    for step in f.Steps do
        match step with
        | Server text ->
            stream.Append text |> ignore
            boundaries.Add stream.Length
        | Do input -> inputs.Add(stream.Length, input)
        | Sync -> syncs.Add stream.Length

    latin1 (stream.ToString()), List.ofSeq inputs, List.ofSeq boundaries, List.ofSeq syncs

/// Feeds the fixture with the server bytes cut at the given positions (and wherever an input
/// comes); each chunk is a fresh array, so body slices stay valid and are normalised at the end.
let private runCut (f: Fixture) (cuts: int seq) =
    let stream, inputs, _, syncs = layout f
    let inputOffsets = inputs |> List.map fst

    let points =
        Seq.concat [ cuts; inputOffsets; syncs ]
        |> Seq.filter (fun p -> p > 0 && p < stream.Length)
        |> Seq.append [ 0; stream.Length ]
        |> Seq.distinct
        |> Seq.sort
        |> Array.ofSeq

    let mutable s = Session.create f.Options
    let all = ResizeArray<Output>()

    let step input =
        let struct (next, outs) = Session.step s input
        s <- next
        all.AddRange outs

    let mutable pending = inputs

    let inputsAt (offset: int) =
        while not pending.IsEmpty && fst pending.Head = offset do
            step (snd pending.Head)
            pending <- pending.Tail

    for i in 0 .. points.Length - 2 do
        inputsAt points[i]
        step (Input.Received(ReadOnlyMemory(Array.sub stream points[i] (points[i + 1] - points[i]))))

    inputsAt stream.Length
    s, normalize all

/// The reference: each reply fed whole, as its own chunk.
let private reference (f: Fixture) =
    let _, _, boundaries, _ = layout f
    runCut f boundaries

let private expectSame
    (f: Fixture)
    (expected: SessionState * Norm list)
    (actual: SessionState * Norm list)
    (how: string)
    =
    let s1, o1 = expected
    let s2, o2 = actual

    if o1 <> o2 then
        failtestf
            "%s, %s:\nexpected:\n%s\nactual:\n%s"
            f.Name
            how
            (render o1 |> String.concat "\n")
            (render o2 |> String.concat "\n")

    Expect.equal s2.Phase s1.Phase $"{f.Name}, {how}: final phase"

let private isFinal (e: Event) =
    match e with
    | Event.Answered(_, Reply.MessageFollows _) -> false
    | Event.Answered(id, _)
    | Event.BodyEnded(id, _)
    | Event.Rejected(id, _)
    | Event.Refused(id, _)
    | Event.Aborted(id, _) -> id > 0L
    | _ -> false

let private genCuts =
    gen {
        let! index = Gen.choose (0, fixtures.Length - 1)
        let stream, _, _, _ = layout fixtures[index]
        let! n = Gen.choose (1, 40)
        let! cuts = Gen.listOfLength n (Gen.choose (1, stream.Length - 1))
        return index, cuts
    }

[<Tests>]
let tests =
    testList
        "ChunkingTests"
        [
            testCase "the fixtures are small enough for every-byte splits (≤ 4 KiB)"
            <| fun () ->
                for f in fixtures do
                    let stream, _, _, _ = layout f
                    Expect.isLessThanOrEqual stream.Length 4096 f.Name

            testCase "the reference runs do what the fixtures say"
            <| fun () ->
                for f in successes do
                    let s, outs = reference f
                    Expect.equal s.Phase.Kind PhaseKind.Closed $"{f.Name} ends closed: %A{render outs}"

                    Expect.isFalse
                        (events outs
                         |> List.exists (function
                             | Event.Failed _ -> true
                             | _ -> false))
                        $"{f.Name}: no failure"

                for f in failures do
                    let s, _ = reference f
                    Expect.equal s.Phase.Kind PhaseKind.Failed $"{f.Name} ends failed"

                let _, outs = reference fullSession

                let body =
                    outs
                    |> List.pick (function
                        | NBody(6L, t) -> Some t
                        | _ -> None)

                Expect.equal
                    body
                    "Subject: x\r\n\r\n.leading dot\r\n.\r\n..\r\nbare\rCR and NUL \000 here\r\n.\rx\r\n\r\nend\r\n"
                    "the tricky body, unstuffed (RFC 1939 §3)"

                let _, outs = reference closedMidBody

                match
                    events outs
                    |> List.tryPick (function
                        | Event.Failed(Pop3Error.Protocol e) -> Some e
                        | _ -> None)
                with
                | Some e -> Expect.stringContains e.Message "after 15 octets" "octets before the close"
                | None -> failtest "closed mid-body fails"

            for f in fixtures do
                testCase $"{f.Name}: every two-chunk split gives the same outputs"
                <| fun () ->
                    let expected = reference f
                    let stream, _, _, _ = layout f

                    for cut in 1 .. stream.Length - 1 do
                        expectSame f expected (runCut f [ cut ]) $"split at {cut}"

                testCase $"{f.Name}: one byte at a time gives the same outputs"
                <| fun () ->
                    let stream, _, _, _ = layout f
                    expectSame f (reference f) (runCut f [ 1 .. stream.Length - 1 ]) "one byte at a time"

                testCase
                    $"{f.Name}: everything at once (cut only at inputs and causal boundaries) gives the same outputs"
                <| fun () -> expectSame f (reference f) (runCut f []) "one chunk between inputs"

            testCase "every strict prefix of a reply leaves its request pending and is consumed without error"
            <| fun () ->
                for f in successes do
                    let steps = Array.ofList f.Steps

                    for i in 0 .. steps.Length - 1 do
                        match steps[i] with
                        | Server reply ->
                            let before =
                                steps[.. i - 1]
                                |> Array.fold
                                    (fun s step ->
                                        match step with
                                        | Server t ->
                                            let struct (next, _) = Session.step s (received t)
                                            next
                                        | Do input ->
                                            let struct (next, _) = Session.step s input
                                            next
                                        | Sync -> s)
                                    (Session.create f.Options)

                            for len in 1 .. reply.Length - 1 do
                                let after, outs = stepN before (received (reply.Substring(0, len)))
                                let what = $"{f.Name}, reply {i}, first {len} octets"
                                Expect.notEqual after.Phase.Kind PhaseKind.Failed what
                                Expect.isFalse (events outs |> List.exists isFinal) $"{what}: no final event"
                                Expect.isFalse (outs |> List.contains NClose) $"{what}: no Close"
                        | Do _
                        | Sync -> ()

            testPropertyWithConfig
                { FsCheckConfig.defaultConfig with
                    maxTest = 500
                }
                "random multi-splits give the same outputs as whole replies"
            <| Prop.forAll (Arb.fromGen genCuts) (fun (index, cuts) ->
                let f = fixtures[index]
                let expected = reference f
                let actual = runCut f cuts
                expectSame f expected actual $"cuts %A{List.sort cuts}"
                true)
        ]
