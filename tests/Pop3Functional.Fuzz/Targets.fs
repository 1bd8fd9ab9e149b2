/// The fuzz targets: pure functions over the fuzzer's bytes that must never throw (the core's
/// contract). Each also checks a few invariants of its own and throws FuzzInvariantException
/// when one breaks, which afl records as a crash like any other exception.
module Pop3Functional.Fuzz.Targets

open System
open Pop3Functional.Core

/// An invariant of the code under test broke (not a bug of the harness).
exception FuzzInvariantException of string

let private check condition message =
    if not condition then
        raise (FuzzInvariantException message)

// ----- session ---------------------------------------------------------------------------------

/// Separators in a session script. None of these bytes occurs in UTF-8 text, so ordinary protocol
/// bytes rarely collide with them.
[<Literal>]
let NextRequest = 0xFFuy

[<Literal>]
let TlsDone = 0xFEuy

[<Literal>]
let ServerClosed = 0xFDuy

/// Only ends a chunk: the core treats bytes that arrive in the same chunk as the reply that
/// prompts the next command as unsolicited, so a script needs plain chunk boundaries too.
[<Literal>]
let ChunkBreak = 0xFCuy

/// The option sets a script can choose with its first byte. Lazy: SharpFuzz's instrumented core
/// must not run before the fuzzer has started (its coverage map does not exist yet), so nothing
/// at module level calls into the core.
let sessionOptions: Lazy<Options[]> =
    lazy
        (let plain =
            { Options.Default with
                Tls = TlsMode.NoTls
                AllowPlaintextCredentials = true
            }

         let tiny =
             { plain with
                 Limits =
                     { plain.Limits with
                         MaxLineOctets = 64
                         MaxCapaLines = 8
                         MaxListingEntries = 3UL
                         MaxSaslChallengeOctets = 12
                         MaxSaslRounds = 2
                         MaxMessageOctets = Some 50UL
                         PipelineMaxCommands = 2
                         PipelineMaxOctets = 40
                     }
             }

         [|
             Options.Default
             Options.Strict
             { Options.Default with
                 Tls = TlsMode.StartTlsRequired
             }
             tiny
             plain
             { plain with
                 UsePipelining = false
                 Quirks = Set.empty
             }
         |])

/// What the caller does after each server chunk, in this order, cyclically.
let callerActions: (int64 -> Input)[] =
    [|
        fun id -> Input.Submit(id, Request.User "bob")
        fun id -> Input.Submit(id, Request.Pass(Secret.FromString "pw"))
        fun id -> Input.Submit(id, Request.Stat)
        fun id -> Input.Submit(id, Request.List None)
        fun id -> Input.Submit(id, Request.Uidl None)
        fun id -> Input.Submit(id, Request.Retr 1UL)
        fun id -> Input.Submit(id, Request.Top(1UL, 0UL))
        fun id -> Input.Submit(id, Request.Dele 1UL)
        fun id -> Input.Submit(id, Request.Auth("PLAIN", None))
        fun _ -> Input.SaslRespond(Secret.FromString "\000bob\000pw")
        fun id -> Input.Submit(id, Request.Quit)
    |]

/// Touches every output the way a shell would: body slices are read during their step.
let private consume (outputs: Output list) =
    for o in outputs do
        match o with
        | Output.Send command ->
            check (command.Bytes.Length > 0) "an empty command was sent"
            check (not (isNull command.LogText)) "a command without log text"
        | Output.Emit(Event.BodyData(_, data)) -> data.ToArray() |> ignore
        | Output.Emit _
        | Output.StartTls
        | Output.Close -> ()

/// The input is a script: byte 0 picks the options; the rest is server bytes, cut into chunks at
/// the separator bytes. After a chunk ending in ChunkBreak nothing else happens; after NextRequest the caller does its next action;
/// TlsDone reports the TLS handshake complete; ServerClosed reports the end of the stream.
/// observe sees every input and its outputs (the trace mode prints them).
let sessionWith (observe: Input -> Output list -> unit) (data: ReadOnlySpan<byte>) =
    if data.Length > 0 then
        let options = sessionOptions.Value[int data[0] % sessionOptions.Value.Length]
        let script = data.Slice 1
        let mutable state = Session.create options
        let mutable action = 0
        let mutable nextId = 1L

        let step input =
            let struct (next, outputs) = Session.step state input
            consume outputs
            observe input outputs
            state <- next

        let mutable chunkStart = 0

        for i in 0 .. script.Length do
            let atEnd = i = script.Length
            let b = if atEnd then 0uy else script[i]

            if atEnd || b >= ChunkBreak then
                if i > chunkStart then
                    // A fresh array per chunk, as a shell's read buffer would be.
                    step (Input.Received(ReadOnlyMemory(script.Slice(chunkStart, i - chunkStart).ToArray())))

                chunkStart <- i + 1

                if not atEnd then
                    match b with
                    | NextRequest ->
                        step (callerActions[action % callerActions.Length] nextId)
                        action <- action + 1
                        nextId <- nextId + 1L
                    | TlsDone -> step (Input.TlsEstablished None)
                    | ServerClosed -> step Input.EndOfStream
                    | _ -> ()

