/// End-to-end serving throughput: a raw pipelined reader (the lower bound of any client) fetches
/// a mailbox over loopback TCP from the simulator's host, and, with --against, from another server
/// in the same run, so the two figures are comparable on a noisy machine.
module Pop3Functional.Benchmarks.Serving

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Security
open System.Net.Sockets
open System.Text
open System.Threading.Tasks
open Pop3Functional.Simulator

/// One mailbox shape.
type MailboxSet =
    {
        Name: string
        Messages: int
        Size: int
        Tls: bool
        /// The account suffix on another server: each shape has its own maildrop there.
        Key: string
    }

    /// The set's name and how it travels, e.g. "B: 50 × 1 MiB, implicit TLS".
    member s.Title = s.Name + (if s.Tls then ", implicit TLS" else ", plain")

    /// The set's letter and how it travels, e.g. "B TLS".
    member s.Short = s.Key.ToUpperInvariant() + (if s.Tls then " TLS" else " plain")

/// The three shapes of issue #7 (DESIGN §7), plaintext first, then over implicit TLS.
let sets =
    [
        for tls in [ false; true ] do
            {
                Name = "A: 2,000 × 4 KiB"
                Messages = 2000
                Size = 4096
                Tls = tls
                Key = "a"
            }

            {
                Name = "B: 50 × 1 MiB"
                Messages = 50
                Size = 1024 * 1024
                Tls = tls
                Key = "b"
            }

            {
                Name = "C: 1 × 50 MiB"
                Messages = 1
                Size = 50 * 1024 * 1024
                Tls = tls
                Key = "c"
            }
    ]

let private terminator = "\r\n.\r\n"B

/// Reads one CRLF-terminated line byte by byte (only for the few status lines before RETRs).
let private readLine (stream: Stream) =
    let line = ResizeArray<byte>()
    let mutable go = true

    while go do
        let b = stream.ReadByte()

        if b < 0 then
            raise (IOException "the server closed the connection")

        line.Add(byte b)

        if b = 10 then
            go <- false

    Encoding.ASCII.GetString(line.ToArray())

let private expectOk (stream: Stream) =
    let line = readLine stream

    if not (line.StartsWith "+OK") then
        raise (IOException $"the server said: {line.TrimEnd()}")

/// A TCP connection to endpoint (Nagle off), with tls under a TLS handshake that accepts any
/// certificate; the stream owns the socket, which is closed if connecting or the handshake fails.
let openStream (endpoint: IPEndPoint) (tls: bool) : Stream =
    let socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp)

    try
        socket.NoDelay <- true
        socket.Connect endpoint
        let network = new NetworkStream(socket, true)

        if tls then
            let ssl =
                new SslStream(network, false, RemoteCertificateValidationCallback(fun _ _ _ _ -> true))

            ssl.AuthenticateAsClient("localhost")
            ssl
        else
            network
    with _ ->
        socket.Dispose()
        reraise ()

/// Fetches every message of the maildrop with pipelined RETRs; returns (octets read, messages).
let fetch (endpoint: IPEndPoint) (tls: bool) (user: string) (password: string) (messages: int) =
    use stream = openStream endpoint tls
    expectOk stream
    stream.Write(Encoding.ASCII.GetBytes $"USER {user}\r\n")
    expectOk stream
    stream.Write(Encoding.ASCII.GetBytes $"PASS {password}\r\n")
    expectOk stream

    // Every RETR at once from another task, so reading never waits for writing.
    let commands = StringBuilder()

    for i in 1..messages do
        commands.Append("RETR ").Append(i).Append("\r\n") |> ignore

    let writer =
        Task.Run(fun () ->
            let bytes = Encoding.ASCII.GetBytes(commands.ToString())
            stream.Write(bytes, 0, bytes.Length)
            stream.Flush())

    let buffer = Array.zeroCreate<byte> 65536
    let carry = Array.zeroCreate<byte> 8
    let mutable carried = 0
    let mutable found = 0
    let mutable octets = 0L

    while found < messages do
        let n = stream.Read(buffer, 0, buffer.Length)

        if n = 0 then
            raise (IOException $"the server closed the connection after {found} messages")

        octets <- octets + int64 n
        // The terminator may straddle reads: look at the last four octets of the previous read too.
        let window = Array.zeroCreate<byte>(carried + min n 4)
        Array.Copy(carry, window, carried)
        Array.Copy(buffer, 0, window, carried, min n 4)
        let mutable at = 0

        while at <= window.Length - terminator.Length do
            let i =
                ReadOnlySpan(window, at, window.Length - at).IndexOf(ReadOnlySpan terminator)

            if i >= 0 && at + i < carried then
                found <- found + 1
                at <- at + i + terminator.Length
            else
                at <- window.Length

        let span = ReadOnlySpan(buffer, 0, n)
        let mutable from = 0

        while from <= n - terminator.Length do
            let i = span.Slice(from).IndexOf(ReadOnlySpan terminator)

            if i < 0 then
                from <- n
            else
                found <- found + 1
                from <- from + i + terminator.Length

        carried <- min 4 n
        Array.Copy(buffer, n - carried, carry, 0, carried)

    writer.Wait()
    // Wait for +OK to QUIT: the server holds the maildrop lock until then.
    stream.Write(Encoding.ASCII.GetBytes "QUIT\r\n")
    expectOk stream
    octets, found

