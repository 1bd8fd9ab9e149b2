module Pop3Functional.Core.Tests.TransitionsTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open Microsoft.FSharp.Reflection
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

let private allKinds: PhaseKind list =
    FSharpType.GetUnionCases typeof<PhaseKind>
    |> Array.map (fun case -> FSharpValue.MakeUnion(case, [||]) :?> PhaseKind)
    |> List.ofArray

let private terminal = [ PhaseKind.Closed; PhaseKind.Failed ]
let private liveKinds = allKinds |> List.except terminal

let private reachable () =
    let rec go (seen: Set<PhaseKind>) (frontier: PhaseKind list) =
        match frontier with
        | [] -> seen
        | k :: rest ->
            let next =
                Transitions.table
                |> List.filter (fun t -> t.From = k && not (seen.Contains t.To))
                |> List.map _.To
                |> List.distinct

            go (Set.union seen (Set.ofList next)) (rest @ next)

    go (Set.singleton PhaseKind.AwaitingGreeting) [ PhaseKind.AwaitingGreeting ]

let private everyKeyword =
    [
        "USER"
        "PASS"
        "APOP"
        "RPOP"
        "STAT"
        "LIST"
        "RETR"
        "DELE"
        "NOOP"
        "RSET"
        "QUIT"
        "TOP"
        "UIDL"
        "CAPA"
        "STLS"
        "UTF8"
        "LANG"
        "AUTH"
        // Every extension command (RFC 2449 §8) is one row of the table.
        "extension"
    ]

/// RFC 1939 §3–§7, RFC 2595 §4, RFC 5034 §4, RFC 6856 §2: where a caller may submit each command.
let private rfcAllowed: (string * PhaseKind list) list =
    let transaction = [ PhaseKind.Transaction ]

    [
        "RETR", transaction
        "DELE", transaction
        "LIST", transaction
        "STAT", transaction
        "TOP", transaction
        "UIDL", transaction
        "NOOP", transaction
        "RSET", transaction
        "USER", [ PhaseKind.Authorization ]
        "APOP", [ PhaseKind.Authorization ]
        "AUTH", [ PhaseKind.Authorization ]
        "STLS", [ PhaseKind.Authorization ]
        "UTF8", [ PhaseKind.Authorization ]
        "PASS", [ PhaseKind.AwaitingPass ]
        "RPOP", [ PhaseKind.AwaitingPass ]
        "QUIT", [ PhaseKind.Authorization; PhaseKind.AwaitingPass; PhaseKind.Transaction ]
        "extension", [ PhaseKind.Authorization; PhaseKind.Transaction ]
    ]

// ----- random sessions: the session must only make moves that the table has ------------------

/// Server lines and caller inputs that a random session is built from.
let private serverPieces =
    [|
        "+OK POP3 ready <1.2@host>\r\n"
        "+OK\r\n"
        "+OK fine\r\n"
        "-ERR no\r\n"
        "-ERR [AUTH] bad\r\n"
        "+OK\r\nUSER\r\nPIPELINING\r\nTOP\r\nUIDL\r\nSTLS\r\nUTF8\r\nLANG\r\nSASL PLAIN\r\n.\r\n"
        "+OK\r\nUSER\r\n.\r\n"
        "+OK 2 200\r\n"
        "+OK 1 100\r\n"
        "+OK 1 abc\r\n"
        "1 100\r\n2 100\r\n.\r\n"
        "1 abc\r\n2 def\r\n.\r\n"
        "Subject: x\r\n\r\n..dot\r\n"
        ".\r\n"
        "+ \r\n"
        "+ dGVzdA==\r\n"
        "+ not base64!\r\n"
        "en English\r\n"
        "garbage\r\n"
        "+OK 2 20"
    |]

let private requests =
    [|
        Request.User "bob"
        Request.Pass(Secret.FromString "pw")
        Request.Apop("bob", Secret.FromString "pw")
        Request.Rpop "bob"
        Request.Stat
        Request.List None
        Request.List(Some 1UL)
        Request.Retr 1UL
        Request.Retr 2UL
        Request.Dele 1UL
        Request.Dele 2UL
        Request.Noop
        Request.Rset
        Request.Quit
        Request.Top(1UL, 0UL)
        Request.Uidl None
        Request.Uidl(Some 2UL)
        Request.Capa
        Request.Stls
        Request.Utf8
        Request.Lang None
        Request.Lang(Some "en")
        Request.Auth("PLAIN", Some(Secret.FromString "\000bob\000pw"))
        Request.Auth("CRAM-MD5", None)
    |]

type private RandomInput =
    | Piece of int
    | Ask of int * int64
    | Respond
    | Cancel
    | Tls
    | Eof
    | WriteFail