/// The session target.
let session (data: ReadOnlySpan<byte>) = sessionWith (fun _ _ -> ()) data

// ----- status lines ----------------------------------------------------------------------------

/// Every reply grammar over one line: byte 0 picks the tolerated quirks and UTF-8; the rest is the
/// line (and, split at LF, the lines of a CAPA answer).
let status (data: ReadOnlySpan<byte>) =
    if data.Length > 0 then
        let mode = data[0]

        let allowed =
            match mode % 3uy with
            | 0uy -> Options.Default.Quirks
            | 1uy -> Options.Strict.Quirks
            | _ -> Set.ofList Quirk.All

        let utf8 = mode &&& 4uy <> 0uy
        let line = data.Slice 1

        match ReplyParser.statusLine allowed utf8 line with
        | Ok(struct (s, _)) -> s.Text.Length |> ignore
        | Error _ -> ()

        ReplyParser.isErr line |> ignore
        ReplyParser.isContinuation line |> ignore
        ReplyParser.tryParseNumber line |> ignore
        ReplyParser.number allowed "number" line |> ignore
        ReplyParser.fields allowed line 3 |> ignore

        let text = ReplyParser.decode utf8 line

        match ReplyParser.apopTimestamp text with
        | Some stamp -> check (text.Contains stamp) "the APOP timestamp is not in the greeting"
        | None -> ()

        ReplyParser.stat allowed line |> ignore
        ReplyParser.listEntry allowed line |> ignore

        match ReplyParser.uidEntry allowed line with
        | Ok(struct (entry, _)) -> entry.Uid.ToString().Length |> ignore
        | Error _ -> ()

        ReplyParser.languageEntry utf8 line |> ignore

        text.Split '\n'
        |> Array.fold ReplyParser.capabilityLine Capabilities.Empty
        |> ignore

// ----- bodies ----------------------------------------------------------------------------------

/// Decodes all of bytes in the given chunks; returns the data, whether it ended, and where.
let private decodeChunks (bareLf: bool) (chunks: byte[] list) =
    let output = ResizeArray<byte>()
    let mutable cursor = BodyCursor.LineStart
    let mutable ended = None
    let mutable offset = 0

    for chunk in chunks do
        if ended.IsNone then
            let memory = ReadOnlyMemory chunk

            let progress =
                BodyDecoder.decode bareLf cursor memory 0 (fun slice -> output.AddRange(slice.ToArray()))

            check (progress.Next >= 0 && progress.Next <= chunk.Length) "Next outside the chunk"
            check (progress.Ended || progress.Next = chunk.Length) "a chunk not consumed without an end"
            cursor <- progress.Cursor

            if progress.Ended then
                ended <- Some(offset + progress.Next)

            offset <- offset + chunk.Length

    output.ToArray(), ended

/// A body split in two at a position from byte 0, decoded in both line-end modes: the output never
/// exceeds the input, and the split never changes the result.
let body (data: ReadOnlySpan<byte>) =
    if data.Length > 0 then
        let rest = data.Slice(1).ToArray()
        let cut = int data[0] % (rest.Length + 1)
        let first = rest[.. cut - 1]
        let second = rest[cut..]

        for bareLf in [ false; true ] do
            let whole, wholeEnd = decodeChunks bareLf [ rest ]
            let split, splitEnd = decodeChunks bareLf [ first; second ]
            check (whole.Length <= rest.Length) "more body bytes out than in"
            check (split.Length <= rest.Length) "more body bytes out than in (split)"

            match wholeEnd with
            | Some e -> check (whole.Length <= e) "more body bytes out than before the terminator"
            | None -> ()

            check (wholeEnd = splitEnd) $"the split at {cut} moved the end (bareLf={bareLf})"
            check (whole.AsSpan().SequenceEqual(split)) $"the split at {cut} changed the body (bareLf={bareLf})"

// ----- line framing ----------------------------------------------------------------------------

