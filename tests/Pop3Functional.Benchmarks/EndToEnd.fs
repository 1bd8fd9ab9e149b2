/// End to end: the client shell (Pop3Connection) fetches each mailbox set from the simulator over
/// loopback, next to the raw pipelined reader of Serving.fs on the same simulator in the same run,
/// so the ratio shell / raw says how much of the wire's speed the shell keeps. A lock-step variant
/// of the raw reader runs too: it shows what lock-step RETR alone costs, shell or not.
module Pop3Functional.Benchmarks.EndToEnd

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Security
open System.Text
open System.Threading
open System.Threading.Tasks
open Pop3Functional.Core
open Pop3Functional.Shell
open Pop3Functional.Benchmarks.Serving

/// The most one fetch may take before the run fails (the shell's operations are cancelled).
let private limit = TimeSpan.FromSeconds 60.0

let private options (endpoint: IPEndPoint) (tls: bool) =
    Pop3ConnectionOptions(
        Host = endpoint.Address.ToString(),
        Port = endpoint.Port,
        Tls = (if tls then TlsMode.Implicit else TlsMode.NoTls),
        AllowPlaintextCredentials = true,
        TlsServerName = "localhost",
        CertificateValidation = RemoteCertificateValidationCallback(fun _ _ _ _ -> true)
    )