let private genRandomInput =
    Gen.frequency
        [
            10, Gen.choose (0, serverPieces.Length - 1) |> Gen.map Piece
            8, Gen.map2 (fun i id -> Ask(i, int64 id)) (Gen.choose (0, requests.Length - 1)) (Gen.choose (1, 12))
            1, Gen.constant Respond
            1, Gen.constant Cancel
            1, Gen.constant Tls
            1, Gen.constant WriteFail
            1, Gen.constant Eof
        ]

let private toInput (r: RandomInput) =
    match r with
    | Piece i -> received serverPieces[i]
    | Ask(i, id) -> Input.Submit(id, requests[i])
    | Respond -> Input.SaslRespond(Secret.FromString "answer")
    | Cancel -> Input.SaslCancel
    | Tls -> Input.TlsEstablished None
    | Eof -> Input.EndOfStream
    | WriteFail ->
        Input.WriteFailed
            {
                Operation = "write"
                Endpoint = ""
                Message = "reset"
                Exception = None
            }

let private optionsFor (i: int) =
    match i % 4 with
    | 0 -> plain
    | 1 -> Options.Default
    | 2 ->
        { plain with
            Tls = TlsMode.StartTlsRequired
        }
    | _ ->
        { Options.Strict with
            Tls = TlsMode.NoTls
            AllowPlaintextCredentials = true
        }

/// A prefix that gets a session logged in, so that random inputs also explore the transaction state.
let private loginPrefix =
    [ Piece 0; Piece 5; Ask(0, 1L); Piece 1; Ask(1, 2L); Piece 1; Piece 5; Piece 7 ]

let private genSession =
    gen {
        let! opts = Gen.choose (0, 3)
        let! withLogin = Gen.elements [ true; false ]
        let! n = Gen.choose (0, 40)
        let! rest = Gen.listOfLength n genRandomInput
        return opts, (if withLogin then loginPrefix @ rest else Piece 0 :: rest)
    }

/// Runs random inputs, checking each phase change against the table; returns the first problem.
let private checkRandomSession (opts: int, inputs: RandomInput list) =
    let mutable s = Session.create (optionsFor opts)
    let mutable problem = None

    for r in inputs do
        if problem.IsNone then
            try
                let before = s.Phase.Kind
                let struct (next, _) = Session.step s (toInput r)
                let after = next.Phase.Kind

                if
                    before <> after
                    && not (Transitions.table |> List.exists (fun t -> t.From = before && t.To = after))
                then
                    problem <- Some $"phase changed {before} -> {after} on {r}, a move the table lacks"

                s <- next
            with ex ->
                problem <- Some $"{ex.GetType().Name} on {r}: {ex.Message}"

    problem

