/// Model-based tests: random request sequences against an honest in-test server, every outcome
/// checked against a reference model of a POP3 session (RFC 1939 §3–§7, DESIGN §3).
module Pop3Functional.Core.Tests.ModelTests

open System
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

// ----- the mailbox ------------------------------------------------------------------------

type Message =
    {
        /// The whole message as RETR delivers it: CRLF line ends, not stuffed.
        Text: string
        HeaderLines: string list
        BodyLines: string list
        Uid: string
    }

    member m.Size = m.Text.Length

let private makeMessage (header: string list) (body: string list) (uid: string) =
    let lines = header @ [ "" ] @ body

    {
        Text = lines |> List.map (fun l -> l + "\r\n") |> String.concat ""
        HeaderLines = header
        BodyLines = body
        Uid = uid
    }

/// TOP n m: the header, the blank line and the first m body lines (RFC 1939 §7).
let private topOf (m: Message) (lines: int) =
    (m.HeaderLines @ [ "" ] @ List.truncate lines m.BodyLines)
    |> List.map (fun l -> l + "\r\n")
    |> String.concat ""

/// RFC 1939 §3: a line starting with "." gets another "."; the reply ends with ".CRLF".
let private stuffed (text: string) =
    let sb = StringBuilder()

    for line in text.Split("\r\n") |> Array.take (text.Split("\r\n").Length - 1) do
        if line.StartsWith "." then
            sb.Append('.') |> ignore

        sb.Append(line).Append("\r\n") |> ignore

    sb.Append(".\r\n").ToString()

// ----- an honest server ------------------------------------------------------------------

type private ServerPhase =
    | SAuth
    | SUserOk
    | STrans
    | SClosed

/// Answers each command line correctly, in order, for a fixed mailbox (RFC 1939).
type private HonestServer(messages: Message[], pipelining: bool) =
    let mutable phase = SAuth
    let mutable deleted = Set.empty<int>
    let mutable committed: int list option = None

    member _.Committed = committed

    member _.Handle(line: string) : string =
        let parts = line.Split ' '

        let live () =
            [ 1 .. messages.Length ] |> List.filter (fun n -> not (deleted.Contains n))

        let msg (s: string) (f: int -> string) =
            match Int32.TryParse s with
            | true, n when n >= 1 && n <= messages.Length && not (deleted.Contains n) -> f n
            | _ -> "-ERR no such message\r\n"

        match phase, parts with
        | _, [| "CAPA" |] ->
            "+OK capability list follows\r\nUSER\r\nTOP\r\nUIDL\r\n"
            + (if pipelining then "PIPELINING\r\n" else "")
            + ".\r\n"
        | SAuth, [| "USER"; _ |] ->
            phase <- SUserOk
            "+OK send PASS\r\n"
        | SUserOk, [| "PASS"; _ |] ->
            phase <- STrans
            "+OK welcome\r\n"
        | (SAuth | SUserOk), [| "QUIT" |] ->
            phase <- SClosed
            "+OK bye\r\n"
        | STrans, [| "QUIT" |] ->
            phase <- SClosed
            committed <- Some(Set.toList deleted)
            "+OK bye\r\n"
        | STrans, [| "STAT" |] ->
            let l = live ()
            $"+OK {l.Length} {l |> List.sumBy (fun n -> messages[n - 1].Size)}\r\n"
        | STrans, [| "LIST" |] ->
            "+OK scan listing follows\r\n"
            + (live ()
               |> List.map (fun n -> $"{n} {messages[n - 1].Size}\r\n")
               |> String.concat "")
            + ".\r\n"
        | STrans, [| "LIST"; n |] -> msg n (fun n -> $"+OK {n} {messages[n - 1].Size}\r\n")
        | STrans, [| "UIDL" |] ->
            "+OK unique-id listing follows\r\n"
            + (live ()
               |> List.map (fun n -> $"{n} {messages[n - 1].Uid}\r\n")
               |> String.concat "")
            + ".\r\n"
        | STrans, [| "UIDL"; n |] -> msg n (fun n -> $"+OK {n} {messages[n - 1].Uid}\r\n")
        | STrans, [| "RETR"; n |] ->
            msg n (fun n -> $"+OK {messages[n - 1].Size} octets\r\n" + stuffed messages[n - 1].Text)
        | STrans, [| "TOP"; n; lines |] ->
            msg n (fun n -> "+OK top of message follows\r\n" + stuffed (topOf messages[n - 1] (int lines)))
        | STrans, [| "DELE"; n |] ->
            msg n (fun n ->
                deleted <- deleted.Add n
                $"+OK message {n} deleted\r\n")
        | STrans, [| "NOOP" |] -> "+OK fine\r\n"
        | STrans, [| "RSET" |] ->
            deleted <- Set.empty
            "+OK maildrop reset\r\n"
        | _ -> "-ERR not now\r\n"

