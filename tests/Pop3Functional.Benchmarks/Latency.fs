/// Per-message latency lock-step against the real servers of build/scripts/pop3-servers.sh: one
/// RETR at a time, each timed from the command to the last octet of its reply. A server that sends
/// the status line and the body in separate small writes with Nagle on waits for the client's ACK
/// of the first; a client that delays that ACK (Linux: up to 40 ms) stalls on such messages, 22 to
/// 44 ms each on Courier and Cyrus (DESIGN §9). The shell sets TCP_QUICKACK after
/// reads to avoid it; the raw lock-step reader, which does not, shows what the stall looks like.
module Pop3Functional.Benchmarks.Latency

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Net
open System.Text
open System.Threading
open System.Threading.Tasks
open Pop3Functional.Core
open Pop3Functional.Shell
open Pop3Functional.Benchmarks.Serving
open Pop3Functional.Benchmarks.EndToEnd

/// A message that took this long or longer counts as stalled (the shortest stall seen is 22 ms).
let private stallMicroseconds = 20_000.0

/// The raw reader lock-step: USER/PASS, then RETR n, read to its terminator, RETR n+1, ...; QUIT.
/// No TCP_QUICKACK. Returns each message's time in microseconds.
let fetchLockStep (endpoint: IPEndPoint) (user: string) (password: string) (messages: int) =
    use stream = openStream endpoint false
    let buffer = Array.zeroCreate<byte> 65536
    // The last octets read, so that an end straddling two reads is seen.
    let tail = Array.zeroCreate<byte> 5

    /// Reads one reply: until the octets read end with `ending` (one reply is due at a time).
    let reply (ending: byte[]) =
        let mutable filled = 0
        let mutable first = true
        let mutable go = true

        while go do
            let n = stream.Read(buffer, 0, buffer.Length)

            if n = 0 then
                raise (IOException "the server closed the connection")

            if first && buffer[0] <> byte '+' then
                raise (IOException "the server did not answer +OK")

            first <- false

            if n >= tail.Length then
                Array.Copy(buffer, n - tail.Length, tail, 0, tail.Length)
                filled <- tail.Length
            else
                let keep = min filled (tail.Length - n)
                Array.Copy(tail, filled - keep, tail, 0, keep)
                Array.Copy(buffer, 0, tail, keep, n)
                filled <- keep + n

            go <-
                not (
                    filled >= ending.Length
                    && ReadOnlySpan(tail, filled - ending.Length, ending.Length).SequenceEqual(ReadOnlySpan ending)
                )

    let line = "\r\n"B
    reply line
    stream.Write(Encoding.ASCII.GetBytes $"USER {user}\r\n")
    reply line
    stream.Write(Encoding.ASCII.GetBytes $"PASS {password}\r\n")
    reply line

    let times =
        [|
            for n in 1..messages do
                let start = Stopwatch.GetTimestamp()
                stream.Write(Encoding.ASCII.GetBytes $"RETR {n}\r\n")
                reply "\r\n.\r\n"B
                Stopwatch.GetElapsedTime(start).TotalMicroseconds
        |]

    stream.Write(Encoding.ASCII.GetBytes "QUIT\r\n")
    reply line
    times

/// The shell lock-step: pipelining off, then RetrieveAsync for 1..messages one after another, each
/// into a sink that drops the octets. Returns each message's time in microseconds.
let fetchShellLockStep (endpoint: IPEndPoint) (user: string) (password: string) (messages: int) =
    task {
        let lockStep =
            Pop3ConnectionOptions(
                Host = endpoint.Address.ToString(),
                Port = endpoint.Port,
                Tls = TlsMode.NoTls,
                AllowPlaintextCredentials = true,
                Core = Options.Default.WithPipelining false
            )

        use cancel = new CancellationTokenSource(limit)
        let ct = cancel.Token
        let! connected = Pop3Connection.ConnectAsync(lockStep, ct)
        let connection = ok "connect" connected
        let mutable quit = false

        try
            use secret = Secret.FromString password
            let! login = connection.LoginAsync(user, secret, ct)
            let stat = ok "login" login

            if stat.Count < uint64 messages then
                failwith $"the maildrop holds {stat.Count} messages, fewer than {messages}"

            let sink =
                Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>(fun _ _ -> ValueTask.CompletedTask)

            let times = Array.zeroCreate<float> messages

            for n in 1..messages do
                let start = Stopwatch.GetTimestamp()
                let! retrieved = connection.RetrieveAsync(uint64 n, sink, ct)
                ok "RETR" retrieved |> ignore
                times[n - 1] <- Stopwatch.GetElapsedTime(start).TotalMicroseconds

            let! bye = connection.QuitAsync ct
            quit <- true
            ok "QUIT" bye |> ignore
            return times
        finally
            if not quit then
                connection.DisposeAsync().AsTask().Wait()
    }

