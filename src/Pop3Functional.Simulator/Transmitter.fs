namespace Pop3Functional.Simulator

open System
open System.Collections.Generic
open System.IO

/// What the host does next with the connection.
[<RequireQualifiedAccess>]
type internal WireAction =
    /// Send this many octets from the start of the buffer.
    | Write of int
    /// Wait, then ask again.
    | Delay of TimeSpan
    /// Run the TLS handshake.
    | StartTls
    /// Close the connection.
    | Close
    /// Send nothing, ever; close when the client does.
    | Hang
    /// Nothing to send: read the client's next bytes.
    | ReadInput

/// Streams one message body: dot-stuffing (RFC 1939 §3), TOP's line count (RFC 1939 §7), the
/// terminator, and a fault plan's alterations, in constant memory whatever the message size.
type internal BodyStreamer(transfer: BodyTransfer, scratch: byte[]) =
    static let terminator = ".\r\n"B

    /// Whole lines of 'x' ending in CRLF (at least 2 octets), so the client sees a longer but
    /// well-formed body: 78-octet lines, and no line shorter than its CRLF.
    static let extraLines (length: int) =
        let bytes = Array.create (max 2 length) 120uy
        let mutable lineStart = 0

        while lineStart < bytes.Length do
            let remaining = bytes.Length - lineStart

            let line =
                if remaining <= 79 then remaining
                elif remaining = 80 then 40
                else 78

            bytes[lineStart + line - 2] <- 13uy
            bytes[lineStart + line - 1] <- 10uy
            lineStart <- lineStart + line

        bytes

    /// The end of the last whole line at or before cut (within 4 KiB; else cut itself).
    static let lineEndBefore (content: MessageContent) (cut: int64) =
        let from = max 0L (cut - 4096L)
        let window = Array.zeroCreate<byte>(int (cut - from))
        let mutable read = 0
        let mutable go = true

        while go && read < window.Length do
            let n = content.CopyTo(from + int64 read, Span(window, read, window.Length - read))
            if n = 0 then go <- false else read <- read + n

        let lf =
            if read = 0 then
                -1
            else
                Array.LastIndexOf(window, 10uy, read - 1, read)

        if lf >= 0 then from + int64 lf + 1L else cut

    let content =
        match transfer.Alteration with
        | BodyAlteration.Longer n when n > 0 ->
            MessageContent.Concat [ transfer.Content; MessageContent.OfBytes(extraLines n) ]
        | BodyAlteration.Endless -> MessageContent.Generated(Int64.MaxValue, transfer.Message)
        | _ -> transfer.Content

    let length =
        match transfer.Alteration with
        | BodyAlteration.Shorter n ->
            // Cut back to a line end, so the body is shorter and still whole lines.
            lineEndBefore content (max 0L (content.Length - int64 n))
        | _ -> content.Length

    let mutable scratchStart = 0
    let mutable scratchEnd = 0
    let mutable offset = 0L
    let mutable reader: ContentReader option = None
    let mutable lastWasCr = false
    let mutable atLineStart = true
    let mutable dotStuffed = false
    let mutable lineIsEmpty = true
    let mutable inHeader = true
    let mutable bodyLines = 0L
    let mutable contentDone = false
    let mutable closingCrlf = 0 // octets of a CRLF added after content that did not end with one
    let mutable terminatorSent = 0
    let mutable bodyOctets = 0L

    let refill () =
        if offset < length then
            let wanted = int (min (int64 scratch.Length) (length - offset))

            // Serving reads the content once, in order: a stream is opened once.
            let r =
                match reader with
                | Some r -> r
                | None ->
                    let r = ContentReader.Open content
                    reader <- Some r
                    r

            let n = r.Read(Span(scratch, 0, wanted))

            if n <= 0 then
                // The source ended early: serve what there was.
                offset <- length
            else
                offset <- offset + int64 n

            scratchStart <- 0
            scratchEnd <- max 0 n

    let topReached () =
        match transfer.TopLines with
        | Some lines -> not inHeader && bodyLines >= lines
        | None -> false

    let finishContent () =
        contentDone <- true

        // Content that does not end with a line end gets one; after a CR, only its LF.
        if not atLineStart then
            closingCrlf <- if lastWasCr then 1 else 2

    /// Octets of body written so far (after stuffing); for DisconnectAfter.
    member _.BodyOctets = bodyOctets

    /// True once the body and its terminator (if any) are written.
    member _.Finished =
        contentDone
        && closingCrlf = 0
        && (transfer.Alteration = BodyAlteration.NoTerminatorThenClose
            || terminatorSent = terminator.Length)

    /// True when the connection must close after this body (a fault).
    member _.ClosesAfter =
        match transfer.Alteration with
        | BodyAlteration.NoTerminatorThenClose -> true
        | _ -> false

    /// Writes the next octets into destination; returns how many.
    member this.Fill(destination: Span<byte>) : int =
        let mutable written = 0

        let limit =
            match transfer.Alteration with
            | BodyAlteration.DisconnectAfter n -> int (min (int64 destination.Length) (max 0L (n - bodyOctets)))
            | _ -> destination.Length

        let mutable go = limit > 0

        while go && written < limit do
            if not contentDone then
                if scratchStart = scratchEnd then
                    if offset >= length || topReached () then
                        finishContent ()
                    else
                        refill ()

                if not contentDone && scratchStart < scratchEnd then
                    if topReached () then
                        finishContent ()
                    elif atLineStart && scratch[scratchStart] = 46uy && not dotStuffed then
                        // The stuffed dot goes before the line's own first octet.
                        destination[written] <- 46uy
                        written <- written + 1
                        dotStuffed <- true
                    else
                        let run = ReadOnlySpan(scratch, scratchStart, scratchEnd - scratchStart)
                        let lf = run.IndexOf 10uy
                        let runLength = if lf < 0 then run.Length else lf + 1
                        let n = min runLength (limit - written)
                        let piece = run.Slice(0, n)

                        if lineIsEmpty then
                            // A line is "empty" when it holds nothing but its CRLF (the header end).
                            let body =
                                if lf >= 0 && n = runLength then
                                    piece.Slice(0, n - 1)
                                else
                                    piece

                            let body =
                                if body.Length > 0 && body[body.Length - 1] = 13uy then
                                    body.Slice(0, body.Length - 1)
                                else
                                    body

                            if body.Length > 0 then
                                lineIsEmpty <- false

                        piece.CopyTo(destination.Slice written)
                        lastWasCr <- piece[n - 1] = 13uy
                        written <- written + n
                        scratchStart <- scratchStart + n
                        dotStuffed <- false

                        if n = runLength && lf >= 0 then
                            if inHeader && lineIsEmpty then
                                inHeader <- false
                            elif not inHeader then
                                bodyLines <- bodyLines + 1L

                            atLineStart <- true
                            lineIsEmpty <- true
                        else
                            atLineStart <- false
            elif closingCrlf > 0 then
                destination[written] <- (if closingCrlf = 2 then 13uy else 10uy)
                written <- written + 1
                closingCrlf <- closingCrlf - 1
            elif
                transfer.Alteration <> BodyAlteration.NoTerminatorThenClose
                && terminatorSent < terminator.Length
            then
                let n = min (terminator.Length - terminatorSent) (limit - written)
                ReadOnlySpan(terminator, terminatorSent, n).CopyTo(destination.Slice written)
                written <- written + n
                terminatorSent <- terminatorSent + n
            else
                go <- false

        bodyOctets <- bodyOctets + int64 written
        ignore this
        written

    /// True when the body must stop here and the connection close (DisconnectAfter reached).
    member _.DisconnectNow =
        match transfer.Alteration with
        | BodyAlteration.DisconnectAfter n -> bodyOctets >= n
        | _ -> false

    interface IDisposable with
        member _.Dispose() =
            match reader with
            | Some r ->
                r.Dispose()
                reader <- None
            | None -> ()

