/// Runs the client core against a simulated server connection entirely in memory, with causal
/// ordering: the server only ever sees bytes the client has sent, and the client only bytes the
/// server wrote after reading them.
module Pop3Functional.Simulator.Tests.Loop

open System
open System.Collections.Generic
open Pop3Functional.Core
open Pop3Functional.Simulator

/// How the bytes are cut on their way in each direction.
type Chunking =
    /// Everything available at once.
    | Whole
    /// Pieces of at most this many octets.
    | Fixed of int
    /// Pseudo-random piece sizes from this seed (1 to 64 octets, sometimes larger).
    | Random of int

/// What a run produced.
type RunResult =
    {
        /// Every event, in order (BodyData slices replaced by copies).
        Events: Event list
        /// The body octets delivered per request.
        Bodies: Map<RequestId, byte[]>
        /// The commands the client sent, as logged (secrets redacted).
        Sent: string list
        /// The client asked to close.
        ClientClosed: bool
        /// The server closed.
        ServerClosed: bool
        /// The server hung (a Silence fault) and the run stopped waiting.
        ServerHung: bool
        /// The client's final state.
        Client: SessionState
    }

    /// The final event of a request, if any.
    member r.Final(id: RequestId) =
        r.Events
        |> List.tryFindBack (function
            | Event.Answered(i, Reply.MessageFollows _) -> false
            | Event.Answered(i, _)
            | Event.BodyEnded(i, _)
            | Event.Rejected(i, _)
            | Event.Refused(i, _)
            | Event.Aborted(i, _) -> i = id
            | _ -> false)

    /// The first Failed event, if any.
    member r.Failure =
        r.Events
        |> List.tryPick (function
            | Event.Failed e -> Some e
            | _ -> None)

    /// The quirks tolerated.
    member r.Quirks =
        r.Events
        |> List.choose (function
            | Event.QuirkTolerated q -> Some q
            | _ -> None)

/// Plaintext client options with plaintext credentials allowed.
let plainClient =
    { Options.Default with
        Tls = TlsMode.NoTls
        AllowPlaintextCredentials = true
    }

let private pieces (chunking: Chunking) =
    let mutable state =
        match chunking with
        | Random seed -> uint64 seed * 7919UL + 1UL
        | _ -> 0UL

    fun (available: int) ->
        match chunking with
        | Whole -> available
        | Fixed n -> min n available
        | Random _ ->
            state <- state * 6364136223846793005UL + 1442695040888963407UL
            let r = int ((state >>> 33) % 100UL)
            let size = if r < 80 then 1 + r % 64 else 1 + r * 97
            min size available