/// The lock-step clients: label, and a session fetching messages 1..n from an endpoint as a user.
let private clients: (string * (IPEndPoint -> string -> string -> int -> float[])) list =
    [
        "ours (RetrieveAsync, lock-step)",
        fun endpoint user password messages ->
            (fetchShellLockStep endpoint user password messages).GetAwaiter().GetResult()
        "raw lock-step reader (no TCP_QUICKACK)", fetchLockStep
    ]

/// KEY=VALUE lines of the servers.env that pop3-servers.sh writes (comments skipped).
let private readManifest (path: string) =
    File.ReadAllLines path
    |> Array.filter (fun line -> line.Contains '=' && not (line.StartsWith '#'))
    |> Array.map (fun line ->
        let at = line.IndexOf '='
        line[.. at - 1], line[at + 1 ..])
    |> dict

/// The value at `share` (0..1] of the sorted values: the smallest that at least that share of
/// them do not exceed.
let private percentile (share: float) (sorted: float[]) =
    sorted[max 0 (int (Math.Ceiling(share * float sorted.Length)) - 1)]

let private micros (value: float) =
    value.ToString("N0", CultureInfo.InvariantCulture)

/// --latency SERVERS_ENV: messages 1..30 (the seeded mailbox's small ones, 1 to 32 KiB; the 31st is
/// 3 MiB) from Dovecot, Courier and Cyrus over plaintext, lock-step, by the shell and by the raw
/// lock-step reader, alternately, each session on an account of its own (no session waits for
/// another's maildrop lock), up to `sessions` per client and server. Both clients first warm up
/// against an in-process simulator, so that the shell runs compiled code from its first message.
/// Writes Markdown to standard output: median, p99 and worst time per message, and the messages
/// that took 20 ms or more.
let run (manifest: string) (sessions: int) =
    let messages = 30
    let servers = readManifest manifest

    let warmUp =
        {
            Name = "warm-up"
            Messages = messages
            Size = 16 * 1024
            Tls = false
            Key = ""
        }

    do
        eprintfn "latency: warming up against the simulator"
        use sim = startSimulator warmUp

        for _, session in clients do
            let watch = Stopwatch.StartNew()

            while watch.Elapsed.TotalSeconds < 2.0 do
                session sim.Endpoint "bench" "bench" messages |> ignore

    printfn "## Per-message latency, lock-step (build/scripts/pop3-servers.sh)"
    printfn ""

    printfn
        "Messages 1–%d of the seeded mailbox (1 to 32 KiB each) over plaintext, one RETR at a time, each timed from sending RETR to the last octet of its reply."
        messages

    printfn
        "Up to %d sessions per client and server, the two clients alternating, each session on an account of its own; both clients warmed up first."
        sessions

    printfn
        "A delayed-ACK stall (Nagle on the server meeting a delayed ACK of the client) costs a message tens of milliseconds (DESIGN §9: 22 to 44 ms): one taking ≥ 20 ms counts as stalled. The raw reader sets no TCP_QUICKACK: it shows the stall that ours avoids."

    printfn ""
    printfn "| server | client | messages | median (µs) | p99 (µs) | worst (µs) | ≥ 20 ms |"
    printfn "|---|---|---:|---:|---:|---:|---:|"

    let rows =
        [
            for server in [ "Dovecot"; "Courier"; "Cyrus" ] do
                let key = server.ToUpperInvariant()
                eprintfn "latency: %s" server

                let endpoint = IPEndPoint(IPAddress.Loopback, int servers[$"{key}_PORT"])

                let password = servers["PASSWORD"]
                let accounts = servers[$"{key}_ACCOUNTS"].Split ','
                let perClient = min sessions (accounts.Length / clients.Length)
                let times = [ for _ in clients -> ResizeArray<float>() ]

                for s in 0 .. perClient - 1 do
                    for c in 0 .. clients.Length - 1 do
                        // The first client of each pair alternates, so neither always follows the other.
                        let i = (s + c) % clients.Length
                        let _, session = clients[i]
                        let account = accounts[s * clients.Length + c]
                        times[i].AddRange(session endpoint account password messages)

                for (label, _), measured in List.zip clients times do
                    let sorted = Array.sort (measured.ToArray())

                    let stalled =
                        sorted |> Array.filter (fun t -> t >= stallMicroseconds) |> Array.length

                    printfn
                        "| %s | %s | %d | %s | %s | %s | %d |"
                        server
                        label
                        sorted.Length
                        (micros (percentile 0.5 sorted))
                        (micros (percentile 0.99 sorted))
                        (micros (Array.last sorted))
                        stalled

                    server, label, stalled, sorted.Length
        ]

    printfn ""

    let ours = fst clients.Head

    let stalls =
        rows |> List.filter (fun (_, label, stalled, _) -> label = ours && stalled > 0)

    if stalls.IsEmpty then
        printfn "No delayed-ACK stall for ours: no message took 20 ms or more on Dovecot, Courier or Cyrus (**met**)."
    else
        let where =
            String.Join("; ", [ for server, _, stalled, total in stalls -> $"{server}: {stalled} of {total}" ])

        printfn "Ours took 20 ms or more on some messages (**not met**): %s." where

    printfn ""
