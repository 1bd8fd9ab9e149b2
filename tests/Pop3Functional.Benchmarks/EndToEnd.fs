/// End to end: three clients fetch each mailbox set over loopback from the same server in the same
/// run, interleaved: the raw pipelined reader of Serving.fs (the lower bound of any client), the
/// shell (Pop3Connection.RetrieveManyAsync) and MailKit's Pop3Client.GetStreams (the peer of issue
/// #7; a benchmark-only reference). Each client runs in a child process of its own, so that its
/// peak working set and its allocations are its own and nothing else's.
module Pop3Functional.Benchmarks.EndToEnd

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Net
open System.Net.Security
open System.Threading
open System.Threading.Tasks
open MailKit.Net.Pop3
open MailKit.Security
open Pop3Functional.Core
open Pop3Functional.Shell
open Pop3Functional.Benchmarks.Serving

/// The most one fetch may take before the run fails (the shell's operations are cancelled).
let internal limit = TimeSpan.FromSeconds 60.0

let private options (endpoint: IPEndPoint) (tls: bool) =
    Pop3ConnectionOptions(
        Host = endpoint.Address.ToString(),
        Port = endpoint.Port,
        Tls = (if tls then TlsMode.Implicit else TlsMode.NoTls),
        AllowPlaintextCredentials = true,
        TlsServerName = "localhost",
        CertificateValidation = RemoteCertificateValidationCallback(fun _ _ _ _ -> true)
    )

