namespace Pop3Functional.Simulator

open System
open System.IO
open System.Text

/// The octets of one stored message, read on demand so that a message of any size is served in
/// constant memory. Content from bytes or a generator is pure; content from a stream is read by
/// the host that serves it (the server machine itself never reads content).
[<AbstractClass>]
type MessageContent() =
    /// The number of octets (the size LIST reports, before dot-stuffing; RFC 1939 §5).
    abstract Length: int64

    /// Copies octets starting at offset into destination; returns how many were copied (0 at the end).
    abstract CopyTo: offset: int64 * destination: Span<byte> -> int

    /// Content held in memory.
    static member OfBytes(bytes: byte[]) : MessageContent =
        ArgumentNullException.ThrowIfNull bytes
        BytesContent(ReadOnlyMemory bytes)

    /// Content held in memory.
    static member OfMemory(bytes: ReadOnlyMemory<byte>) : MessageContent = BytesContent bytes

    /// UTF-8 text; bare LF line ends are turned into CRLF, as a mail store would keep them.
    static member OfText(text: string) : MessageContent =
        ArgumentNullException.ThrowIfNull text
        let crlf = text.Replace("\r\n", "\n").Replace("\n", "\r\n")
        BytesContent(ReadOnlyMemory(Encoding.UTF8.GetBytes crlf))

    /// Deterministic text of exactly length octets, generated on demand from a seed: a few
    /// headers, then lines of printable ASCII (some starting with '.'), each ending in CRLF.
    static member Generated(length: int64, seed: int) : MessageContent =
        if length < 0L then
            raise (ArgumentOutOfRangeException(nameof length, "The length must be zero or more."))

        GeneratedContent(length, seed)

    /// Content read from a stream opened on demand (each serving opens a fresh stream; the
    /// host disposes of it). length must be the stream's exact length.
    static member OfStream(openStream: Func<Stream>, length: int64) : MessageContent =
        ArgumentNullException.ThrowIfNull openStream

        if length < 0L then
            raise (ArgumentOutOfRangeException(nameof length, "The length must be zero or more."))

        StreamContent(openStream, length)

    /// Several contents served one after the other.
    static member Concat(parts: MessageContent seq) : MessageContent =
        ArgumentNullException.ThrowIfNull parts
        ConcatContent(Array.ofSeq parts)

    /// Several contents served one after the other.
    static member Concat([<ParamArray>] parts: MessageContent[]) : MessageContent =
        ArgumentNullException.ThrowIfNull parts
        ConcatContent(Array.copy parts)

    /// True when the header (up to the first empty line, at most 64 KiB) holds a raw octet above
    /// 127. A message that starts with its empty line has an empty header (RFC 5322 §2.1).
    static member HasEightBitHeader(content: MessageContent) : bool =
        let head = Array.zeroCreate<byte>(int (min content.Length 65536L))
        let mutable n = 0
        let mutable go = true

        while go && n < head.Length do
            let read = content.CopyTo(int64 n, Span(head, n, head.Length - n))
            if read = 0 then go <- false else n <- n + read

        let head = ReadOnlySpan(head, 0, n)

        let endOfHeader =
            if head.StartsWith(ReadOnlySpan("\r\n"B)) then
                0
            else
                head.IndexOf(ReadOnlySpan("\r\n\r\n"B))

        let header =
            if endOfHeader >= 0 then
                head.Slice(0, endOfHeader)
            else
                head

        header.IndexOfAnyInRange(128uy, 255uy) >= 0

    /// Reads the whole content into an array (for tests and small messages).
    member this.ToArray() : byte[] =
        if this.Length > int64 Array.MaxLength then
            raise (InvalidOperationException "The message is too large for one array.")

        let result = Array.zeroCreate<byte>(int this.Length)
        let mutable at = 0

        while at < result.Length do
            let n = this.CopyTo(int64 at, Span(result, at, result.Length - at))

            if n = 0 then
                raise (InvalidOperationException "The content ended before its announced length.")

            at <- at + n

        result

and internal BytesContent(bytes: ReadOnlyMemory<byte>) =
    inherit MessageContent()
    override _.Length = int64 bytes.Length

    override _.CopyTo(offset, destination) =
        if offset >= int64 bytes.Length then
            0
        else
            let source = bytes.Span.Slice(int offset)
            let n = min source.Length destination.Length
            source.Slice(0, n).CopyTo destination
            n

