/// dotnet run -c Release --project tests/Pop3Functional.Benchmarks -- [--quick | --alloc
/// | --e2e [--against host:port[:tlsport] user password] [--runs N] | --latency SERVERS_ENV
/// | --e2e-profile N SECONDS [host:port[:tlsport] user password] | --serve [--against host:port[:tlsport] user password]
/// | BenchmarkDotNet arguments]; --sim-server and --e2e-client are the child processes of --e2e.
module Pop3Functional.Benchmarks.Program

open System
open System.Diagnostics
open Pop3Functional.Benchmarks.Workload

let private chunks (stream: ReplyStream) =
    (stream.Wire.Length + ChunkSize - 1) / ChunkSize

/// Allocation of one decoding run, set-up excluded: a warm-up run first, then a measured one.
let private allocated (run: unit -> (unit -> Tally)) =
    (run ()) () |> ignore
    let measured = run ()
    GC.Collect()
    let before = GC.GetAllocatedBytesForCurrentThread()
    let t = measured ()
    let after = GC.GetAllocatedBytesForCurrentThread()
    after - before, t

let private sessionRun (stream: ReplyStream) (receive: byte[]) () =
    let s, sent = sessionReady stream
    fun () -> runSession stream s sent receive

let private machineRun (stream: ReplyStream) (receive: byte[]) () =
    let m, sent = machineReady stream
    fun () -> runMachine stream m sent receive

let private baselineRun (stream: ReplyStream) (receive: byte[]) () = fun () -> runBaseline stream receive

/// --alloc: allocated bytes per message, per body line and per read, for line shapes that keep
/// the bytes and change the number of lines, so the per-line cost shows as the difference.
let alloc () =
    let receive = Array.zeroCreate<byte> ChunkSize

    let cases =
        [
            build "2000 x 4 KiB, 76-octet lines, 1 in 20 stuffed" 2000 4096 76 20
            build "2000 x 4 KiB, 17-octet lines (4x lines), 1 in 20 stuffed" 2000 4096 17 20
            build "2000 x 4 KiB, 76-octet lines, none stuffed" 2000 4096 76 0
            build "2000 x 4 KiB, 17-octet lines (4x lines), none stuffed" 2000 4096 17 0
            build "2000 x 16 KiB, 76-octet lines (4x lines), 1 in 20 stuffed" 2000 16384 76 20
            build "1 x 50 MiB, 76-octet lines, 1 in 20 stuffed" 1 (50 * 1024 * 1024) 76 20
        ]

    printfn "Allocated bytes per decoding run (GC.GetAllocatedBytesForCurrentThread; login and RETR"
    printfn "submission excluded; one warm-up run, then one measured run; 16 KiB reads)."
    printfn ""

    printfn
        "%-8s %-58s %9s %9s %8s %7s %12s %10s %9s %9s %9s"
        "decoder"
        "stream"
        "messages"
        "lines"
        "stuffed"
        "reads"
        "allocated"
        "B/message"
        "B/line"
        "B/read"
        "slices"

    for stream in cases do
        let rows =
            [
                "Session", sessionRun stream receive
                "Machine", machineRun stream receive
                "Baseline", baselineRun stream receive
            ]

        for name, run in rows do
            let bytes, t = allocated run

            printfn
                "%-8s %-58s %9d %9d %8d %7d %12d %10.1f %9.2f %9.1f %9d"
                name
                stream.Name
                stream.Messages
                stream.BodyLines
                stream.StuffedLines
                (chunks stream)
                bytes
                (float bytes / float stream.Messages)
                (float bytes / float stream.BodyLines)
                (float bytes / float (chunks stream))
                t.Slices

    printfn ""
    printfn "B/line is total allocated / body lines. Compare rows with the same bytes and 4x the lines:"
    printfn "an unchanged total means no allocation per line; what remains grows with messages and"
    printfn "reads, plus one BodyData event per stuffed line (a stuffed dot splits the slice)."

/// Times one decoding run (set-up excluded), in seconds.
let private timeOnce (run: unit -> (unit -> Tally)) =
    let go = run ()
    let sw = Stopwatch.StartNew()
    go () |> ignore
    sw.Elapsed.TotalSeconds