// ----- the reference model --------------------------------------------------------------

type private ModelPhase =
    | MAuth
    | MAwaitingUser
    | MAwaitingPass
    | MAwaitingLogin
    | MTrans of marks: Set<int>
    | MAwaitingQuit
    | MClosed

/// What the model says must happen to one request.
type private Expected =
    | ExpectRefused of UsageErrorKind
    | ExpectReply of Reply
    | ExpectBody of string

let private ok text : StatusLine =
    {
        IsOk = true
        Code = None
        Text = text
    }

let private phaseKindOf (m: ModelPhase) =
    match m with
    | MAuth -> PhaseKind.Authorization
    | MAwaitingUser -> PhaseKind.AwaitingUserReply
    | MAwaitingPass -> PhaseKind.AwaitingPass
    | MAwaitingLogin -> PhaseKind.AwaitingLoginReply
    | MTrans _ -> PhaseKind.Transaction
    | MAwaitingQuit -> PhaseKind.AwaitingQuitReply
    | MClosed -> PhaseKind.Closed

/// The model's step for a submitted request: the expected outcome and the next model phase.
let private modelSubmit (messages: Message[]) (phase: ModelPhase) (request: Request) =
    let count = messages.Length

    let uid n =
        (MessageUid.TryCreate messages[n - 1].Uid).Value

    if not (Transitions.allows (phaseKindOf phase) request.Keyword) then
        ExpectRefused UsageErrorKind.WrongState, phase, None
    else
        match phase, request with
        | MAuth, Request.User _ -> ExpectReply(Reply.Ok(ok "send PASS")), MAwaitingUser, None
        | MAwaitingPass, Request.Pass _ ->
            let snapshot =
                {
                    Count = uint64 count
                    Octets = messages |> Array.sumBy (fun m -> uint64 m.Size)
                    Deleted = Set.empty
                    Confirmed = Set.empty
                }

            ExpectReply(Reply.LoggedIn(ok "welcome", snapshot)), MAwaitingLogin, None
        | (MAuth | MAwaitingPass), Request.Quit ->
            ExpectReply(
                Reply.Quit
                    {
                        Text = "bye"
                        UpdateCompleted = false
                        DeletionsCommitted = []
                    }
            ),
            MAwaitingQuit,
            None
        | MTrans marks, _ ->
            let live = [ 1..count ] |> List.filter (fun n -> not (marks.Contains n))

            let checkNumber (n: uint64) =
                if n = 0UL || n > uint64 count then
                    Some UsageErrorKind.NoSuchMessage
                elif marks.Contains(int n) then
                    Some UsageErrorKind.MessageDeleted
                else
                    None

            let numbered (n: uint64) (onValid: int -> Expected * ModelPhase) =
                match checkNumber n with
                | Some kind -> ExpectRefused kind, phase, None
                | None ->
                    let e, p = onValid (int n)
                    e, p, None

            match request with
            | Request.Stat ->
                ExpectReply(
                    Reply.Stat
                        {
                            Count = uint64 live.Length
                            Octets = live |> List.sumBy (fun n -> uint64 messages[n - 1].Size)
                        }
                ),
                phase,
                None
            | Request.List None ->
                ExpectReply(
                    Reply.Listing
                        [
                            for n in live ->
                                {
                                    Number = uint64 n
                                    Octets = uint64 messages[n - 1].Size
                                }
                        ]
                ),
                phase,
                None
            | Request.List(Some n) ->
                numbered n (fun n ->
                    ExpectReply(
                        Reply.ListEntry
                            {
                                Number = uint64 n
                                Octets = uint64 messages[n - 1].Size
                            }
                    ),
                    phase)
            | Request.Uidl None ->
                ExpectReply(Reply.UidListing [ for n in live -> { Number = uint64 n; Uid = uid n } ]), phase, None
            | Request.Uidl(Some n) ->
                numbered n (fun n -> ExpectReply(Reply.UidEntry { Number = uint64 n; Uid = uid n }), phase)
            | Request.Retr n -> numbered n (fun n -> ExpectBody messages[n - 1].Text, phase)
            | Request.Top(n, lines) -> numbered n (fun n -> ExpectBody(topOf messages[n - 1] (int lines)), phase)
            | Request.Dele n ->
                numbered n (fun n -> ExpectReply(Reply.Ok(ok $"message {n} deleted")), MTrans(marks.Add n))
            | Request.Noop -> ExpectReply(Reply.Ok(ok "fine")), phase, None
            | Request.Rset -> ExpectReply(Reply.Reset(ok "maildrop reset")), MTrans Set.empty, None
            | Request.Quit ->
                let committed = Set.toList marks |> List.map uint64

                ExpectReply(
                    Reply.Quit
                        {
                            Text = "bye"
                            UpdateCompleted = true
                            DeletionsCommitted = committed
                        }
                ),
                MAwaitingQuit,
                Some(Set.toList marks)
            | other -> failwithf "model: unexpected request %A" other
        | _, other -> failwithf "model: %A allowed in %A" other phase

