namespace Pop3Functional.Core

open System

/// The outcome of looking for one protocol line in the received bytes.
[<RequireQualifiedAccess; Struct>]
type FramedLine =
    /// A complete line without its line end; Next is where the bytes after it start.
    | Line of line: ReadOnlyMemory<byte> * next: int * bareLf: bool
    /// No line end yet: the caller keeps Partial (the bytes so far, copied) for the next chunk.
    | NeedMore of partial: byte[]
    /// The line already exceeds the limit without a line end (CVE-2013-1752).
    | TooLong

/// Incremental CRLF framing with a length cap (RFC 1939 §3). Only an incomplete line is copied
/// between chunks; a line that lies within one chunk is a slice of it.
[<RequireQualifiedAccess>]
module LineFramer =
    /// Finds the next line in chunk from position start, continuing partial (the incomplete line
    /// carried from earlier chunks). maxOctets counts the line end too.
    let next (maxOctets: int) (partial: byte[]) (chunk: ReadOnlyMemory<byte>) (start: int) : FramedLine =
        let span = chunk.Span.Slice start
        let lf = span.IndexOf Bytes.LF

        if lf < 0 then
            let total = partial.Length + span.Length

            if total >= maxOctets then
                FramedLine.TooLong
            else
                let buffer = Array.zeroCreate<byte> total
                partial.CopyTo(buffer, 0)
                span.CopyTo(buffer.AsSpan partial.Length)
                FramedLine.NeedMore buffer
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
                        partial.CopyTo(buffer, 0)
                        span.Slice(0, lf).CopyTo(buffer.AsSpan partial.Length)
                        ReadOnlyMemory buffer

                let hasCr = line.Length > 0 && line.Span[line.Length - 1] = Bytes.CR
                let line = if hasCr then line.Slice(0, line.Length - 1) else line
                FramedLine.Line(line, start + lf + 1, not hasCr)