let internal ok (what: string) (result: Result<'T, Pop3Error>) =
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

/// MailKit 4.18 the way its documentation fetches a maildrop: Connect, Authenticate, GetStreams
/// (pipelined RETRs when the server offers PIPELINING; each message buffered whole in memory),
/// Disconnect with QUIT. Returns (body octets, messages), checked against STAT as the shell's are.
let fetchMailKit (endpoint: IPEndPoint) (tls: bool) (user: string) (password: string) (messages: int) =
    use client = new Pop3Client(Timeout = int limit.TotalMilliseconds)
    client.ServerCertificateValidationCallback <- RemoteCertificateValidationCallback(fun _ _ _ _ -> true)

    let security =
        if tls then
            SecureSocketOptions.SslOnConnect
        else
            SecureSocketOptions.None

    client.Connect(endpoint.Address.ToString(), endpoint.Port, security)
    // USER/PASS, as the shell and the raw reader log in: no SASL exchange and no APOP, whose round
    // trips would differ from theirs.
    client.AuthenticationMechanisms.Clear()
    client.Capabilities <- client.Capabilities &&& ~~~Pop3Capabilities.Apop
    client.Authenticate(user, password)

    if client.Count <> messages then
        failwith $"the maildrop holds {client.Count} messages, not {messages}"

    let stat = client.Size
    let mutable octets = 0L

    for stream in client.GetStreams(0, messages) do
        octets <- octets + stream.Length
        stream.Dispose()

    client.Disconnect true

    if octets <> stat then
        failwith $"MailKit's streams hold {octets} octets, the maildrop {stat}"

    octets, messages

/// --sim-server N: this process serves set N's mailbox on loopback until its stdin closes; it
/// prints "ready <port> <tls port>" first. The e2e run keeps the server in its own process, so the
/// client's time, threads and allocations are not mixed with the server's.
let serveSet (index: int) =
    use sim = startSimulator sets[index]
    printfn "ready %d %d" sim.Endpoint.Port sim.TlsEndpoint.Port
    Console.Out.Flush()
    Console.In.ReadToEnd() |> ignore

/// This program again in a child process with `arguments`, its standard input and output piped
/// (line commands in, line answers out); its standard error is the console's.
let private startSelf (arguments: string list) =
    let path = Environment.ProcessPath

    let start =
        ProcessStartInfo(path, RedirectStandardInput = true, RedirectStandardOutput = true)

    if Path.GetFileNameWithoutExtension path = "dotnet" then
        start.ArgumentList.Add(Reflection.Assembly.GetEntryAssembly().Location)

    for argument in arguments do
        start.ArgumentList.Add argument

    Process.Start start

/// A simulator serving one set in a child process (this program with --sim-server).
type private ServerProcess(index: int) =
    let child = startSelf [ "--sim-server"; string index ]

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

/// The clients compared, each run in a child process of its own.
type Client =
    /// The raw pipelined reader of Serving.fs: the lower bound.
    | RawReader
    /// Pop3Connection.RetrieveManyAsync into a sink that counts octets.
    | Shell
    /// MailKit's Pop3Client.GetStreams.
    | MailKitStreams

    /// The name the child process is started with.
    member c.Key =
        match c with
        | RawReader -> "raw"
        | Shell -> "shell"
        | MailKitStreams -> "mailkit"

    member c.Label =
        match c with
        | RawReader -> "raw reader"
        | Shell -> "ours (Pop3Connection)"
        | MailKitStreams -> "MailKit 4.18 GetStreams"

    static member All = [ RawReader; Shell; MailKitStreams ]

    static member Named(key: string) =
        match Client.All |> List.tryFind (fun c -> c.Key = key) with
        | Some client -> client
        | None -> failwith $"no client {key}: one of raw, shell, mailkit"

/// One whole fetch of `set` from `endpoint` by `client`; returns the octets it counted (what the raw
/// reader read from the wire; the bodies' octets for the others).
let private fetcher (client: Client) (endpoint: IPEndPoint) (set: MailboxSet) (user: string) (password: string) =
    match client with
    | RawReader -> fun () -> fst (fetch endpoint set.Tls user password set.Messages)
    | Shell ->
        let shellOptions = options endpoint set.Tls
        fun () -> fst ((fetchShell shellOptions user password set.Messages).GetAwaiter().GetResult())
    | MailKitStreams -> fun () -> fst (fetchMailKit endpoint set.Tls user password set.Messages)

let private number (value: float) =
    value.ToString("R", CultureInfo.InvariantCulture)

let private parseNumber (text: string) =
    Double.Parse(text, CultureInfo.InvariantCulture)

/// --e2e-client CLIENT N host:port user password: this process is one client of `run`, fetching
/// set N from host:port when told on standard input. "warm SECONDS": whole fetches for that long,
/// answered "warmed <octets of one fetch>"; "sample": one sample of `measure`, answered
/// "sample <seconds per fetch> <allocated bytes per fetch>". When its input closes it answers
/// "result <median seconds per fetch> <median allocated bytes per fetch> <peak working set>".
let serveClient (client: Client) (index: int) (endpoint: IPEndPoint) (user: string) (password: string) =
    let fetchOnce = fetcher client endpoint sets[index] user password
    let samples = ResizeArray<float * float>()
    let mutable line = Console.ReadLine()

    while not (isNull line) do
        match line.Split ' ' with
        | [| "warm"; seconds |] ->
            let watch = Stopwatch.StartNew()
            let mutable octets = fetchOnce ()

            while watch.Elapsed.TotalSeconds < parseNumber seconds do
                octets <- fetchOnce ()

            printfn "warmed %d" octets
        | [| "sample" |] ->
            let seconds, bytes = measure (fetchOnce >> ignore)
            samples.Add((seconds, bytes))
            printfn "sample %s %s" (number seconds) (number bytes)
        | _ -> failwith $"the parent said {line}"

        Console.Out.Flush()
        line <- Console.ReadLine()

    let seconds = median [ for s, _ in samples -> s ]
    let bytes = median [ for _, b in samples -> b ]
    // The whole life of this process: the warm-up and every sample, all of the same fetch.
    let peak = Process.GetCurrentProcess().PeakWorkingSet64
    printfn "result %s %s %d" (number seconds) (number bytes) peak

/// What one client's child process reported: medians per fetch and its peak working set.
type private Measured =
    {
        Client: Client
        /// Seconds per whole fetch (median of the samples).
        Seconds: float
        /// Allocated bytes per whole fetch (median of the samples).
        Bytes: float
        PeakBytes: int64
    }

/// One client in a child process (this program with --e2e-client), asked line by line.
type private ClientProcess(client: Client, index: int, endpoint: IPEndPoint, user: string, password: string) =
    let child =
        startSelf
            [
                "--e2e-client"
                client.Key
                string index
                $"{endpoint.Address}:{endpoint.Port}"
                user
                password
            ]

    let answer () =
        match child.StandardOutput.ReadLine() with
        | null ->
            child.WaitForExit()
            failwith $"the {client.Label} process exited with code {child.ExitCode} (its error output is above)"
        | line -> line.Split ' '

    member _.Client = client

    /// Sends one command; returns the answer's words.
    member _.Ask(command: string) =
        child.StandardInput.WriteLine command
        child.StandardInput.Flush()
        answer ()

    /// Closes the child's input and reads its medians.
    member _.Finish() =
        child.StandardInput.Close()

        match answer () with
        | [| "result"; seconds; bytes; peak |] ->
            child.WaitForExit()

            {
                Client = client
                Seconds = parseNumber seconds
                Bytes = parseNumber bytes
                PeakBytes = int64 peak
            }
        | words -> failwith $"""the {client.Label} process said {String.Join(' ', words)}"""

    interface IDisposable with
        member _.Dispose() =
            // Only after a failure is the child still running: end it (it is ours, by its handle).
            if not child.HasExited then
                child.Kill()

            child.Dispose()

/// Messages per second: one decimal where there are few (set C fetches a few times a second).
let private perSecond (rate: float) =
    rate.ToString((if rate < 100.0 then "N1" else "N0"), CultureInfo.InvariantCulture)

let private mib (bytes: int64) = float bytes / (1024.0 * 1024.0)

let private verdict (met: bool) = if met then "met" else "**not met**"

/// One set's outcome, for the targets.
type private SetResult =
    {
        Set: MailboxSet
        Ours: Measured
        Peer: Measured
        /// Ours' messages/s over the raw reader's.
        ToRaw: float
        /// Ours' messages/s over MailKit's.
        ToPeer: float
    }

/// Target (DESIGN §7): ours at least 0.9 times the raw reader's messages/s on every set.
let private rawTarget = 0.9

/// Target (DESIGN §7): ours at least 1.6 times MailKit's messages/s on set A.
let private mailKitTarget = 1.6

/// Peak memory independent of the message size: ours may peak on C (one 50 MiB message) at most
/// this share of that message above its peak on A (4 KiB messages) in the same mode.
let private peakGrowthLimit = 0.1

/// For each set: one server (a child simulator, or `against`), one child process per client, each
/// warmed up for two seconds; then `runs` rounds in which every client takes one sample (whole
/// fetches for at least a second), the order rotating from round to round so that a noisy moment
/// hits every client alike. Writes Markdown to standard output (progress to standard error): a
/// table per set and whether the targets of DESIGN §7 were met.
/// `against`: another server (plain endpoint, implicit-TLS endpoint if any, user prefix, password),
/// whose accounts are the prefix followed by the set's key ("a", "b", "c"), e.g. the Dovecot of
/// build/scripts/dovecot-bench.sh; without it, the simulator in a child process.
let run (runs: int) (against: (IPEndPoint * IPEndPoint option * string * string) option) =
    let server =
        match against with
        | Some(plain, Some tls, _, _) -> $"the server at {plain} (implicit TLS at {tls})"
        | Some(plain, None, _, _) -> $"the server at {plain} (no TLS endpoint given: plaintext sets only)"
        | None -> "the simulator, in a child process"

    let mailKit =
        typeof<Pop3Client>.Assembly.GetCustomAttributes(typeof<Reflection.AssemblyInformationalVersionAttribute>, false)
        |> Array.map (fun a -> (a :?> Reflection.AssemblyInformationalVersionAttribute).InformationalVersion)
        |> Array.tryHead
        |> Option.defaultValue "?"

    printfn "## Throughput against %s" server
    printfn ""
    printfn "Clients, each in a child process of its own (so that its peak working set is its own):"
    printfn ""
    printfn "- **raw reader**: USER/PASS, every RETR written at once, terminators counted: the lower bound;"

    printfn
        "- **ours**: `Pop3Connection` (`ConnectAsync`, `LoginAsync`, `RetrieveManyAsync` pipelined, a sink that counts octets, `QuitAsync`);"

    printfn
        "- **MailKit** %s: `Pop3Client` `Connect`, `Authenticate` (USER/PASS: SASL and APOP removed), `GetStreams(0, count)` (pipelined), `Disconnect(true)`."

        (mailKit.Split('+')[0])

    printfn ""

    printfn
        "Each client warms up for 2 s; then %d interleaved samples, each whole fetches (connect, log in, retrieve all, QUIT) repeated for at least 1 s; medians."
        runs

    printfn
        "MB/s = the raw reader's wire octets per fetch / time (MB = 10^6; the same octets for every client); × raw and × MailKit = messages/s ratios;"

    printfn
        "allocated = `GC.GetTotalAllocatedBytes(true)` of the client's process per fetch / messages; peak = `Process.PeakWorkingSet64` of that process."

    printfn ""

    let measurable =
        sets
        |> List.indexed
        |> List.filter (fun (_, set) ->
            match against with
            | Some(_, None, _, _) -> not set.Tls
            | _ -> true)

    let results =
        [
            for index, set in measurable do
                eprintfn "e2e: %s" set.Title
                let server, endpoint, user, password = serverFor index against
                use _ = server

                let clients =
                    [
                        for client in Client.All -> new ClientProcess(client, index, endpoint, user, password)
                    ]

                let measured, wire =
                    try
                        let warmed = [ for c in clients -> c.Ask "warm 2" ]

                        let wire =
                            match warmed.Head with
                            | [| "warmed"; octets |] -> int64 octets
                            | words -> failwith $"""the raw reader said {String.Join(' ', words)}"""

                        for round in 0 .. runs - 1 do
                            for i in 0 .. clients.Length - 1 do
                                clients[(round + i) % clients.Length].Ask "sample" |> ignore

                        [ for c in clients -> c.Finish() ], wire
                    finally
                        for c in clients do
                            (c :> IDisposable).Dispose()

                let rate (m: Measured) = float set.Messages / m.Seconds

                let find client =
                    measured |> List.find (fun m -> m.Client = client)

                let raw, ours, peer = find RawReader, find Shell, find MailKitStreams

                printfn "### %s" set.Title
                printfn ""

                printfn
                    "| client | MB/s | messages/s | peak working set (MiB) | allocated (B/message) | × raw | × MailKit |"

                printfn "|---|---:|---:|---:|---:|---:|---:|"

                for m in measured do
                    printfn
                        "| %s | %.1f | %s | %.1f | %s | %.2f | %.2f |"
                        m.Client.Label
                        (float wire / 1e6 / m.Seconds)
                        (perSecond (rate m))
                        (mib m.PeakBytes)
                        ((m.Bytes / float set.Messages).ToString("N0", CultureInfo.InvariantCulture))
                        (rate m / rate raw)
                        (rate m / rate peer)

                printfn ""
                let toRaw = rate ours / rate raw
                let toPeer = rate ours / rate peer
                printf "Ours ≥ %.1f× raw: %s (%.2f)." rawTarget (verdict (toRaw >= rawTarget)) toRaw

                if set.Key = "a" then
                    printf " Ours ≥ %.1f× MailKit: %s (%.2f)." mailKitTarget (verdict (toPeer >= mailKitTarget)) toPeer

                printfn ""
                printfn ""
                Console.Out.Flush()

                {
                    Set = set
                    Ours = ours
                    Peer = peer
                    ToRaw = toRaw
                    ToPeer = toPeer
                }
        ]

    printfn "### Targets (DESIGN §7)"
    printfn ""

    let listed (rows: SetResult list) (pick: SetResult -> float) =
        String.Join("; ", [ for row in rows -> $"""{row.Set.Short} {(pick row).ToString("0.00")}""" ])

    printfn
        "- Ours ≥ %.1f× the raw reader on every set: %s (%s)."
        rawTarget
        (verdict (results |> List.forall (fun row -> row.ToRaw >= rawTarget)))
        (listed results _.ToRaw)

    let onA = results |> List.filter (fun row -> row.Set.Key = "a")

    printfn
        "- Ours ≥ %.1f× MailKit on A: %s (%s)."
        mailKitTarget
        (verdict (onA |> List.forall (fun row -> row.ToPeer >= mailKitTarget)))
        (listed onA _.ToPeer)

    for tls in [ false; true ] do
        let on key =
            results |> List.tryFind (fun row -> row.Set.Key = key && row.Set.Tls = tls)

        match on "a", on "c" with
        | Some a, Some c ->
            let growth = mib c.Ours.PeakBytes - mib a.Ours.PeakBytes
            let message = float c.Set.Size / (1024.0 * 1024.0)

            printfn
                "- Peak memory independent of the message size (%s): %s. Ours peaks at %.1f MiB on C (one %.0f MiB message) and %.1f MiB on A (4 KiB messages): %+.1f MiB, under %.0f MiB (a tenth of the message) to pass. MailKit: %.1f and %.1f MiB."
                (if tls then "implicit TLS" else "plain")
                (verdict (growth < peakGrowthLimit * message))
                (mib c.Ours.PeakBytes)
                message
                (mib a.Ours.PeakBytes)
                growth
                (peakGrowthLimit * message)
                (mib c.Peer.PeakBytes)
                (mib a.Peer.PeakBytes)
        | _ -> ()

    printfn ""

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
    let allocatedBefore = GC.GetTotalAllocatedBytes true
    let watch = Stopwatch.StartNew()
    let mutable runs = 0

    while watch.Elapsed.TotalSeconds < seconds do
        (fetchShell shellOptions user password set.Messages).GetAwaiter().GetResult()
        |> ignore

        runs <- runs + 1

    let messages = float (runs * set.Messages)
    let allocated = float (GC.GetTotalAllocatedBytes true - allocatedBefore)

    printfn
        "%d fetches of %s in %.1f s: %.0f messages/s, %.2f reads/message, client CPU %.1f us/message, allocated %.0f B/message (%.3f B/octet)"
        runs
        set.Name
        watch.Elapsed.TotalSeconds
        (messages / watch.Elapsed.TotalSeconds)
        (float reads / messages)
        (Process.GetCurrentProcess().TotalProcessorTime.TotalMicroseconds / messages)
        (allocated / messages)
        (allocated / messages / float set.Size)