/// Frames lines with a limit from byte 0 over the rest split in two at a position from byte 1:
/// lines respect the limit, positions advance, and every byte is accounted for.
let framer (data: ReadOnlySpan<byte>) =
    if data.Length > 1 then
        let maxOctets = 1 + int data[0]
        let rest = data.Slice(2).ToArray()
        let cut = int data[1] % (rest.Length + 1)

        let chunks =
            [ ReadOnlyMemory(rest, 0, cut); ReadOnlyMemory(rest, cut, rest.Length - cut) ]

        let mutable partial = PartialLine.Empty
        let mutable stop = false
        let mutable framed = 0

        for chunk in chunks do
            let mutable start = 0
            let mutable more = not stop

            while more do
                match LineFramer.next maxOctets partial chunk start with
                | FramedLine.Line(line, next, bareLf) ->
                    let ending = if bareLf then 1 else 2
                    check (line.Length + ending <= maxOctets) "a line over the limit"
                    check (next > start && next <= chunk.Length) "next did not advance within the chunk"
                    check (line.Length + ending = partial.Length + next - start) "line bytes not accounted for"
                    framed <- framed + line.Length + ending
                    partial <- PartialLine.Empty
                    start <- next
                | FramedLine.NeedMore buffer ->
                    check (buffer.Length = partial.Length + chunk.Length - start) "partial bytes lost"
                    check (buffer.Length < maxOctets) "a partial line at the limit"
                    partial <- buffer
                    more <- false
                | FramedLine.TooLong ->
                    stop <- true
                    more <- false

                if start >= chunk.Length && partial.Length = 0 then
                    more <- false

        if not stop then
            check (framed + partial.Length = rest.Length) "framed bytes do not add up to the input"

// ----- registry --------------------------------------------------------------------------------

/// A target that takes the fuzzer's bytes.
// ----- server ----------------------------------------------------------------------------------

/// The simulator's server machine under arbitrary client bytes: the first byte picks the
/// personality and whether STLS is possible; the rest is split into chunks at 0xFF. It must never
/// throw, must answer in bounded output per input, and must stop once it has closed.
let server (data: ReadOnlySpan<byte>) =
    if data.Length > 0 then
        let personalities = Pop3Functional.Simulator.Personalities.all
        let personality = snd personalities[int data[0] % personalities.Length]
        let stls = data[0] &&& 0x80uy <> 0uy
        let boxes = Pop3Functional.Simulator.Mailboxes()
        let box = boxes.Mailbox("alice", "secret")
        box.Add("Subject: a\n\nbody\n.dot\n") |> ignore
        box.Add("Subject: Gr\u00fc\u00dfe\n\n\n") |> ignore

        let options =
            (Pop3Functional.Simulator.ServerOptions.Create personality)
                .WithClock(Func<_>(fun () -> DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)))

        use connection =
            new Pop3Functional.Simulator.ServerConnection(options, boxes, 1, false, stls)

        let buffer = Array.zeroCreate<byte> 4096

        let drain () =
            let mutable octets = 0L
            let mutable go = true

            while go do
                let action = connection.Next(Span buffer)

                match action.Kind with
                | Pop3Functional.Simulator.ServerActionKind.Write ->
                    check (action.Count > 0 && action.Count <= buffer.Length) "a write within the buffer"
                    octets <- octets + int64 action.Count
                    // Only the endless-line fault writes without end, and no fault is set here.
                    check (octets < 16L * 1024L * 1024L) "bounded output per input"
                | Pop3Functional.Simulator.ServerActionKind.StartTls -> connection.TlsEstablished null
                | Pop3Functional.Simulator.ServerActionKind.Delay -> ()
                | _ -> go <- false

        drain ()
        let mutable rest = data.Slice 1

        while not rest.IsEmpty do
            let cut = rest.IndexOf 0xFFuy
            let chunk = if cut < 0 then rest else rest.Slice(0, cut)
            connection.Feed(ReadOnlyMemory(chunk.ToArray()))
            drain ()
            rest <- if cut < 0 then ReadOnlySpan.Empty else rest.Slice(cut + 1)

        connection.FeedEndOfStream()
        drain ()
        check connection.IsClosed "closed after end of stream"

type Target = delegate of ReadOnlySpan<byte> -> unit

/// Every target, by the name the command line uses.
let all: (string * Target)[] =
    [|
        "session", Target(fun d -> session d)
        "status", Target(fun d -> status d)
        "body", Target(fun d -> body d)
        "framer", Target(fun d -> framer d)
        "server", Target(fun d -> server d)
    |]

let tryFind (name: string) =
    all |> Array.tryFind (fun (n, _) -> n = name) |> Option.map snd
