/// Helpers shared by the core tests: feeding scripts, normalising outputs for comparison.
module Pop3Functional.Core.Tests.Harness

open System
open System.Text
open Pop3Functional.Core

let ascii (s: string) = Encoding.ASCII.GetBytes s
let text (b: byte[]) = Encoding.Latin1.GetString b

/// An output with body slices copied (they are only valid during their step) and adjacent body
/// slices merged, so that outputs can be compared across chunkings.
type Norm =
    | NSend of string
    | NStartTls
    | NEvent of Event
    | NBody of RequestId * string
    | NClose

let private eventText (e: Event) = sprintf "%A" e

/// Normalises outputs: copies and merges BodyData, keeps everything else.
let normalize (outputs: Output seq) : Norm list =
    let result = ResizeArray<Norm>()

    for o in outputs do
        match o with
        | Output.Send cmd -> result.Add(NSend(text (cmd.Bytes.ToArray())))
        | Output.StartTls -> result.Add NStartTls
        | Output.Close -> result.Add NClose
        | Output.Emit(Event.BodyData(id, data)) ->
            let chunk = text (data.ToArray())

            match
                (if result.Count > 0 then
                     Some result[result.Count - 1]
                 else
                     None)
            with
            | Some(NBody(prev, acc)) when prev = id -> result[result.Count - 1] <- NBody(id, acc + chunk)
            | _ -> result.Add(NBody(id, chunk))
        | Output.Emit e -> result.Add(NEvent e)

    List.ofSeq result

/// A comparable string form of normalised outputs.
let render (outputs: Norm list) =
    outputs
    |> List.map (function
        | NSend s -> "C: " + s.TrimEnd('\r', '\n')
        | NStartTls -> "StartTls"
        | NClose -> "Close"
        | NBody(id, s) -> $"Body #{id}: {s}"
        | NEvent e -> eventText e)

/// Feeds bytes in the given chunks; returns the final session and normalised outputs.
let feedChunks (state: SessionState) (chunks: byte[] seq) =
    let mutable s = state
    let outs = ResizeArray<Norm>()

    for chunk in chunks do
        let struct (next, o) = Session.step s (Input.Received(ReadOnlyMemory chunk))
        s <- next
        outs.AddRange(normalize o)

    // Merge body pieces that came from different chunks.
    s,
    normalize (
        outs
        |> Seq.map (function
            | NSend t ->
                Output.Send
                    {
                        Bytes = ReadOnlyMemory(ascii t)
                        LogText = t
                    }
            | NStartTls -> Output.StartTls
            | NClose -> Output.Close
            | NBody(id, t) -> Output.Emit(Event.BodyData(id, ReadOnlyMemory(Encoding.Latin1.GetBytes t)))
            | NEvent e -> Output.Emit e)
    )

/// Steps one input and returns the session and normalised outputs.
let stepN (state: SessionState) (input: Input) =
    let struct (s, o) = Session.step state input
    s, normalize o

let received (s: string) =
    Input.Received(ReadOnlyMemory(Encoding.Latin1.GetBytes s))

/// Runs inputs in order; returns the final session and all normalised outputs.
let runAll (state: SessionState) (inputs: Input list) =
    let mutable s = state
    let outs = ResizeArray<Norm>()

    for i in inputs do
        let struct (next, o) = Session.step s i
        s <- next
        outs.AddRange(normalize o)

    s, List.ofSeq outs

/// The commands sent, as text without CRLF.
let sent (outs: Norm list) =
    outs
    |> List.choose (function
        | NSend s -> Some(s.TrimEnd('\r', '\n'))
        | _ -> None)

let events (outs: Norm list) =
    outs
    |> List.choose (function
        | NEvent e -> Some e
        | _ -> None)

/// Runs inputs and collects every text a log or a caller could see (LogText, events, error
/// messages, the session printed with %A) and the bytes that went on the wire, for secret scans.
let observe (state: SessionState) (inputs: Input list) =
    let mutable s = state
    let texts = ResizeArray<string>()
    let mutable wire = ""

    for i in inputs do
        let struct (next, outs) = Session.step s i
        s <- next
        texts.Add(sprintf "%A" s)

        for o in outs do
            match o with
            | Output.Send cmd ->
                texts.Add cmd.LogText
                wire <- wire + text (cmd.Bytes.ToArray())
            | Output.Emit e ->
                texts.Add(sprintf "%A" e)

                match e with
                | Event.Refused(_, u) -> texts.Add u.Message
                | Event.Rejected(_, r) -> texts.Add r.Message
                | Event.Aborted(_, p)
                | Event.Failed p -> texts.Add p.Message
                | _ -> ()
            | other -> texts.Add(sprintf "%A" other)

    s, List.ofSeq texts, wire

/// Plaintext options with plaintext credentials allowed: for tests of the dialogue itself.
let plain =
    { Options.Default with
        Tls = TlsMode.NoTls
        AllowPlaintextCredentials = true
    }

/// A session logged in to a mailbox of `count` messages (CAPA answered with PIPELINING when asked).
let loggedIn (options: Options) (count: int) (pipelining: bool) =
    let capa =
        if pipelining then
            "+OK\r\nUSER\r\nPIPELINING\r\nTOP\r\nUIDL\r\n.\r\n"
        else
            "+OK\r\nUSER\r\n.\r\n"

    let s0 = Session.create options

    let s, outs =
        runAll
            s0
            [
                received "+OK ready <1.2@host>\r\n"
                received capa
                Input.Submit(1L, Request.User "bob")
                received "+OK\r\n"
                Input.Submit(2L, Request.Pass(Secret.FromString "pw"))
                received "+OK logged in\r\n"
                received capa
                received $"+OK {count} {count * 100}\r\n"
            ]

    if s.Phase.Kind <> PhaseKind.Transaction then
        failwithf "harness: not logged in: %A" (render outs)

    s