/// Replies arrived for everything in flight: awaited answers resolve (the server is honest).
let private modelDeliver (phase: ModelPhase) =
    match phase with
    | MAwaitingUser -> MAwaitingPass
    | MAwaitingLogin -> MTrans Set.empty
    | MAwaitingQuit -> MClosed
    | other -> other

// ----- random scenarios --------------------------------------------------------------------

type private Action =
    | Submit of Request
    | Deliver

type private Scenario =
    {
        Messages: Message[]
        Actions: Action list
        /// Server bytes are fed in chunks of this size.
        ChunkSize: int
        /// Options.Strict (no quirk tolerated, 512-octet lines) instead of the defaults: an honest
        /// server needs no tolerance.
        Strict: bool
    }

let private genLine =
    gen {
        let! dot =
            Gen.frequency [ 3, Gen.constant ""; 1, Gen.constant "."; 1, Gen.constant ".." ]

        let! len = Gen.choose (0, 12)

        let! chars =
            Gen.arrayOfLength len (Gen.elements [ 'a'; 'b'; 'z'; '.'; ' '; '-'; ':'; '1' ])

        return dot + String(chars)
    }

let private genUidPrefix =
    gen {
        let! len = Gen.choose (0, 8)
        let! chars = Gen.arrayOfLength len (Gen.choose (0x21, 0x7E) |> Gen.map char)
        return String(chars)
    }

let private genMessage (index: int) =
    gen {
        let! subject = genLine
        let! bodyCount = Gen.choose (0, 6)
        let! body = Gen.listOfLength bodyCount genLine
        let! prefix = genUidPrefix
        // The index keeps UIDs unique, as RFC 1939 §7 requires of an honest server.
        return makeMessage [ "Subject: " + subject; "X-N: " + string index ] body (prefix + "-" + string index)
    }

let private genRequest (count: int) =
    let number = Gen.choose (0, count + 2) |> Gen.map uint64

    Gen.frequency
        [
            2, Gen.constant (Request.User "bob")
            2, Gen.constant (Request.Pass(Secret.FromString "secret"))
            3, Gen.constant Request.Stat
            2, Gen.constant (Request.List None)
            3, number |> Gen.map (Some >> Request.List)
            2, Gen.constant (Request.Uidl None)
            3, number |> Gen.map (Some >> Request.Uidl)
            6, number |> Gen.map Request.Retr
            4, Gen.map2 (fun n l -> Request.Top(n, uint64 l)) number (Gen.choose (0, 4))
            5, number |> Gen.map Request.Dele
            2, Gen.constant Request.Noop
            2, Gen.constant Request.Rset
            1, Gen.constant Request.Quit
        ]

