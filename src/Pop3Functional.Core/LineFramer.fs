namespace Pop3Functional.Core

open System

/// The bytes of a line still waiting for its line end, kept as the copied pieces of the chunks
/// they came in: each chunk is copied once, and the pieces are joined once, when the line is
/// complete (a server dripping one byte at a time costs linear, not quadratic, work).
[<Sealed>]
type PartialLine private (pieces: byte[] list, length: int) =
    static let empty = PartialLine([], 0)

    /// No bytes held.
    static member Empty = empty

    /// A partial line holding a copy of these bytes.
    static member OfArray(bytes: byte[]) =
        if bytes.Length = 0 then
            empty
        else
            PartialLine([ Array.copy bytes ], bytes.Length)

    /// Octets held.
    member _.Length = length

    /// A partial line with a copy of more bytes after these; this one is unchanged.
    member this.Append(bytes: ReadOnlySpan<byte>) =
        if bytes.Length = 0 then
            this
        else
            PartialLine(bytes.ToArray() :: pieces, length + bytes.Length)

    /// Copies the held bytes, in order, to the start of destination.
    member _.CopyTo(destination: Span<byte>) =
        let mutable at = length

        for piece in pieces do
            at <- at - piece.Length
            piece.AsSpan().CopyTo(destination.Slice at)

    /// The held bytes as one array.
    member this.ToArray() =
        let bytes = Array.zeroCreate<byte> length
        this.CopyTo(bytes.AsSpan())
        bytes

/// The outcome of looking for one protocol line in the received bytes.
[<RequireQualifiedAccess; Struct>]
type FramedLine =
    /// A complete line without its line end; Next is where the bytes after it start.
    | Line of line: ReadOnlyMemory<byte> * next: int * bareLf: bool
    /// No line end yet: the caller keeps Partial (the bytes so far, copied) for the next chunk.
    | NeedMore of partial: PartialLine
    /// The line already exceeds the limit without a line end (CVE-2013-1752).
    | TooLong

/// Incremental CRLF framing with a length cap (RFC 1939 §3). Only an incomplete line is copied
/// between chunks; a line that lies within one chunk is a slice of it.
[<RequireQualifiedAccess>]
module LineFramer =
    /// Finds the next line in chunk from position start, continuing partial (the incomplete line
    /// carried from earlier chunks). maxOctets counts the line end too.
    let next (maxOctets: int) (partial: PartialLine) (chunk: ReadOnlyMemory<byte>) (start: int) : FramedLine =
        let span = chunk.Span.Slice start
        let lf = span.IndexOf Bytes.LF

        if lf < 0 then
            if partial.Length + span.Length >= maxOctets then
                FramedLine.TooLong
            else
                FramedLine.NeedMore(partial.Append span)
        else
            let total = partial.Length + lf + 1

            if total > maxOctets then
                FramedLine.TooLong
            else
                let line: ReadOnlyMemory<byte> =
                    if partial.Length = 0 then
                        chunk.Slice(start, lf)
                    else
                        let buffer = Array.zeroCreate<byte>(partial.Length + lf)
                        partial.CopyTo(buffer.AsSpan())
                        span.Slice(0, lf).CopyTo(buffer.AsSpan partial.Length)
                        ReadOnlyMemory buffer

                let hasCr = line.Length > 0 && line.Span[line.Length - 1] = Bytes.CR
                let line = if hasCr then line.Slice(0, line.Length - 1) else line
                FramedLine.Line(line, start + lf + 1, not hasCr)