/// Text built from fixed-size lines: line k is one of 64 lines made from the seed, chosen by k, so
/// any offset is served by block copies without generating what precedes it.
and internal GeneratedContent(length: int64, seed: int) =
    inherit MessageContent()

    static let lineOctets = 78 // 76 characters + CRLF

    static let alphabet =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_=+/()!?"B

    static let mix (value: uint64) =
        let z = (value ^^^ (value >>> 30)) * 0xBF58476D1CE4E5B9UL
        let z = (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        z ^^^ (z >>> 31)

    let header =
        Encoding.ASCII.GetBytes(
            $"From: generator@simulator.invalid\r\nSubject: generated message {seed}\r\nMessage-ID: <{seed}.{length}@simulator.invalid>\r\n\r\n"
        )

    // 64 lines of 78 octets; every fourth starts with '.' to exercise dot-stuffing (RFC 1939 §3).
    let lines =
        Array.init (64 * lineOctets) (fun at ->
            let line = at / lineOctets
            let column = at % lineOctets

            if column = 76 then
                13uy
            elif column = 77 then
                10uy
            elif column = 0 && line % 4 = 3 then
                46uy
            else
                let value = mix (uint64 (uint32 seed) * 0x9E3779B97F4A7C15UL + uint64 at)
                alphabet[int (value % uint64 alphabet.Length)])

    override _.Length = length

    override _.CopyTo(offset, destination) =
        let available = length - offset

        if available <= 0L then
            0
        else
            let n = int (min (int64 destination.Length) available)
            let headerLength = int64 header.Length
            let mutable i = 0

            while i < n do
                let at = offset + int64 i

                if at >= length - 2L then
                    // The last two octets are always CRLF, so the message ends with a complete line.
                    destination[i] <- (if at = length - 2L then 13uy else 10uy)
                    i <- i + 1
                elif at < headerLength then
                    let count = int (min (headerLength - at) (int64 (n - i)))
                    let count = int (min (int64 count) (length - 2L - at))
                    ReadOnlySpan(header, int at, count).CopyTo(destination.Slice i)
                    i <- i + count
                else
                    let body = at - headerLength
                    let line = body / int64 lineOctets
                    let column = int (body % int64 lineOctets)
                    let pattern = int (mix (line + 1L |> uint64) % 64UL)
                    let count = min (lineOctets - column) (n - i)
                    let count = int (min (int64 count) (length - 2L - at))
                    ReadOnlySpan(lines, pattern * lineOctets + column, count).CopyTo(destination.Slice i)
                    i <- i + count

            // A line's own CR right before the closing CRLF would be a bare CR.
            let beforeEnd = length - 3L - offset

            if beforeEnd >= 0L && beforeEnd < int64 n && destination[int beforeEnd] = 13uy then
                destination[int beforeEnd] <- 120uy

            n

and internal StreamContent(openStream: Func<Stream>, length: int64) =
    inherit MessageContent()
    member _.Open() = openStream.Invoke()
    override _.Length = length

    override _.CopyTo(offset, destination) =
        // Random access is for small reads (tests, ToArray); serving reads the stream sequentially.
        use stream = openStream.Invoke()

        if stream.CanSeek then
            stream.Seek(offset, SeekOrigin.Begin) |> ignore
        else
            let skip = Array.zeroCreate<byte> 8192
            let mutable left = offset

            while left > 0L do
                let n = stream.Read(skip, 0, int (min left 8192L))

                if n = 0 then left <- 0L else left <- left - int64 n

        let wanted = int (min (int64 destination.Length) (max 0L (length - offset)))
        stream.Read(destination.Slice(0, wanted))

and internal ConcatContent(parts: MessageContent[]) =
    inherit MessageContent()
    let total = parts |> Array.sumBy (fun p -> p.Length)
    member _.Parts = parts
    override _.Length = total

    override _.CopyTo(offset, destination) =
        let mutable start = 0L
        let mutable result = 0
        let mutable i = 0

        while result = 0 && i < parts.Length do
            let part = parts[i]

            if offset < start + part.Length then
                result <- part.CopyTo(offset - start, destination)

            start <- start + part.Length
            i <- i + 1

        result

/// Reads a content once from start to end, as serving does: a stream is opened once and read
/// sequentially, a concatenation part by part (random access through CopyTo would reopen a
/// stream for every piece).
[<AbstractClass>]
type internal ContentReader() =
    /// Copies the next octets into destination; 0 at the end.
    abstract Read: destination: Span<byte> -> int
    /// Releases an open stream.
    abstract Dispose: unit -> unit

    interface IDisposable with
        member this.Dispose() = this.Dispose()

    /// A reader positioned at the start of content.
    static member Open(content: MessageContent) : ContentReader =
        match content with
        | :? StreamContent as s -> new StreamReaderOfContent(s)
        | :? ConcatContent as c -> new ConcatReader(c.Parts)
        | other -> new OffsetReader(other)

and internal OffsetReader(content: MessageContent) =
    inherit ContentReader()
    let mutable offset = 0L

    override _.Read(destination) =
        let n = content.CopyTo(offset, destination)
        offset <- offset + int64 n
        n

    override _.Dispose() = ()

and internal StreamReaderOfContent(content: StreamContent) =
    inherit ContentReader()
    let mutable stream: Stream = null
    let mutable offset = 0L

    override _.Read(destination) =
        if offset >= content.Length then
            0
        else
            if isNull stream then
                stream <- content.Open()

            let wanted = int (min (int64 destination.Length) (content.Length - offset))
            let n = stream.Read(destination.Slice(0, wanted))
            offset <- offset + int64 n
            n

    override _.Dispose() =
        if not (isNull stream) then
            stream.Dispose()
            stream <- null

and internal ConcatReader(parts: MessageContent[]) =
    inherit ContentReader()
    let mutable index = 0
    let mutable current: ContentReader option = None

    override this.Read(destination) =
        let mutable result = 0

        while result = 0 && index < parts.Length do
            let reader =
                match current with
                | Some r -> r
                | None ->
                    let r = ContentReader.Open parts[index]
                    current <- Some r
                    r

            result <- reader.Read destination

            if result = 0 then
                reader.Dispose()
                current <- None
                index <- index + 1

        result

    override _.Dispose() =
        match current with
        | Some r ->
            r.Dispose()
            current <- None
        | None -> ()