let private genScenario =
    gen {
        let! count = Gen.choose (0, 8)
        let! messages = [ 1..count ] |> List.map genMessage |> Gen.sequenceToList
        let! login = Gen.frequency [ 6, Gen.constant true; 1, Gen.constant false ]
        let! n = Gen.choose (0, 28)

        let! actions =
            Gen.listOfLength n (Gen.frequency [ 7, genRequest count |> Gen.map Submit; 3, Gen.constant Deliver ])

        let! chunk = Gen.elements [ 1; 2; 5; 17; 100_000 ]
        // Half the runs end with QUIT, so that commits are checked often (RFC 1939 §6).
        let! quit = Gen.elements [ []; [ Submit Request.Quit ] ]
        let! strict = Gen.elements [ false; true ]

        let prefix =
            if login then
                [
                    Submit(Request.User "bob")
                    Deliver
                    Submit(Request.Pass(Secret.FromString "secret"))
                    Deliver
                ]
            else
                []

        return
            {
                Messages = Array.ofList messages
                Actions = prefix @ actions @ quit
                ChunkSize = chunk
                Strict = strict
            }
    }

// ----- the driver and the checker -----------------------------------------------------------

let private isFinalFor (id: RequestId) (e: Event) =
    match e with
    | Event.Answered(i, Reply.MessageFollows _) -> false
    | Event.Answered(i, _)
    | Event.BodyEnded(i, _)
    | Event.Rejected(i, _)
    | Event.Refused(i, _)
    | Event.Aborted(i, _) -> i = id
    | _ -> false

/// Drives a session against the honest server and checks every request against the model.
/// Returns None when all is well, or a description of the first disagreement.
let private check (pipelining: bool) (scenario: Scenario) : string option =
    let server = HonestServer(scenario.Messages, pipelining)
    let outs = ResizeArray<Norm>()
    let unanswered = ResizeArray<byte>()

    let options =
        if scenario.Strict then
            { Options.Strict with
                Tls = TlsMode.NoTls
                AllowPlaintextCredentials = true
            }
        else
            plain

    let mutable s = Session.create options

    let stepIn (input: Input) =
        let struct (next, o) = Session.step s input
        s <- next

        for n in normalize o do
            outs.Add n

            match n with
            | NSend line -> unanswered.AddRange(Encoding.Latin1.GetBytes(server.Handle(line.TrimEnd('\r', '\n'))))
            | _ -> ()

    /// Feeds every reply the server owes, in order and in chunks, until nothing more is sent.
    let deliver () =
        while unanswered.Count > 0 do
            let batch = unanswered.ToArray()
            unanswered.Clear()
            let mutable at = 0

            while at < batch.Length do
                let len = min scenario.ChunkSize (batch.Length - at)
                stepIn (Input.Received(ReadOnlyMemory(Array.sub batch at len)))
                at <- at + len

    stepIn (received "+OK POP3 server ready\r\n")
    deliver ()

    let expected = ResizeArray<RequestId * Request * Expected>()
    let mutable model = MAuth
    let mutable modelCommitted: int list option = None
    let mutable nextId = 1L

    for action in scenario.Actions @ [ Deliver ] do
        match action with
        | Deliver ->
            deliver ()
            model <- modelDeliver model
        | Submit request ->
            let e, next, committed = modelSubmit scenario.Messages model request
            expected.Add(nextId, request, e)
            model <- next

            if committed.IsSome then
                modelCommitted <- committed

            stepIn (Input.Submit(nextId, request))
            nextId <- nextId + 1L

    let evs =
        outs
        |> Seq.choose (function
            | NEvent e -> Some e
            | _ -> None)
        |> List.ofSeq

    let problems =
        [
            for e in evs do
                match e with
                | Event.Failed err -> yield $"the session failed: {err.Message}"
                | Event.QuirkTolerated q -> yield $"a quirk was reported against an honest server: {q.Name}"
                | _ -> ()

            for id, request, e in expected do
                let finals = evs |> List.filter (isFinalFor id)
                let what = $"request {id} ({request.Keyword})"

                match finals, e with
                | [ Event.Refused(_, err) ], ExpectRefused kind when err.Kind = kind -> ()
                | [ Event.Answered(_, reply) ], ExpectReply r when reply = r -> ()
                | [ Event.BodyEnded(_, octets) ], ExpectBody body ->
                    let data =
                        outs
                        |> Seq.choose (function
                            | NBody(i, t) when i = id -> Some t
                            | _ -> None)
                        |> String.concat ""

                    let follows =
                        evs
                        |> List.exists (function
                            | Event.Answered(i, Reply.MessageFollows _) -> i = id
                            | _ -> false)

                    if not follows then
                        yield $"{what}: no MessageFollows"

                    if data <> body then
                        yield $"{what}: body %A{data}, expected %A{body}"

                    if octets <> uint64 body.Length then
                        yield $"{what}: BodyEnded {octets}, expected {body.Length}"
                | _ -> yield $"{what}: got %A{finals}, expected %A{e}"

            if server.Committed <> modelCommitted then
                yield $"server committed %A{server.Committed}, model %A{modelCommitted}"

            if s.Phase.Kind <> phaseKindOf model then
                yield $"session ended {s.Phase.Kind}, model {model}"
        ]

    match problems with
    | [] -> None
    | ps ->
        let transcript = render (List.ofSeq outs) |> String.concat "\n"
        Some(String.concat "\n" ps + "\n--- transcript ---\n" + transcript)