/// host:port[:tlsport], e.g. 127.0.0.1:10110:10995 for a Dovecot started for the comparison.
let parseEndpoint (endpoint: string) =
    let parts = endpoint.Split ':'
    let address = IPAddress.Parse parts[0]
    let plain = IPEndPoint(address, int parts[1])

    let tls =
        if parts.Length > 2 then
            Some(IPEndPoint(address, int parts[2]))
        else
            None

    plain, tls

/// A simulator serving `set` on loopback, transcript off.
let startSimulator (set: MailboxSet) =
    let options =
        { SimulatorOptions.Default with
            RecordTranscript = false
        }

    let sim = (Pop3Simulator.StartAsync options).GetAwaiter().GetResult()
    let box = sim.Mailbox("bench", "bench")

    for i in 1 .. set.Messages do
        // Text with CRLF lines, some starting with '.', built once per message.
        box.Add(MessageContent.OfBytes((MessageContent.Generated(int64 set.Size, i)).ToArray()))
        |> ignore

    sim

/// The middle value (the upper one of an even count).
let median (values: float list) =
    let sorted = List.sort values
    sorted[sorted.Length / 2]

/// Runs each set `runs` times against the simulator (and `against`, if given: its accounts are
/// the user name followed by the set's key, "a", "b" or "c"); prints medians.
let run (runs: int) (against: (IPEndPoint * IPEndPoint option * string * string) option) =
    printfn "Raw pipelined reader over loopback; median of %d runs per row (one warm-up run first)." runs
    printfn ""
    printfn "%-32s %-12s %12s %12s %10s" "set" "server" "MB/s" "messages/s" "ratio"

    for set in sets do
        use sim = startSimulator set

        let measure (endpoint: IPEndPoint) (user: string) (password: string) =
            fetch endpoint set.Tls user password set.Messages |> ignore

            [
                for _ in 1..runs do
                    let watch = Stopwatch.StartNew()
                    let octets, _ = fetch endpoint set.Tls user password set.Messages
                    let seconds = watch.Elapsed.TotalSeconds
                    float octets / 1e6 / seconds, float set.Messages / seconds
            ]

        let simEndpoint = if set.Tls then sim.TlsEndpoint else sim.Endpoint
        let simRows = measure simEndpoint "bench" "bench"
        let simMb = median (simRows |> List.map fst)
        let simMsgs = median (simRows |> List.map snd)
        printfn "%-32s %-12s %12.1f %12.0f %10s" set.Title "simulator" simMb simMsgs ""

        match against with
        | Some(plain, tlsEndpoint, user, password) ->
            let endpoint = if set.Tls then tlsEndpoint else Some plain

            match endpoint with
            | Some e ->
                let rows = measure e (user + set.Key) password
                let mb = median (rows |> List.map fst)
                printfn "%-32s %-12s %12.1f %12.0f %10.2f" "" "other" mb (median (rows |> List.map snd)) (simMb / mb)
            | None -> ()
        | None -> ()