/// Turns the server machine's outputs into octets and host actions, applying the wire-level
/// faults (latency, drip, disconnect after N octets, bare LF, STLS injection).
type internal Transmitter(faults: FaultPlan) =
    let queue = Queue<ServerOutput>()

    /// Task.Delay accepts 0 to about 49 days; a plan asking for more or less is clamped.
    static let clamp (d: TimeSpan) =
        if d < TimeSpan.Zero then TimeSpan.Zero
        elif d > TimeSpan.FromDays 30.0 then TimeSpan.FromDays 30.0
        else d

    let latency =
        faults.Faults
        |> List.tryPick (function
            | Fault.Latency d -> Some(clamp d)
            | _ -> None)

    let drip =
        faults.Faults
        |> List.tryPick (function
            | Fault.Drip d -> Some(clamp d)
            | _ -> None)

    let cutAt =
        faults.Faults
        |> List.tryPick (function
            | Fault.DisconnectAfterOctets n -> Some n
            | _ -> None)

    let bareLf = faults.Faults |> List.contains Fault.BareLineFeeds

    let inject =
        faults.Faults
        |> List.tryPick (function
            | Fault.InjectAfterStls b -> Some b
            | _ -> None)

    let endlessLine = Array.create 4096 120uy

    // One read buffer for every body this connection serves, one at a time.
    let scratch = Array.zeroCreate<byte> 16384

    // An action met while several replies were being packed into one write; returned next.
    let mutable held: WireAction option = None
    // A failure met while packing (a message stream that cannot be read): the octets packed
    // before it are written first, then it is raised.
    let mutable heldError: exn option = None

    let mutable current: ServerOutput option = None
    let mutable replyOffset = 0
    let mutable body: BodyStreamer option = None
    let mutable delayed = false // latency already paid for the current item
    let mutable dripPause = false
    let mutable sent = 0L
    let mutable injected = false
    let mutable terminal: WireAction option = None

    /// Octets sent so far.
    member _.Sent = sent

    /// Queues a machine output that concerns the wire (store outputs are the connection's).
    member _.Enqueue(output: ServerOutput) = queue.Enqueue output

    /// True when nothing is queued or in progress.
    member _.IsIdle = current.IsNone && queue.Count = 0

    member private this.Advance() =
        current <- None
        replyOffset <- 0
        delayed <- false

        match body with
        | Some b ->
            (b :> IDisposable).Dispose()
            body <- None
        | None -> ()

    /// The next thing the host must do; Write n means destination[0..n) holds octets to send.
    member private this.NextOne(destination: Span<byte>) : WireAction =
        match terminal with
        | Some action -> action
        | None ->
            if current.IsNone && queue.Count > 0 then
                current <- Some(queue.Dequeue())

            let room =
                let byDrip =
                    if drip.IsSome then
                        min 1 destination.Length
                    else
                        destination.Length

                match cutAt with
                | Some n -> int (min (int64 byDrip) (max 0L (n - sent)))
                | None -> byDrip

            match current with
            | _ when cutAt.IsSome && sent >= cutAt.Value ->
                terminal <- Some WireAction.Close
                WireAction.Close
            | None -> WireAction.ReadInput
            // One pause per reply: a body goes out right after its status line.
            | Some(ServerOutput.Reply _ | ServerOutput.EndlessLine) when latency.IsSome && not delayed ->
                delayed <- true
                WireAction.Delay latency.Value
            | Some _ when dripPause ->
                dripPause <- false
                WireAction.Delay drip.Value
            | Some output ->
                let written =
                    match output with
                    | ServerOutput.Reply bytes ->
                        let n = min room (bytes.Length - replyOffset)
                        ReadOnlySpan(bytes, replyOffset, n).CopyTo destination
                        replyOffset <- replyOffset + n

                        if replyOffset = bytes.Length then
                            this.Advance()

                        n
                    | ServerOutput.Body transfer ->
                        let streamer =
                            match body with
                            | Some b -> b
                            | None ->
                                let b = new BodyStreamer(transfer, scratch)
                                body <- Some b
                                b

                        let n = streamer.Fill(destination.Slice(0, room))

                        if streamer.DisconnectNow then
                            terminal <- Some WireAction.Close
                        elif streamer.Finished then
                            if streamer.ClosesAfter then
                                terminal <- Some WireAction.Close

                            this.Advance()

                        n
                    | ServerOutput.EndlessLine ->
                        let n = min room endlessLine.Length
                        ReadOnlySpan(endlessLine, 0, n).CopyTo destination
                        n
                    | ServerOutput.StartTls ->
                        match inject with
                        | Some bytes when not injected ->
                            injected <- true
                            let n = min room bytes.Length
                            ReadOnlySpan(bytes, 0, n).CopyTo destination
                            n
                        | _ -> -1
                    | ServerOutput.Close ->
                        this.Advance()
                        terminal <- Some WireAction.Close
                        -2
                    | ServerOutput.Hang ->
                        terminal <- Some WireAction.Hang
                        -3
                    | _ ->
                        this.Advance()
                        0

                match written with
                | -1 ->
                    this.Advance()
                    WireAction.StartTls
                | -2 -> WireAction.Close
                | -3 -> WireAction.Hang
                | 0 ->
                    match terminal with
                    | Some action -> action
                    | None -> this.NextOne destination
                | n ->
                    let n =
                        if bareLf then
                            // "Broken UNIX servers" (peers.md §4.1): no CR at all.
                            let span = destination.Slice(0, n)
                            let mutable k = 0

                            for i in 0 .. n - 1 do
                                if span[i] <> 13uy then
                                    span[k] <- span[i]
                                    k <- k + 1

                            k
                        else
                            n

                    sent <- sent + int64 n

                    if drip.IsSome && drip.Value > TimeSpan.Zero then
                        dripPause <- true

                    if n = 0 then
                        this.NextOne destination
                    else
                        WireAction.Write n

    /// The next thing the host must do; Write n means destination[0..n) holds octets to send.
    /// Without drip or latency faults, as many replies as fit are packed into one write: a
    /// pipelined client then costs one system call per buffer, not two per message.
    member this.Next(destination: Span<byte>) : WireAction =
        match heldError, held with
        | Some error, _ ->
            heldError <- None
            raise error
        | None, Some action ->
            held <- None
            action
        | None, None ->
            match this.NextOne destination with
            | WireAction.Write n when drip.IsNone && latency.IsNone ->
                let mutable total = n
                let mutable go = true

                while go && total < destination.Length && not this.IsIdle do
                    let next =
                        try
                            Ok(this.NextOne(destination.Slice total))
                        with error ->
                            Error error

                    match next with
                    | Ok(WireAction.Write m) -> total <- total + m
                    | Ok WireAction.ReadInput -> go <- false
                    | Ok other ->
                        held <- Some other
                        go <- false
                    | Error error ->
                        heldError <- Some error
                        go <- false

                WireAction.Write total
            | action -> action

    interface IDisposable with
        member this.Dispose() = this.Advance()
