namespace Pop3Functional.Core

open System

/// Where the body decoder stands between chunks. Only a possible terminator start is held:
/// a "." at the start of a line, or "." and CR (RFC 1939 §3).
[<RequireQualifiedAccess; Struct>]
type BodyCursor =
    /// Inside a line.
    | MidLine
    /// At the start of a line (after an LF, or at the start of the body).
    | LineStart
    /// A "." at the start of a line was the last byte seen.
    | HeldDot
    /// "." then CR at the start of a line were the last bytes seen.
    | HeldDotCr
    /// Inside a line, the last byte a CR: without the bare-LF quirk a line starts only after CRLF.
    | AfterCr

/// The result of decoding one chunk of a multi-line body.
[<Struct>]
type BodyProgress =
    {
        /// Where decoding stands; pass it to the next call with the next chunk.
        Cursor: BodyCursor
        /// Position in the chunk after the bytes consumed (after the terminator when Ended).
        Next: int
        /// True when the terminating "." line was found: the body is complete.
        Ended: bool
        /// The terminator was ".LF" (a bare-LF server).
        BareLfTerminator: bool
    }

/// Streams a multi-line body: dot-unstuffing by skipping, the terminator found across any chunk
/// boundary, data handed out as slices of the received chunk (no copy, no per-line allocation).
[<RequireQualifiedAccess>]
module BodyDecoder =
    /// Decodes chunk from start. emit receives each data slice, in order; a slice may be the
    /// static CR of Bytes.cr when a held ".CR" turned out to be data.
    let decode
        (bareLfTerminator: bool)
        (cursor: BodyCursor)
        (chunk: ReadOnlyMemory<byte>)
        (start: int)
        (emit: ReadOnlyMemory<byte> -> unit)
        : BodyProgress =
        let span = chunk.Span
        let len = chunk.Length
        let mutable p = start
        let mutable segStart = start
        let mutable cursor = cursor
        let mutable ended = false
        let mutable bareLf = false
        let mutable held = false

        let flush upTo =
            if upTo > segStart then
                emit (chunk.Slice(segStart, upTo - segStart))

        // Resolves a held "." or ".CR" from the previous chunk.
        match cursor with
        | BodyCursor.HeldDot when p < len ->
            let c = span[p]

            if c = Bytes.CR then
                if p + 1 < len then
                    if span[p + 1] = Bytes.LF then
                        ended <- true
                        p <- p + 2
                    else
                        // "." CR x: the dot was stuffing; CR is data (it is in this chunk).
                        segStart <- p
                        cursor <- BodyCursor.MidLine
                else
                    cursor <- BodyCursor.HeldDotCr
                    p <- len
                    segStart <- len
            elif c = Bytes.LF && bareLfTerminator then
                ended <- true
                bareLf <- true
                p <- p + 1
            else
                segStart <- p
                cursor <- BodyCursor.MidLine
        | BodyCursor.HeldDotCr when p < len ->
            if span[p] = Bytes.LF then
                ended <- true
                p <- p + 1
            else
                emit (ReadOnlyMemory Bytes.cr)
                segStart <- p
                cursor <- BodyCursor.MidLine
        | _ -> ()

        while not ended && not held && p < len do
            match cursor with
            | BodyCursor.LineStart ->
                if span[p] = Bytes.Dot then
                    flush p

                    if p + 1 >= len then
                        cursor <- BodyCursor.HeldDot
                        held <- true
                        p <- len
                        segStart <- len
                    else
                        let c = span[p + 1]

                        if c = Bytes.CR then
                            if p + 2 >= len then
                                cursor <- BodyCursor.HeldDotCr
                                held <- true
                                p <- len
                                segStart <- len
                            elif span[p + 2] = Bytes.LF then
                                ended <- true
                                p <- p + 3
                                segStart <- p
                            else
                                segStart <- p + 1
                                p <- p + 1
                                cursor <- BodyCursor.MidLine
                        elif c = Bytes.LF && bareLfTerminator then
                            ended <- true
                            bareLf <- true
                            p <- p + 2
                            segStart <- p
                        else
                            // A stuffed dot: skip it (RFC 1939 §3).
                            segStart <- p + 1
                            p <- p + 1
                            cursor <- BodyCursor.MidLine
                else
                    cursor <- BodyCursor.MidLine
            | BodyCursor.AfterCr ->
                // The previous chunk ended in CR: an LF now completes a CRLF line end.
                if span[p] = Bytes.LF then
                    p <- p + 1
                    cursor <- BodyCursor.LineStart
                else
                    cursor <- BodyCursor.MidLine
            | _ when bareLfTerminator ->
                // Any LF ends a line (the bare-LF quirk).
                let rest = span.Slice p
                let at = rest.IndexOf(ReadOnlySpan Bytes.lfDot)

                if at < 0 then
                    cursor <-
                        if span[len - 1] = Bytes.LF then
                            BodyCursor.LineStart
                        else
                            BodyCursor.MidLine

                    p <- len
                else
                    p <- p + at + 1
                    cursor <- BodyCursor.LineStart
            | _ ->
                // Only CRLF ends a line (RFC 1939 §3); a bare LF is data.
                let rest = span.Slice p
                let at = rest.IndexOf(ReadOnlySpan Bytes.crlfDot)

                if at < 0 then
                    cursor <-
                        if span[len - 1] = Bytes.CR then
                            BodyCursor.AfterCr
                        elif len >= 2 && span[len - 2] = Bytes.CR && span[len - 1] = Bytes.LF then
                            BodyCursor.LineStart
                        else
                            BodyCursor.MidLine

                    p <- len
                else
                    p <- p + at + 2
                    cursor <- BodyCursor.LineStart

        if not ended then
            flush len
            p <- len

        {
            Cursor = (if ended then BodyCursor.LineStart else cursor)
            Next = p
            Ended = ended
            BareLfTerminator = bareLf
        }