let private property (pipelining: bool) =
    Prop.forAll (Arb.fromGen genScenario) (fun scenario ->
        match check pipelining scenario with
        | None -> true
        | Some problem -> failwith problem)

[<Tests>]
let tests =
    testList
        "ModelTests"
        [
            testCase "the honest server stuffs and terminates bodies (RFC 1939 §3)"
            <| fun () ->
                Expect.equal (stuffed ".a\r\nb\r\n.\r\n") "..a\r\nb\r\n..\r\n.\r\n" "stuffed"
                Expect.equal (stuffed "") ".\r\n" "empty body"

            testCase
                "a scripted scenario with dot lines, deletions and QUIT agrees with the model, lock-step and pipelined"
            <| fun () ->
                let messages =
                    [|
                        makeMessage [ "Subject: a" ] [ ".hidden"; "."; "end" ] "uid-1"
                        makeMessage [ "Subject: b" ] [] "uid-2"
                        makeMessage [ "Subject: c" ] [ "x"; "y" ] "uid-3"
                    |]

                let scenario =
                    {
                        Messages = messages
                        ChunkSize = 3
                        Strict = true
                        Actions =
                            [
                                Submit(Request.Retr 1UL)
                                Submit(Request.User "bob")
                                Deliver
                                Submit(Request.Pass(Secret.FromString "pw"))
                                Deliver
                                Submit(Request.Retr 1UL)
                                Submit(Request.Dele 1UL)
                                Submit(Request.Retr 1UL)
                                Submit(Request.List None)
                                Submit(Request.Top(3UL, 1UL))
                                Submit(Request.Rset)
                                Submit(Request.Dele 3UL)
                                Submit(Request.Dele 2UL)
                                Submit(Request.Stat)
                                Submit(Request.Uidl None)
                                Submit(Request.Retr 4UL)
                                Submit(Request.Quit)
                                Submit(Request.Noop)
                            ]
                    }

                for pipelining in [ false; true ] do
                    match check pipelining scenario with
                    | None -> ()
                    | Some problem -> failtestf "pipelining=%b:\n%s" pipelining problem

            testPropertyWithConfig
                { FsCheckConfig.defaultConfig with
                    maxTest = 1000
                }
                "random sessions agree with the model (lock-step)"
            <| property false

            testPropertyWithConfig
                { FsCheckConfig.defaultConfig with
                    maxTest = 1000
                }
                "random sessions agree with the model (PIPELINING advertised)"
            <| property true
        ]
