/// Extension commands (RFC 2449 §8): the escape hatch for commands the core has no request for.
module Pop3Functional.Core.Tests.ExtensionTests

open Expecto
open FsCheck
open Pop3Functional.Core
open Pop3Functional.Core.Tests.Harness

let private answeredTo (id: RequestId) (outs: Norm list) =
    events outs
    |> List.tryPick (function
        | Event.Answered(i, r) when i = id -> Some r
        | _ -> None)

let private refusedKind (s: SessionState) (request: Request) =
    let struct (after, outputs) = Session.step s (Input.Submit(9L, request))
    let outs = normalize outputs
    Expect.isEmpty (sent outs) "nothing is sent for a refused extension"
    Expect.isTrue (after = s) "the session is unchanged"

    match events outs with
    | [ Event.Refused(9L, e) ] -> e
    | other -> failtestf "expected a refusal, got %A" other

[<Tests>]
let tests =
    testList
        "extension commands"
        [
            testCase "a single-line extension sends its keyword upper-cased with its arguments and answers the status"
            <| fun () ->
                let s = loggedIn plain 2 true

                let after, outs =
                    runAll
                        s
                        [
                            Input.Submit(5L, Request.Extension("xtnd", [ "stats"; "42" ], false))
                            received "+OK done [SYS/TEMP] fine\r\n"
                        ]

                Expect.equal (sent outs) [ "XTND stats 42" ] "the line"

                match answeredTo 5L outs with
                | Some(Reply.Extension(status, lines)) ->
                    Expect.equal status.Text "done [SYS/TEMP] fine" "status text"
                    Expect.isEmpty lines "no lines"
                | other -> failtestf "%A" other

                Expect.equal after.Phase.Kind PhaseKind.Transaction "the state is kept"

            testCase "a multi-line extension collects its lines, dot-unstuffed, up to the terminator"
            <| fun () ->
                let _, outs =
                    runAll
                        (loggedIn plain 2 false)
                        [
                            Input.Submit(5L, Request.Extension("XLST", [], true))
                            received "+OK list follows\r\nfirst line\r\n..dotted\r\n\r\n.\r\n"
                        ]

                match answeredTo 5L outs with
                | Some(Reply.Extension(status, lines)) ->
                    Expect.equal status.Text "list follows" "status"
                    Expect.equal lines [ "first line"; ".dotted"; "" ] "lines"
                | other -> failtestf "%A" other

            testCase "a multi-line extension answered -ERR is a rejection and reads no lines"
            <| fun () ->
                let after, outs =
                    runAll
                        (loggedIn plain 2 false)
                        [
                            Input.Submit(5L, Request.Extension("XLST", [], true))
                            received "-ERR [IN-USE] not now\r\n"
                            Input.Submit(6L, Request.Noop)
                            received "+OK\r\n"
                        ]

                match
                    events outs
                    |> List.tryPick (function
                        | Event.Rejected(5L, e) -> Some e
                        | _ -> None)
                with
                | Some e ->
                    Expect.equal e.Command "XLST" "names the command"
                    Expect.equal (e.Code |> Option.map _.Text) (Some "IN-USE") "the response code"
                | None -> failtestf "no rejection: %A" (render outs)

                Expect.isTrue
                    (match answeredTo 6L outs with
                     | Some(Reply.Ok _) -> true
                     | _ -> false)
                    "the session goes on"

                Expect.equal after.Phase.Kind PhaseKind.Transaction "still in the transaction state"

            testCase "an extension is allowed before login too"
            <| fun () ->
                let s, _ =
                    runAll (Session.create plain) [ received "+OK hi\r\n"; received "+OK\r\nUSER\r\n.\r\n" ]

                let _, outs =
                    runAll
                        s
                        [
                            Input.Submit(1L, Request.Extension("XID", [ "client" ], false))
                            received "+OK\r\n"
                        ]

                Expect.equal (sent outs) [ "XID client" ] "sent in the authorization state"

            testCase "an extension is a barrier: never pipelined with the commands around it"
            <| fun () ->
                let _, outs =
                    runAll
                        (loggedIn plain 3 true)
                        [
                            Input.Submit(5L, Request.Noop)
                            Input.Submit(6L, Request.Extension("XTND", [], false))
                            Input.Submit(7L, Request.Noop)
                        ]

                Expect.equal (sent outs) [ "NOOP" ] "only the first command before its reply"

            testCase "keywords the core has requests for are refused before any byte"
            <| fun () ->
                let s = loggedIn plain 2 true

                for keyword in [ "STLS"; "pass"; "Quit"; "RETR"; "AUTH"; "USER"; "UTF8" ] do
                    let e = refusedKind s (Request.Extension(keyword, [], false))
                    Expect.equal e.Kind UsageErrorKind.InvalidArgument keyword
                    Expect.stringContains e.Message "own request" keyword

            testCase "bad keywords and arguments are refused before any byte"
            <| fun () ->
                let s = loggedIn plain 2 true

                for request in
                    [
                        Request.Extension("XY", [], false)
                        Request.Extension("XTNDX", [], false)
                        Request.Extension("X-Y", [], false)
                        Request.Extension(null, [], false)
                        Request.Extension("XTND", [ "two words" ], false)
                        Request.Extension("XTND", [ "inject\r\nDELE 1" ], false)
                        Request.Extension("XTND", [ "" ], false)
                        Request.Extension("XTND", [ "nul\000" ], false)
                        Request.Extension("XTND", [ String.replicate 260 "a" ], false)
                    ] do
                    let e = refusedKind s request

                    Expect.contains
                        [ UsageErrorKind.InvalidArgument; UsageErrorKind.CommandTooLong ]
                        e.Kind
                        (sprintf "%A" request)

            testCase "a multi-line extension reply longer than MaxCapaLines is a protocol error"
            <| fun () ->
                let options =
                    { plain with
                        Limits = { plain.Limits with MaxCapaLines = 2 }
                    }

                let _, outs =
                    runAll
                        (loggedIn options 2 false)
                        [
                            Input.Submit(5L, Request.Extension("XLST", [], true))
                            received "+OK\r\na\r\nb\r\nc\r\n.\r\n"
                        ]

                match
                    events outs
                    |> List.tryPick (function
                        | Event.Failed(Pop3Error.Protocol e) -> Some e
                        | _ -> None)
                with
                | Some e -> Expect.equal e.Kind ProtocolErrorKind.ListingTooLong e.Message
                | None -> failtestf "no failure: %A" (render outs)

            testProperty "any keyword of 3-4 letters or digits not reserved encodes to KEYWORD args CRLF"
            <| fun (NonEmptyArray(letters: char[])) (args: PositiveInt list) ->
                let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

                let keyword =
                    letters
                    |> Array.truncate 4
                    |> Array.map (fun c -> alphabet[int c % alphabet.Length])
                    |> fun a -> "X" + System.String(a).Substring(0, min a.Length 3)

                let keyword = if keyword.Length < 3 then keyword + "Q" else keyword
                let arguments = args |> List.truncate 5 |> List.map string

                match Command.encode 255 (Request.Extension(keyword, arguments, false)) with
                | Ok cmd ->
                    let expected =
                        System.String.Join(" ", keyword.ToUpperInvariant() :: arguments) + "\r\n"

                    Expect.equal (System.Text.Encoding.ASCII.GetString(cmd.Bytes.ToArray())) expected "the line"
                | Error e -> failtestf "%s refused: %s" keyword e.Message
        ]