[<Tests>]
let tests =
    testList
        "TransitionsTests"
        [
            testCase "every state but AwaitingGreeting is reachable from AwaitingGreeting"
            <| fun () ->
                let seen = reachable ()

                for k in allKinds do
                    Expect.isTrue (seen.Contains k) $"{k} is reachable"

            testCase "AwaitingGreeting is the only start: no row leads back into it"
            <| fun () ->
                let into =
                    Transitions.table |> List.filter (fun t -> t.To = PhaseKind.AwaitingGreeting)

                Expect.isEmpty into "no transition targets AwaitingGreeting"

            testCase "every live state has an EndOfStream row to Failed"
            <| fun () ->
                for k in liveKinds do
                    Expect.isTrue
                        (Transitions.has k Trigger.EndOfStream PhaseKind.Failed)
                        $"{k} --EndOfStream--> Failed"

            testCase "every live state has a Violation row to Failed"
            <| fun () ->
                for k in liveKinds do
                    Expect.isTrue (Transitions.has k Trigger.Violation PhaseKind.Failed) $"{k} --Violation--> Failed"

            testCase "Closed and Failed have no outgoing rows"
            <| fun () ->
                for k in terminal do
                    let out = Transitions.table |> List.filter (fun t -> t.From = k)
                    Expect.isEmpty out $"{k} is terminal"
                    Expect.isEmpty (Transitions.commandsIn k) $"no command allowed in {k}"

            testCase "no live state is a dead end: each has a row to another state"
            <| fun () ->
                for k in liveKinds do
                    let out = Transitions.table |> List.filter (fun t -> t.From = k && t.To <> k)
                    Expect.isNonEmpty out $"{k} can be left"

            testCase "Closed is reached only through the reply to QUIT (RFC 1939 §6)"
            <| fun () ->
                let into = Transitions.table |> List.filter (fun t -> t.To = PhaseKind.Closed)
                Expect.isNonEmpty into "some row closes"

                for t in into do
                    Expect.equal t.From PhaseKind.AwaitingQuitReply $"{t} leaves AwaitingQuitReply"

                    Expect.isTrue
                        (t.On = Trigger.Ok "QUIT" || t.On = Trigger.Err "QUIT")
                        $"{t} is triggered by the reply to QUIT"

            testCase "Transaction is entered only after the core's STAT fixed the snapshot (DESIGN §12)"
            <| fun () ->
                let into =
                    Transitions.table
                    |> List.filter (fun t -> t.To = PhaseKind.Transaction && t.From <> PhaseKind.Transaction)

                Expect.equal
                    (into |> List.map (fun t -> t.From, t.On))
                    [ PhaseKind.OpeningMailbox, Trigger.Ok "STAT" ]
                    "only +OK to STAT in OpeningMailbox"

            testCase "a trigger with several targets from one state says when each applies"
            <| fun () ->
                for (from, on), rows in Transitions.table |> List.groupBy (fun t -> t.From, t.On) do
                    let targets = rows |> List.map _.To |> List.distinct

                    if targets.Length > 1 then
                        for t in rows do
                            Expect.isNotEmpty t.When $"{from} --{on}--> {t.To} states its condition"

                        let conditions = rows |> List.map _.When

                        Expect.equal
                            (List.distinct conditions).Length
                            conditions.Length
                            $"{from} --{on}: distinct conditions"

            for keyword, states in rfcAllowed do
                testCase $"allows {keyword} exactly in {states} (RFC 1939, 2449, 2595, 5034, 6856)"
                <| fun () ->
                    for k in allKinds do
                        Expect.equal (Transitions.allows k keyword) (List.contains k states) $"allows {k} {keyword}"

            testCase "CAPA and LANG are allowed in Authorization and Transaction only (RFC 2449 §5, RFC 6856 §3)"
            <| fun () ->
                for keyword in [ "CAPA"; "LANG" ] do
                    for k in allKinds do
                        Expect.equal
                            (Transitions.allows k keyword)
                            (k = PhaseKind.Authorization || k = PhaseKind.Transaction)
                            $"allows {k} {keyword}"

            testCase "nothing may be submitted while a reply that changes the state is awaited"
            <| fun () ->
                for k in
                    [
                        PhaseKind.AwaitingGreeting
                        PhaseKind.AwaitingCapa
                        PhaseKind.AwaitingUserReply
                        PhaseKind.AwaitingStlsReply
                        PhaseKind.AwaitingTlsHandshake
                        PhaseKind.AwaitingLoginReply
                        PhaseKind.OpeningMailbox
                        PhaseKind.AwaitingQuitReply
                    ] do
                    for keyword in everyKeyword do
                        Expect.isFalse (Transitions.allows k keyword) $"{keyword} refused in {k}"

            testCase "commandsIn lists exactly the keywords allows accepts"
            <| fun () ->
                for k in allKinds do
                    let expected = everyKeyword |> List.filter (Transitions.allows k) |> Set.ofList
                    Expect.equal (Set.ofList (Transitions.commandsIn k)) expected $"commandsIn {k}"

            testCase "toMermaid mentions every reachable state"
            <| fun () ->
                let diagram = Transitions.toMermaid ()
                Expect.stringStarts diagram "stateDiagram-v2" "a Mermaid state diagram"

                for k in reachable () do
                    Expect.stringContains diagram (string k) $"{k} appears"

            testCase "toMermaid draws every state-changing row except the summarised failure rows"
            <| fun () ->
                let diagram = Transitions.toMermaid ()

                for t in Transitions.table do
                    if
                        t.From <> t.To
                        && not (
                            t.To = PhaseKind.Failed
                            && (t.On = Trigger.Violation || t.On = Trigger.EndOfStream)
                        )
                    then
                        Expect.stringContains diagram $"{t.From} --> {t.To}" $"edge {t.From} -> {t.To}"

            testCase "a refused command names the state and the commands allowed there"
            <| fun () ->
                let s = Session.create plain

                let _, outs =
                    runAll
                        s
                        [
                            received "+OK hi\r\n"
                            received "+OK\r\nUSER\r\n.\r\n"
                            Input.Submit(1L, Request.Retr 1UL)
                        ]

                match events outs |> List.last with
                | Event.Refused(1L, e) ->
                    Expect.equal e.Kind UsageErrorKind.WrongState "wrong state"

                    for k in Transitions.commandsIn PhaseKind.Authorization do
                        Expect.stringContains e.Message k $"{k} listed as allowed"
                | other -> failtestf "expected a refusal, got %A" other

            testPropertyWithConfig
                { FsCheckConfig.defaultConfig with
                    maxTest = 600
                }
                "random sessions only make moves the table has and never throw"
            <| Prop.forAll (Arb.fromGen genSession) (fun session ->
                match checkRandomSession session with
                | None -> true
                | Some problem -> failwith problem)
        ]
