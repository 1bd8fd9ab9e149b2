/// The RETR reply streams the benchmarks decode, and the three ways of decoding them: the F#
/// session (Session.step), the C#-facing Pop3Machine, and a hand-written baseline.
module Pop3Functional.Benchmarks.Workload

open System
open System.Text
open Pop3Functional.Core

/// The size of each read the shell would hand to the core (DESIGN §7: 16 KiB receive buffers).
[<Literal>]
let ChunkSize = 16 * 1024

/// A pre-built server reply stream: N RETR replies back to back, as the server sends them.
type ReplyStream =
    {
        Name: string
        /// The bytes on the wire: "+OK ..." status lines, dot-stuffed bodies, ".CRLF" terminators.
        Wire: byte[]
        /// The octets of each body after unstuffing (what BodyEnded must report), message 1 first.
        Octets: uint64[]
        /// Body lines in all messages (line ends counted, the terminator not).
        BodyLines: int64
        /// Lines that start with "." and were therefore stuffed on the wire.
        StuffedLines: int64
    }

    member r.Messages = r.Octets.Length
    member r.DecodedOctets = Array.sum r.Octets

/// Printable text for the line bodies (base64-like, as attachments look on the wire).
let private alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"B

/// Builds `messages` replies of `bodyOctets` octets each (after unstuffing), made of lines of
/// `lineOctets` octets plus CRLF (the last line shorter if needed), every `stuffEvery`-th line
/// starting with "." (so stuffed on the wire; 0 for none).
let build (name: string) (messages: int) (bodyOctets: int) (lineOctets: int) (stuffEvery: int) : ReplyStream =
    let wire = new IO.MemoryStream()
    let octets = Array.zeroCreate<uint64> messages
    let mutable lines = 0L
    let mutable stuffed = 0L
    let line = Array.zeroCreate<byte>(lineOctets + 2)
    let mutable globalLine = 0L

    for m in 0 .. messages - 1 do
        let status = Encoding.ASCII.GetBytes $"+OK {bodyOctets} octets\r\n"
        wire.Write(status, 0, status.Length)
        let mutable left = bodyOctets

        while left > 0 do
            // A line of n octets of text plus CRLF; never leave a remainder shorter than a line end.
            let n =
                if left >= lineOctets + 2 + 3 then lineOctets
                elif left <= lineOctets + 2 then left - 2
                else left - 5

            let n = max n 1

            for i in 0 .. n - 1 do
                line[i] <- alphabet[int ((globalLine * 7L + int64 i) % int64 alphabet.Length)]

            let dotted =
                stuffEvery > 0 && globalLine % int64 stuffEvery = int64 (stuffEvery / 2)

            if dotted then
                line[0] <- byte '.'
                wire.WriteByte(byte '.')
                stuffed <- stuffed + 1L

            line[n] <- 13uy
            line[n + 1] <- 10uy
            wire.Write(line, 0, n + 2)
            left <- left - (n + 2)
            lines <- lines + 1L
            globalLine <- globalLine + 1L

        octets[m] <- uint64 bodyOctets
        wire.Write(".\r\n"B, 0, 3)

    {
        Name = name
        Wire = wire.ToArray()
        Octets = octets
        BodyLines = lines
        StuffedLines = stuffed
    }

/// Plaintext options with plaintext credentials allowed, pipelining when offered.
let options =
    { Options.Default with
        Tls = TlsMode.NoTls
        AllowPlaintextCredentials = true
    }

let private capa = "+OK\r\nUSER\r\nPIPELINING\r\nTOP\r\nUIDL\r\n.\r\n"B

/// The server's side of the login, in the order the core needs it (greeting, CAPA, USER, PASS,
/// then the core's own CAPA and STAT).
let private loginScript (count: int) (octets: uint64) =
    [
        "+OK ready <1.2@bench>\r\n"B
        capa
        "+OK\r\n"B
        "+OK logged in\r\n"B
        capa
        Encoding.ASCII.GetBytes $"+OK {count} {octets}\r\n"
    ]

let private fail fmt =
    Printf.kprintf (fun s -> raise (InvalidOperationException s)) fmt

/// A session logged in to the stream's mailbox, with RETR 1..N submitted (the first window sent).
/// Returns the session and how many RETR commands it has sent so far.
let sessionReady (stream: ReplyStream) : SessionState * int =
    let script = loginScript stream.Messages stream.DecodedOctets
    let mutable s = Session.create options
    let mutable retrSent = 0

    let step input =
        let struct (next, outs) = Session.step s input
        s <- next

        for o in outs do
            match o with
            | Output.Send cmd when cmd.LogText.StartsWith "RETR" -> retrSent <- retrSent + 1
            | Output.Emit(Event.Failed e) -> fail "login failed: %s" e.Message
            | Output.Emit(Event.Refused(_, e)) -> fail "refused: %s" e.Message
            | _ -> ()

    let received (b: byte[]) = step (Input.Received(ReadOnlyMemory b))
    received script[0]
    received script[1]
    step (Input.Submit(1L, Request.User "bench"))
    received script[2]
    step (Input.Submit(2L, Request.Pass(Secret.FromString "pw")))
    received script[3]
    received script[4]
    received script[5]

    if s.Phase.Kind <> PhaseKind.Transaction then
        fail "not logged in: %A" s.Phase.Kind

    for n in 1 .. stream.Messages do
        step (Input.Submit(int64 (n + 2), Request.Retr(uint64 n)))

    s, retrSent