let private ok (what: string) (result: Result<'T, Pop3Error>) =
    match result with
    | Ok value -> value
    | Error error -> failwith $"{what}: {error}"

/// Connect, login, RETR 1..messages with RetrieveManyAsync (pipelined as the core decides: the
/// simulator offers PIPELINING), each body into a sink that only counts octets, QUIT. Returns
/// (body octets, messages).
let fetchShell (options: Pop3ConnectionOptions) (user: string) (password: string) (messages: int) =
    task {
        use cancel = new CancellationTokenSource(limit)
        let ct = cancel.Token
        let! connected = Pop3Connection.ConnectAsync(options, ct)
        let connection = ok "connect" connected
        let mutable quit = false

        try
            use secret = Secret.FromString password
            let! login = connection.LoginAsync(user, secret, ct)
            let stat = ok "login" login

            if stat.Count <> uint64 messages then
                failwith $"the maildrop holds {stat.Count} messages, not {messages}"

            let octets = ref 0L

            let sink =
                Func<uint64, ReadOnlyMemory<byte>, CancellationToken, ValueTask>(fun _ bytes _ ->
                    octets.Value <- octets.Value + int64 bytes.Length
                    ValueTask.CompletedTask)

            let numbers = [ for n in 1..messages -> uint64 n ]
            let results = connection.RetrieveManyAsync(numbers, sink, ct).GetAsyncEnumerator(ct)
            let mutable more = true

            while more do
                let! next = results.MoveNextAsync()
                more <- next

                if more then
                    ok "RETR" results.Current |> ignore

            do! results.DisposeAsync()

            let! bye = connection.QuitAsync ct
            quit <- true
            ok "QUIT" bye |> ignore

            if uint64 octets.Value <> stat.Octets then
                failwith $"the sink counted {octets.Value} octets, the maildrop holds {stat.Octets}"

            return octets.Value, messages
        finally
            if not quit then
                connection.DisposeAsync().AsTask().Wait()
    }

/// The raw reader again, but lock-step: RETR n, read to its terminator, then RETR n+1. Not a
/// baseline for the ratio: it shows what lock-step RETR alone costs (the shell pipelines).
let fetchLockStep (endpoint: IPEndPoint) (tls: bool) (user: string) (password: string) (messages: int) =
    use stream = openStream endpoint tls
    let buffer = Array.zeroCreate<byte> 65536
    // The last octets read, so that an end straddling two reads is seen.
    let tail = Array.zeroCreate<byte> 5
    let mutable octets = 0L

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
            octets <- octets + int64 n

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
    octets <- 0L

    for n in 1..messages do
        stream.Write(Encoding.ASCII.GetBytes $"RETR {n}\r\n")
        reply "\r\n.\r\n"B

    let retrieved = octets
    stream.Write(Encoding.ASCII.GetBytes "QUIT\r\n")
    reply line
    retrieved, messages

/// --sim-server N: this process serves set N's mailbox on loopback until its stdin closes; it
/// prints "ready <port> <tls port>" first. The e2e run keeps the server in its own process, so the
/// client's time, threads and allocations are not mixed with the server's.
let serveSet (index: int) =
    use sim = startSimulator sets[index]
    printfn "ready %d %d" sim.Endpoint.Port sim.TlsEndpoint.Port
    Console.Out.Flush()
    Console.In.ReadToEnd() |> ignore

/// A simulator serving one set in a child process (this program with --sim-server).
type private ServerProcess(index: int) =
    let child =
        let path = Environment.ProcessPath

        let start =
            ProcessStartInfo(path, RedirectStandardInput = true, RedirectStandardOutput = true)

        if Path.GetFileNameWithoutExtension path = "dotnet" then
            start.ArgumentList.Add(Reflection.Assembly.GetEntryAssembly().Location)

        start.ArgumentList.Add "--sim-server"
        start.ArgumentList.Add(string index)
        Process.Start start

    let ports =
        match child.StandardOutput.ReadLine() with
        | null -> failwith "the simulator process exited before it was ready"
        | line ->
            match line.Split ' ' with
            | [| "ready"; plain; tls |] -> int plain, int tls
            | _ -> failwith $"the simulator process said {line}"

    member _.Endpoint = IPEndPoint(IPAddress.Loopback, fst ports)
    member _.TlsEndpoint = IPEndPoint(IPAddress.Loopback, snd ports)

    interface IDisposable with
        member _.Dispose() =
            child.StandardInput.Close()
            child.WaitForExit()

/// The server set `index` is fetched from, with what ends it: a child simulator ("bench"/"bench"),
/// or `against`, whose accounts are the user prefix followed by the set's key. Returns (what to
/// dispose, endpoint, user, password).
let private serverFor (index: int) (against: (IPEndPoint * IPEndPoint option * string * string) option) =
    let set = sets[index]

    match against with
    | None ->
        let sim = new ServerProcess(index)
        (sim :> IDisposable), (if set.Tls then sim.TlsEndpoint else sim.Endpoint), "bench", "bench"
    | Some(plain, tls, prefix, password) ->
        let nothing =
            { new IDisposable with
                member _.Dispose() = ()
            }

        nothing, (if set.Tls then tls.Value else plain), prefix + set.Key, password

/// One sample: whole fetches repeated for at least a second (one fetch of a small set lasts a few
/// hundredths of a second, too short to time on a shared machine); returns seconds and allocated
/// bytes (every thread of this process: the client's) per fetch.
let private measure (fetch: unit -> unit) =
    GC.Collect()
    GC.WaitForPendingFinalizers()
    let before = GC.GetTotalAllocatedBytes true
    let watch = Stopwatch.StartNew()
    let mutable fetches = 0

    while fetches = 0 || watch.Elapsed.TotalSeconds < 1.0 do
        fetch ()
        fetches <- fetches + 1

    let seconds = watch.Elapsed.TotalSeconds
    let after = GC.GetTotalAllocatedBytes true
    seconds / float fetches, float (after - before) / float fetches

/// For each set: one simulator process, two seconds of warm-up runs of each client, then `runs` rounds of (raw,
/// lock-step raw, shell); prints medians. MB/s counts the same wire octets for every client (what
/// the pipelined raw reader read: status lines, stuffed bodies, terminators).
/// `against`: another server (plain endpoint, implicit-TLS endpoint if any, user prefix, password),
/// whose accounts are the prefix followed by the set's key ("a", "b", "c"), e.g. the Dovecot of
/// build/scripts/dovecot-bench.sh; without it, the simulator in a child process.
let run (runs: int) (against: (IPEndPoint * IPEndPoint option * string * string) option) =
    match against with
    | Some(plain, _, _, _) ->
        printfn "End to end over loopback against the server at %O: the raw pipelined reader (the" plain
    | None -> printfn "End to end over loopback, the simulator in a child process: the raw pipelined reader (the"

    printfn "baseline), the same reader lock-step, and the shell (Pop3Connection.RetrieveManyAsync, pipelined)."
    printfn "Median of %d interleaved samples per row (each: whole fetches repeated for at least 1 s), after" runs
    printfn "two seconds of warm-up fetches by each client."
    printfn "MB/s = wire octets / time (MB = 10^6); ratio = messages/s / the raw reader's messages/s;"
    printfn "B/message = GC.GetTotalAllocatedBytes(true) of the client process across one run / messages;"
    printfn "shell - raw = the shell's B/message minus the raw reader's."
    printfn ""

    printfn "%-22s %-14s %10s %12s %8s %12s" "set" "client" "MB/s" "messages/s" "ratio" "B/message"

    let measurable =
        sets
        |> List.indexed
        |> List.filter (fun (_, set) ->
            match against with
            | Some(_, None, _, _) -> not set.Tls
            | _ -> true)

    for index, set in measurable do
        let server, endpoint, user, password = serverFor index against
        use _ = server
        let shellOptions = options endpoint set.Tls

        let clients =
            [
                "raw reader", (fun () -> fetch endpoint set.Tls user password set.Messages)
                "raw lock-step", (fun () -> fetchLockStep endpoint set.Tls user password set.Messages)
                "shell", (fun () -> (fetchShell shellOptions user password set.Messages).GetAwaiter().GetResult())
            ]

        let wire = fst ((snd clients.Head) ())

        // Warm-up: each client for two seconds, so that every client is measured with its code
        // fully compiled (tiered JIT); a single warm-up run left the shell's pump at tier 0.
        for _, client in clients do
            let watch = Stopwatch.StartNew()

            while watch.Elapsed.TotalSeconds < 2.0 do
                client () |> ignore

        // Interleaved, so that a noisy moment hits every client alike.
        let rounds =
            [
                for _ in 1..runs do
                    [ for _, client in clients -> measure (client >> ignore) ]
            ]

        let messages = float set.Messages
        let mb = float wire / 1e6

        let medians =
            clients
            |> List.mapi (fun i (name, _) ->
                let seconds = median (rounds |> List.map (fun round -> fst round[i]))
                let bytes = median (rounds |> List.map (fun round -> snd round[i])) / messages
                name, seconds, bytes)

        let _, rawSeconds, rawBytes = medians.Head

        for i, (name, seconds, bytes) in List.indexed medians do
            printfn
                "%-22s %-14s %10.1f %12.0f %8s %12.0f"
                (if i = 0 then set.Name else "")
                name
                (mb / seconds)
                (messages / seconds)
                (if i = 0 then
                     ""
                 else
                     (rawSeconds / seconds).ToString("0.00"))
                bytes

        let _, _, shellBytes = List.last medians
        printfn "%-22s %-14s %10s %12s %8s %12.0f" "" "shell - raw" "" "" "" (shellBytes - rawBytes)

/// --e2e-profile N SECONDS [host:port[:tlsport] user password]: the shell alone fetches set N over
/// and over for SECONDS, from a child simulator or from the given server (accounts as in `run`),
/// for a profiler attached to this process (e.g. perf with DOTNET_PerfMapEnabled=1).
let profileShell (index: int) (seconds: float) (against: (IPEndPoint * IPEndPoint option * string * string) option) =
    let set = sets[index]
    let server, endpoint, user, password = serverFor index against
    use _ = server
    let shellOptions = options endpoint set.Tls
    // Reads, counted from the shell's octets-received counter (one measurement per read).
    let mutable reads = 0L
    use listener = new Metrics.MeterListener()

    listener.InstrumentPublished <-
        fun instrument l ->
            if instrument.Name = "pop3.client.octets_received" then
                l.EnableMeasurementEvents instrument

    listener.SetMeasurementEventCallback<int64>(fun _ _ _ _ -> reads <- reads + 1L)
    listener.Start()
    let watch = Stopwatch.StartNew()
    let mutable runs = 0

    while watch.Elapsed.TotalSeconds < seconds do
        (fetchShell shellOptions user password set.Messages).GetAwaiter().GetResult()
        |> ignore

        runs <- runs + 1

    let messages = float (runs * set.Messages)

    printfn
        "%d fetches of %s in %.1f s: %.0f messages/s, %.2f reads/message, client CPU %.1f us/message"
        runs
        set.Name
        watch.Elapsed.TotalSeconds
        (messages / watch.Elapsed.TotalSeconds)
        (float reads / messages)
        (Process.GetCurrentProcess().TotalProcessorTime.TotalMicroseconds / messages)
