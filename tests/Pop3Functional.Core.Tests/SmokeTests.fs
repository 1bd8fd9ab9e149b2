module Pop3Functional.Core.Tests.SmokeTests

open Expecto
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

[<Tests>]
let tests =
    testList
        "Smoke"
        [
            testCase "a whole plaintext session: login, STAT, LIST, RETR, DELE, QUIT"
            <| fun () ->
                let s0 = Session.create plain

                let s, outs =
                    runAll
                        s0
                        [
                            received "+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n"
                            received "+OK Capability list follows\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n"
                            Input.Submit(1L, Request.User "mrose")
                            received "+OK mrose is a real hoopy frood\r\n"
                            Input.Submit(2L, Request.Pass(Secret.FromString "secret"))
                            received "+OK mrose's maildrop has 2 messages (320 octets)\r\n"
                            received "+OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n"
                            received "+OK 2 320\r\n"
                            Input.Submit(3L, Request.List None)
                            received "+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n"
                            Input.Submit(4L, Request.Retr 1UL)
                            received "+OK 120 octets\r\nSubject: hi\r\n\r\n..dot line\r\nend\r\n.\r\n"
                            Input.Submit(5L, Request.Dele 1UL)
                            received "+OK message 1 deleted\r\n"
                            Input.Submit(6L, Request.Quit)
                            received "+OK dewey POP3 server signing off (maildrop empty)\r\n"
                        ]

                Expect.equal s.Phase.Kind PhaseKind.Closed (sprintf "closed after QUIT: %A" (render outs))

                Expect.equal
                    (sent outs)
                    [
                        "CAPA"
                        "USER mrose"
                        "PASS secret"
                        "CAPA"
                        "STAT"
                        "LIST"
                        "RETR 1"
                        "DELE 1"
                        "QUIT"
                    ]
                    "commands"

                let body =
                    outs
                    |> List.pick (function
                        | NBody(4L, t) -> Some t
                        | _ -> None)

                Expect.equal body "Subject: hi\r\n\r\n.dot line\r\nend\r\n" "body unstuffed"

                let quit =
                    events outs
                    |> List.pick (function
                        | Event.Answered(6L, Reply.Quit q) -> Some q
                        | _ -> None)

                Expect.equal quit.DeletionsCommitted [ 1UL ] "deletion committed"
        ]

/// The repository root, found from the test binary's folder.
let private repoRoot () =
    let rec up (dir: System.IO.DirectoryInfo) =
        if isNull dir then
            failwith "Pop3Functional.sln not found above the test binary"
        elif System.IO.File.Exists(System.IO.Path.Combine(dir.FullName, "Pop3Functional.sln")) then
            dir.FullName
        else
            up dir.Parent

    up (System.IO.DirectoryInfo System.AppContext.BaseDirectory)

[<Tests>]
let docs =
    testList
        "Docs"
        [
            testCase "docs/state-machine.md holds the diagram generated from the transition table"
            <| fun () ->
                let page =
                    System.IO.File.ReadAllText(System.IO.Path.Combine(repoRoot (), "docs", "state-machine.md"))

                let diagram = Transitions.toMermaid ()

                Expect.stringContains page (diagram.TrimEnd()) "regenerate with: dotnet run --project build -- docs"
        ]

[<Tests>]
let purity =
    testList
        "Purity"
        [
            testCase "the core's sources name no socket, task, clock, randomness, thread, file or console API"
            <| fun () ->
                let forbidden =
                    [
                        "System.Net"
                        "Socket"
                        "Task"
                        "Async"
                        "DateTime"
                        "Stopwatch"
                        "TimeProvider"
                        "Random"
                        "Thread"
                        "Console"
                        "System.IO.File"
                        "File."
                        "Environment."
                        "printf"
                    ]

                let dir = System.IO.Path.Combine(repoRoot (), "src", "Pop3Functional.Core")

                let hits =
                    [
                        for file in System.IO.Directory.GetFiles(dir, "*.fs") do
                            let lines = System.IO.File.ReadAllLines file

                            for i in 0 .. lines.Length - 1 do
                                let code = lines[i].Split("//")[0]

                                for word in forbidden do
                                    if code.Contains(word: string) then
                                        yield $"{System.IO.Path.GetFileName file}:{i + 1}: {word}"
                    ]

                Expect.isEmpty hits "the core must stay pure (DESIGN §3)"

            testCase "the core assembly references only the base library and FSharp.Core"
            <| fun () ->
                let references =
                    typeof<Pop3Machine>.Assembly.GetReferencedAssemblies()
                    |> Array.map _.Name
                    |> Array.filter (fun n -> not (n.StartsWith "System.") && n <> "netstandard" && n <> "mscorlib")

                Expect.equal (Array.sort references) [| "FSharp.Core" |] "no package but FSharp.Core"

            testCase "the core assembly references no networking, threading or file-system assembly"
            <| fun () ->
                let references =
                    typeof<Pop3Machine>.Assembly.GetReferencedAssemblies() |> Array.map _.Name

                for bad in
                    [
                        "System.Net.Sockets"
                        "System.Net.Primitives"
                        "System.Net.Security"
                        "System.Threading.Thread"
                        "System.Console"
                        "System.IO.FileSystem"
                    ] do
                    Expect.isFalse (Array.contains bad references) $"{bad} is referenced"
        ]

[<Tests>]
let rsetRefused =
    testCase "RSET refused with -ERR restores the deletion marks, so QUIT reports what the server still holds"
    <| fun () ->
        let s0 = loggedIn plain 3 false

        let _, outs =
            runAll
                s0
                [
                    Input.Submit(10L, Request.Dele 1UL)
                    received "+OK\r\n"
                    Input.Submit(11L, Request.Rset)
                    received "-ERR [SYS/TEMP] cannot reset now\r\n"
                    Input.Submit(12L, Request.Quit)
                    received "+OK bye\r\n"
                ]

        let quit =
            events outs
            |> List.pick (function
                | Event.Answered(12L, Reply.Quit q) -> Some q
                | _ -> None)

        Expect.equal quit.DeletionsCommitted [ 1UL ] "the server still had message 1 marked"