/// What a decoding run saw; checked against the stream after every run.
type Tally =
    {
        mutable Bodies: int
        mutable BodyBytes: uint64
        mutable Slices: int64
        mutable RetrSent: int
    }

let newTally retrSent =
    {
        Bodies = 0
        BodyBytes = 0UL
        Slices = 0L
        RetrSent = retrSent
    }

/// Throws unless every body ended, in order, with the right octet count, and every RETR was sent.
let verify (stream: ReplyStream) (t: Tally) =
    if t.Bodies <> stream.Messages then
        fail "%s: %d of %d bodies ended" stream.Name t.Bodies stream.Messages

    if t.RetrSent <> stream.Messages then
        fail "%s: %d of %d RETR commands sent" stream.Name t.RetrSent stream.Messages

    if t.BodyBytes <> stream.DecodedOctets then
        fail "%s: %d body octets delivered, %d expected" stream.Name t.BodyBytes stream.DecodedOctets

/// Feeds the stream through the F# session in ChunkSize reads. Each read is copied into one
/// receive buffer first, as a socket read would be; body slices point into that buffer.
let runSession (stream: ReplyStream) (session: SessionState) (retrSent: int) (receive: byte[]) : Tally =
    let wire = stream.Wire
    let t = newTally retrSent
    let mutable s = session
    let mutable bodyBytes = 0UL
    let mutable pos = 0

    while pos < wire.Length do
        let n = min ChunkSize (wire.Length - pos)
        Buffer.BlockCopy(wire, pos, receive, 0, n)
        pos <- pos + n

        let struct (next, outs) =
            Session.step s (Input.Received(ReadOnlyMemory(receive, 0, n)))

        s <- next
        let mutable o = outs

        while not o.IsEmpty do
            match o.Head with
            | Output.Emit(Event.BodyData(_, data)) ->
                bodyBytes <- bodyBytes + uint64 data.Length
                t.Slices <- t.Slices + 1L
            | Output.Emit(Event.BodyEnded(id, octets)) ->
                let expected = stream.Octets[t.Bodies]

                if id <> int64 (t.Bodies + 3) || octets <> expected || bodyBytes <> expected then
                    fail
                        "%s: body #%d ended with %d octets (%d delivered), %d expected"
                        stream.Name
                        id
                        octets
                        bodyBytes
                        expected

                t.BodyBytes <- t.BodyBytes + octets
                t.Bodies <- t.Bodies + 1
                bodyBytes <- 0UL
            | Output.Send _ -> t.RetrSent <- t.RetrSent + 1
            | Output.Emit(Event.Answered _) -> ()
            | other -> fail "%s: unexpected output %A" stream.Name other

            o <- o.Tail

    verify stream t
    t

/// A Pop3Machine logged in to the stream's mailbox, with RETR 1..N submitted.
let machineReady (stream: ReplyStream) : Pop3Machine * int =
    let script = loginScript stream.Messages stream.DecodedOctets
    let m = Pop3Machine options
    let mutable retrSent = 0

    let drain () =
        let mutable o = Unchecked.defaultof<Pop3Output>

        while m.TryDequeue(&o) do
            if o.Kind = Pop3OutputKind.Send && o.LogText.StartsWith "RETR" then
                retrSent <- retrSent + 1
            elif o.EventKind = Pop3EventKind.Failed || o.EventKind = Pop3EventKind.Refused then
                fail "machine login: %s" o.Failure.Message

    let feed (b: byte[]) =
        m.Feed(ReadOnlyMemory b)
        drain ()

    feed script[0]
    feed script[1]
    m.Submit(1L, Pop3Request.User "bench")
    drain ()
    feed script[2]
    m.Submit(2L, Pop3Request.Pass(Secret.FromString "pw"))
    drain ()
    feed script[3]
    feed script[4]
    feed script[5]

    if m.State <> "Transaction" then
        fail "machine not logged in: %s" m.State

    for n in 1 .. stream.Messages do
        m.Submit(int64 (n + 2), Pop3Request.Retr(uint64 n))
        drain ()

    m, retrSent