let private median (xs: float list) =
    let a = List.sort xs |> Array.ofList

    if a.Length % 2 = 1 then
        a[a.Length / 2]
    else
        (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2.0

/// --quick: a Stopwatch loop (a few warm-ups, then timed runs, interleaved so that noise hits
/// every decoder alike); prints MB/s of wire octets and the time ratio to the baseline.
let quick () =
    let receive = Array.zeroCreate<byte> ChunkSize
    let small = Benchmarks.small.Value
    let large = Benchmarks.large.Value

    let groups =
        [
            small,
            40,
            [
                "Baseline", baselineRun small receive
                "Session", sessionRun small receive
                "Machine", machineRun small receive
            ]
            large, 20, [ "Baseline", baselineRun large receive; "Session", sessionRun large receive ]
        ]

    printfn "Quick run: median of timed runs after 3 warm-ups; MB/s = wire octets / time (MB = 10^6)."
    printfn "Ratio = time / baseline time (1.00 = as fast as the hand-written decoder)."
    printfn ""
    printfn "%-14s %-9s %12s %10s %10s %10s %8s" "stream" "decoder" "wire octets" "median ms" "MB/s" "best MB/s" "ratio"

    for stream, runs, decoders in groups do
        printfn ""

        for _, run in decoders do
            for _ in 1..3 do
                timeOnce run |> ignore

        let times =
            decoders |> List.map (fun (name, _) -> name, ResizeArray<float>()) |> dict

        for _ in 1..runs do
            for name, run in decoders do
                times[name].Add(timeOnce run)

        let baseline = median (List.ofSeq times["Baseline"])

        for name, _ in decoders do
            let ts = List.ofSeq times[name]
            let m = median ts
            let mb = float stream.Wire.Length / 1e6

            printfn
                "%-14s %-9s %12d %10.2f %10.0f %10.0f %8.2f"
                stream.Name
                name
                stream.Wire.Length
                (m * 1000.0)
                (mb / m)
                (mb / List.min ts)
                (m / baseline)

/// --profile <seconds>: decodes the 2,000 x 4 KiB stream through the session in a loop, for an
/// external profiler (perf with DOTNET_PerfMapEnabled=1); prints the runs done.
let profile (seconds: float) =
    let receive = Array.zeroCreate<byte> ChunkSize
    let small = Benchmarks.small.Value
    let sw = Stopwatch.StartNew()
    let mutable runs = 0

    while sw.Elapsed.TotalSeconds < seconds do
        (sessionRun small receive ()) () |> ignore
        runs <- runs + 1

    printfn "%d runs in %.1f s" runs sw.Elapsed.TotalSeconds

/// Login plus submitting N RETR requests up front (the set-up the other figures exclude): the
/// time and allocation should grow linearly with N.
let submission () =
    printfn ""
    printfn "Set-up: login, then Submit RETR 1..N up front (median of 5 runs)."
    printfn "%-10s %10s %14s %14s" "N" "ms" "allocated" "B/request"

    for n in [ 2000; 8000 ] do
        let stream = build $"{n} x 100" n 100 76 0
        sessionReady stream |> ignore
        let times = ResizeArray<float>()
        let mutable bytes = 0L

        for _ in 1..5 do
            let before = GC.GetAllocatedBytesForCurrentThread()
            let sw = Stopwatch.StartNew()
            sessionReady stream |> ignore
            times.Add sw.Elapsed.TotalMilliseconds
            bytes <- GC.GetAllocatedBytesForCurrentThread() - before

        printfn "%-10d %10.1f %14d %14.0f" n (median (List.ofSeq times)) bytes (float bytes / float n)

/// The options after --e2e: [--against host:port[:tlsport] user password] [--runs N].
let rec private e2eOptions (args: string list) (runs: int, against) =
    match args with
    | [] -> runs, against
    | "--runs" :: n :: rest -> e2eOptions rest (int n, against)
    | "--against" :: endpoint :: user :: password :: rest ->
        let plain, tls = Serving.parseEndpoint endpoint
        e2eOptions rest (runs, Some(plain, tls, user, password))
    | other -> failwith $"--e2e: unknown options {other}"

[<EntryPoint>]
let main args =
    match List.ofArray args with
    | [ "--alloc" ] -> alloc ()
    | [ "--quick" ] ->
        quick ()
        submission ()
    | [ "--profile"; seconds ] -> profile (float seconds)
    | [ "--serve" ] -> Serving.run 5 None
    | "--e2e" :: options ->
        let runs, against = e2eOptions options (5, None)
        EndToEnd.run runs against
    | [ "--e2e-client"; client; index; endpoint; user; password ] ->
        EndToEnd.serveClient
            (EndToEnd.Client.Named client)
            (int index)
            (fst (Serving.parseEndpoint endpoint))
            user
            password
    | [ "--latency"; manifest ] -> Latency.run manifest 10
    | [ "--sim-server"; index ] -> EndToEnd.serveSet (int index)
    | [ "--e2e-profile"; index; seconds ] -> EndToEnd.profileShell (int index) (float seconds) None
    | [ "--e2e-profile"; index; seconds; endpoint; user; password ] ->
        let plain, tls = Serving.parseEndpoint endpoint
        EndToEnd.profileShell (int index) (float seconds) (Some(plain, tls, user, password))
    | [ "--serve"; "--against"; endpoint; user; password ] ->
        let plain, tls = Serving.parseEndpoint endpoint
        Serving.run 5 (Some(plain, tls, user, password))
    | _ -> Benchmarks.run args

    0
