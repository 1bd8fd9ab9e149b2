/// Runs a scripted POP3 dialogue through the pure core and prints the exchange and the parsed
/// results. No network: the bytes go between the core and ScriptedServer in memory.
module Pop3Functional.CoreDemo.Program

open System
open System.Text
open Pop3Functional.Core

let private show (prefix: string) (bytes: string) =
    for line in
        bytes.Split("\r\n", StringSplitOptions.None)
        |> Array.take (max 1 (bytes.Split("\r\n").Length - 1)) do
        printfn "%s %s" prefix line

let private describeReply (reply: Reply) =
    match reply with
    | Reply.LoggedIn(_, snap) -> $"logged in: {snap.Count} messages, {snap.Octets} octets (snapshot fixed)"
    | Reply.Stat st -> $"STAT: {st.Count} messages, {st.Octets} octets"
    | Reply.Listing entries ->
        "LIST: "
        + String.Join(", ", entries |> List.map (fun e -> $"#{e.Number}={e.Octets}"))
    | Reply.UidListing entries ->
        "UIDL: "
        + String.Join(", ", entries |> List.map (fun e -> $"#{e.Number}={e.Uid}"))
    | Reply.MessageFollows s -> $"message follows ({s.Text})"
    | Reply.Quit q ->
        let committed = String.Join(", ", q.DeletionsCommitted)
        $"QUIT: update completed = {q.UpdateCompleted}, deletions committed: [{committed}]"
    | Reply.Ok s -> $"+OK {s.Text}"
    | other -> sprintf "%A" other

let private runDemo () =
    let options =
        { Options.Default with
            Tls = TlsMode.NoTls
            // The demo is in memory; a real plaintext session needs this opt-in too (DESIGN §6).
            AllowPlaintextCredentials = true
        }

    let mutable session = Session.create options
    let bodies = Collections.Generic.Dictionary<RequestId, StringBuilder>()
    let serverInbox = Collections.Generic.Queue<string>()

    // Steps the core and serves every command it sends, until nothing more is sent.
    let rec step (input: Input) =
        let struct (next, outputs) = Session.step session input
        session <- next

        for output in outputs do
            match output with
            | Output.Send cmd ->
                printfn "C: %s" cmd.LogText
                serverInbox.Enqueue(Encoding.ASCII.GetString(cmd.Bytes.Span).TrimEnd('\r', '\n'))
            | Output.Emit(Event.BodyData(id, data)) ->
                match bodies.TryGetValue id with
                | true, sb -> sb.Append(Encoding.ASCII.GetString data.Span) |> ignore
                | _ -> bodies[id] <- StringBuilder(Encoding.ASCII.GetString data.Span)
            | Output.Emit(Event.BodyEnded(id, octets)) ->
                printfn "   [body of request %d: %d octets]" id octets

                for line in bodies[id].ToString().TrimEnd('\r', '\n').Split("\r\n") do
                    printfn "   | %s" line
            | Output.Emit(Event.Answered(id, reply)) -> printfn "   => request %d: %s" id (describeReply reply)
            | Output.Emit(Event.GreetingReceived g) ->
                printfn "   => greeting; APOP timestamp: %s" (defaultArg g.ApopTimestamp "none")
            | Output.Emit(Event.CapabilitiesReceived caps) ->
                printfn "   => capabilities: %s" (String.Join(" ", caps.Lines))
            | Output.Emit(Event.AuthorizationReady _) -> printfn "   => ready to log in"
            | Output.Emit(Event.Refused(id, err)) ->
                printfn "   => request %d refused before sending: %s" id err.Message
            | Output.Emit(Event.Rejected(id, err)) -> printfn "   => request %d: %s" id err.Message
            | Output.Emit(Event.Aborted(id, err)) -> printfn "   => request %d aborted: %s" id err.Message
            | Output.Emit(Event.Failed err) -> printfn "   => session failed: %s" err.Message
            | Output.Emit(Event.QuirkTolerated q) -> printfn "   => tolerated server quirk: %s" q.Name
            | Output.Emit e -> printfn "   => %A" e
            | Output.StartTls -> printfn "   (TLS would start here)"
            | Output.Close -> printfn "   (connection closed)"

        while serverInbox.Count > 0 do
            let reply = ScriptedServer.reply (serverInbox.Dequeue())
            show "S:" reply
            step (Input.Received(ReadOnlyMemory(Encoding.ASCII.GetBytes reply)))

    printfn "Pop3Functional core demo: a scripted POP3 dialogue through the pure client core."
    printfn "C: lines are what the core sent (secrets redacted), S: what the server answered, => what the core parsed."
    printfn ""
    show "S:" ScriptedServer.greeting
    step (Input.Received(ReadOnlyMemory(Encoding.ASCII.GetBytes ScriptedServer.greeting)))

    let requests =
        [
            Request.User "bob"
            Request.Pass(Secret.FromString "demo-password")
            Request.Uidl None
            Request.List None
            Request.Top(1UL, 0UL)
            Request.Retr 2UL
            Request.Dele 2UL
            Request.Retr 2UL // refused locally: message 2 is marked deleted
            Request.Quit
        ]

    requests
    |> List.iteri (fun i request ->
        printfn ""
        printfn "-- request %d: %s" (i + 1) request.Keyword
        step (Input.Submit(int64 (i + 1), request)))

    printfn ""
    printfn "Final state: %A" session.Phase.Kind
    if session.Phase.Kind = PhaseKind.Closed then 0 else 1

[<EntryPoint>]
let main argv =
    match argv with
    | [| "--state-diagram" |] ->
        // docs/state-machine.md embeds this output; a test checks the two agree.
        printf "%s" (Transitions.toMermaid ())
        0
    | [||] -> runDemo ()
    | _ ->
        eprintfn "usage: Pop3Functional.CoreDemo [--state-diagram]"
        2