/// A client session driven against a server connection in memory, step by step: Settle runs it
/// until nothing more can happen, Submit adds requests and settles again. Several drivers can be
/// interleaved (two sessions on the same mailboxes).
type Driver(client: Options, server: ServerConnection, chunking: Chunking) =
    let events = ResizeArray<Event>()
    let bodies = Dictionary<RequestId, ResizeArray<byte>>()
    let sent = ResizeArray<string>()
    let toServer = ResizeArray<byte>()
    let nextPiece = pieces chunking
    let buffer = Array.zeroCreate<byte> 65536
    let mutable session = Session.create client
    let mutable clientClosed = false
    let mutable clientWantsTls = false
    let mutable serverWantsTls = false
    let mutable serverClosed = false
    let mutable serverHung = false
    let mutable ready = false
    let mutable nextId = 1L

    let apply (outputs: Output list) =
        for o in outputs do
            match o with
            | Output.Send cmd ->
                sent.Add cmd.LogText
                toServer.AddRange(cmd.Bytes.ToArray())
            | Output.StartTls -> clientWantsTls <- true
            | Output.Close -> clientClosed <- true
            | Output.Emit(Event.BodyData(id, data)) ->
                match bodies.TryGetValue id with
                | true, b -> b.AddRange(data.ToArray())
                | _ -> bodies[id] <- ResizeArray(data.ToArray())

                events.Add(Event.BodyData(id, ReadOnlyMemory(data.ToArray())))
            | Output.Emit e ->
                match e with
                | Event.AuthorizationReady _ -> ready <- true
                | _ -> ()

                events.Add e

    let stepClient (input: Input) =
        let struct (next, outputs) = Session.step session input
        session <- next
        apply outputs

    /// One round: the server writes what it has (up to 4 MiB: endless faults stop there), the
    /// client reads it, then the server reads what the client sent. True if anything moved.
    /// Once the client has closed, what the server still writes goes nowhere (at most 64 KiB is
    /// drained, to see a Close) and does not count as movement, so endless faults end the run.
    let round () =
        let fromServer = ResizeArray<byte>()
        let mutable waiting = false
        let discarding = clientClosed
        let cap = if discarding then 64 * 1024 else 4 * 1024 * 1024

        while not waiting
              && not serverClosed
              && not serverHung
              && not serverWantsTls
              && fromServer.Count < cap do
            let action = server.Next(Span buffer)

            match action.Kind with
            | ServerActionKind.Write -> fromServer.AddRange(ReadOnlySpan(buffer, 0, action.Count).ToArray())
            | ServerActionKind.Delay -> () // virtual time: delays cost nothing here
            | ServerActionKind.StartTls -> serverWantsTls <- true
            | ServerActionKind.Close -> serverClosed <- true
            | ServerActionKind.Hang -> serverHung <- true
            | _ -> waiting <- true

        let mutable moved = fromServer.Count > 0 && not discarding
        let bytes = fromServer.ToArray()
        let mutable at = 0

        while at < bytes.Length && not clientClosed do
            let n = nextPiece (bytes.Length - at)
            stepClient (Input.Received(ReadOnlyMemory(bytes, at, n)))
            at <- at + n

        if serverClosed && not clientClosed && session.Phase.Kind <> PhaseKind.Closed then
            stepClient Input.EndOfStream
            moved <- true

        if clientWantsTls && serverWantsTls then
            clientWantsTls <- false
            serverWantsTls <- false
            server.TlsEstablished null
            stepClient (Input.TlsEstablished None)
            moved <- true

        if toServer.Count > 0 && not serverClosed && not serverWantsTls then
            let data = toServer.ToArray()
            toServer.Clear()
            let mutable at = 0

            while at < data.Length do
                let n = nextPiece (data.Length - at)
                server.Feed(ReadOnlyMemory(data, at, n))
                at <- at + n

            moved <- true
        elif clientClosed && not serverClosed && not server.IsClosed then
            server.FeedEndOfStream()
            moved <- true

        moved

    /// Runs until nothing more can happen.
    member _.Settle() =
        let mutable rounds = 0

        while round () && rounds < 100_000 do
            rounds <- rounds + 1

    /// Submits these requests together (once AuthorizationReady arrived and the client is open),
    /// numbering them on from the last id, then settles. Returns the ids given.
    member this.Submit(requests: Request list) : RequestId list =
        if not clientClosed && ready then
            let ids =
                [
                    for r in requests do
                        let id = nextId
                        stepClient (Input.Submit(id, r))
                        nextId <- nextId + 1L
                        id
                ]

            this.Settle()
            ids
        else
            []

    /// Gives the client another input (a SASL response, say), then settles.
    member this.Input(input: Input) =
        if not clientClosed then
            stepClient input
            this.Settle()

    /// True once the client may log in (AuthorizationReady arrived).
    member _.Ready = ready

    /// True once the client asked to close.
    member _.ClientClosed = clientClosed

    /// What the run produced so far.
    member _.Result: RunResult =
        {
            Events = List.ofSeq events
            Bodies = bodies |> Seq.map (fun kv -> kv.Key, kv.Value.ToArray()) |> Map.ofSeq
            Sent = List.ofSeq sent
            ClientClosed = clientClosed
            ServerClosed = serverClosed
            ServerHung = serverHung
            Client = session
        }

/// Runs a session: each step's requests are submitted together once the previous step is
/// quiet (the first step once AuthorizationReady arrives). Stops when nothing more can happen.
let run (client: Options) (server: ServerConnection) (chunking: Chunking) (steps: Request list list) : RunResult =
    let driver = Driver(client, server, chunking)
    driver.Settle()

    for requests in steps do
        driver.Submit requests |> ignore

    driver.Result

/// A server connection over shared mailboxes, session number 1, plaintext with STLS possible
/// only when asked.
let connect (options: ServerOptions) (mailboxes: Mailboxes) (transcript: Transcript) (session: int) =
    new ServerConnection(options, mailboxes, transcript, session, false, false)