/// The same as runSession through Pop3Machine.Feed and TryDequeue.
let runMachine (stream: ReplyStream) (m: Pop3Machine) (retrSent: int) (receive: byte[]) : Tally =
    let wire = stream.Wire
    let t = newTally retrSent
    let mutable bodyBytes = 0UL
    let mutable pos = 0
    let mutable o = Unchecked.defaultof<Pop3Output>

    while pos < wire.Length do
        let n = min ChunkSize (wire.Length - pos)
        Buffer.BlockCopy(wire, pos, receive, 0, n)
        pos <- pos + n
        m.Feed(ReadOnlyMemory(receive, 0, n))

        while m.TryDequeue(&o) do
            match o.Kind with
            | Pop3OutputKind.Send -> t.RetrSent <- t.RetrSent + 1
            | Pop3OutputKind.Event ->
                match o.EventKind with
                | Pop3EventKind.BodyData ->
                    bodyBytes <- bodyBytes + uint64 o.Bytes.Length
                    t.Slices <- t.Slices + 1L
                | Pop3EventKind.BodyEnded ->
                    let expected = stream.Octets[t.Bodies]

                    if
                        o.RequestId <> int64 (t.Bodies + 3)
                        || o.Octets <> expected
                        || bodyBytes <> expected
                    then
                        fail
                            "%s: body #%d ended with %d octets (%d delivered), %d expected"
                            stream.Name
                            o.RequestId
                            o.Octets
                            bodyBytes
                            expected

                    t.BodyBytes <- t.BodyBytes + o.Octets
                    t.Bodies <- t.Bodies + 1
                    bodyBytes <- 0UL
                | Pop3EventKind.Answered -> ()
                | k -> fail "%s: unexpected event %A" stream.Name k
            | k -> fail "%s: unexpected output %A" stream.Name k

    verify stream t
    t

/// The cheapest correct decoder by hand: copy each read once into the receive buffer (as the
/// socket read does), then find every "LF ." with a vectorised IndexOf and classify it as a
/// stuffed dot or the ".CRLF" terminator, across read boundaries; the decoded octets are the body
/// octets minus the stuffed dots. No events, no state machine, no allocation.
let runBaseline (stream: ReplyStream) (receive: byte[]) : Tally =
    let wire = stream.Wire
    let t = newTally stream.Messages
    let lfDot = "\n."B
    // Bytes between terminators (status line + stuffed body + terminator) and stuffed dots seen.
    let mutable replyBytes = 0L
    let mutable stuffedInReply = 0L
    let mutable statusBytes = -1L
    // 0: nothing held; 1: last byte was LF; 2: last bytes were LF "."; 3: LF "." CR.
    let mutable held = 0
    let mutable pos = 0

    let ended (replyEnd: int64) =
        // replyEnd: octets of this reply up to and including its terminator.
        let body = replyEnd - statusBytes - 3L - stuffedInReply
        t.BodyBytes <- t.BodyBytes + uint64 body

        if uint64 body <> stream.Octets[t.Bodies] then
            fail "baseline: body %d has %d octets, %d expected" (t.Bodies + 1) body stream.Octets[t.Bodies]

        t.Bodies <- t.Bodies + 1

    while pos < wire.Length do
        let n = min ChunkSize (wire.Length - pos)
        Buffer.BlockCopy(wire, pos, receive, 0, n)
        pos <- pos + n
        let span = ReadOnlySpan(receive, 0, n)
        let mutable p = 0

        // Finish a pattern held across the read boundary (consuming only the bytes it matches).
        while held <> 0 && p < n do
            let c = span[p]

            match held with
            | 1 ->
                if c = byte '.' then
                    held <- 2
                    p <- p + 1
                else
                    held <- 0
            | 2 ->
                if c = 13uy then
                    held <- 3
                    p <- p + 1
                else
                    stuffedInReply <- stuffedInReply + 1L
                    held <- 0
            | _ ->
                if c = 10uy then
                    ended (replyBytes + int64 p + 1L)
                    replyBytes <- -(int64 p + 1L)
                    stuffedInReply <- 0L
                    statusBytes <- -1L
                    p <- p + 1
                else
                    stuffedInReply <- stuffedInReply + 1L

                held <- 0

        while p < n do
            if statusBytes < 0L then
                // The status line of the next reply.
                let lf = span.Slice(p).IndexOf 10uy

                if lf < 0 then
                    // The status line continues in the next read.
                    p <- n
                else
                    statusBytes <- replyBytes + int64 p + int64 lf + 1L
                    // At the status line's LF: the first "LF ." of the body may start here.
                    p <- p + lf

            let at =
                if p < n then
                    span.Slice(p).IndexOf(ReadOnlySpan lfDot)
                else
                    -2

            if at = -2 then
                ()
            elif at < 0 then
                held <- (if span[n - 1] = 10uy then 1 else 0)
                p <- n
            else
                let q = p + at + 2

                if q >= n then
                    held <- 2
                    p <- n
                elif span[q] <> 13uy then
                    stuffedInReply <- stuffedInReply + 1L
                    p <- q
                elif q + 1 >= n then
                    held <- 3
                    p <- n
                elif span[q + 1] = 10uy then
                    ended (replyBytes + int64 q + 2L)
                    replyBytes <- -(int64 q + 2L)
                    stuffedInReply <- 0L
                    statusBytes <- -1L
                    p <- q + 2
                else
                    stuffedInReply <- stuffedInReply + 1L
                    p <- q

        replyBytes <- replyBytes + int64 n

    verify stream t
    t
