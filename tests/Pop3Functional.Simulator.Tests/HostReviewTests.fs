/// Regressions in the hosts found by review (each failed before its fix).
module Pop3Functional.Simulator.Tests.HostReviewTests

open System
open System.IO
open System.Net.Sockets
open System.Security.Cryptography.X509Certificates
open System.Text
open System.Threading
open System.Threading.Tasks
open Expecto
open Pop3Functional.Simulator

/// Reads what the server sends until `until` appears or the stream ends (10 s cap).
let private readUntil (stream: Stream) (until: string) =
    task {
        use cts = new CancellationTokenSource(TimeSpan.FromSeconds 10.0)
        let text = StringBuilder()
        let buffer = Array.zeroCreate<byte> 4096
        let mutable go = true

        while go && not ((text.ToString()).Contains until) do
            let! n = stream.ReadAsync(Memory buffer, cts.Token)

            if n = 0 then
                go <- false
            else
                text.Append(Encoding.Latin1.GetString(buffer, 0, n)) |> ignore

        return text.ToString()
    }

let private write (stream: Stream) (text: string) =
    task {
        let bytes = Encoding.ASCII.GetBytes text
        do! stream.WriteAsync(ReadOnlyMemory bytes)
        do! stream.FlushAsync()
    }

[<Tests>]
let tests =
    testList
        "Host review regressions"
        [
            testCaseTask
                "a message stream that fails is recorded in Errors, and replies packed before it still arrive"
                (fun () ->
                    task {
                        let! sim = Pop3Simulator.StartAsync(SimulatorOptions.Default.WithoutTls())
                        use _ = sim

                        // A stream that opens once (the 8-bit header check at delivery), then is gone.
                        let mutable calls = 0

                        let flaky =
                            MessageContent.OfStream(
                                Func<Stream>(fun () ->
                                    calls <- calls + 1

                                    if calls = 1 then
                                        new MemoryStream(Array.create 100 65uy) :> Stream
                                    else
                                        raise (FileNotFoundException "gone.eml")),
                                100L
                            )

                        sim.Mailbox("alice", "secret").Add(flaky) |> ignore
                        use client = new TcpClient()
                        do! client.ConnectAsync(sim.Endpoint)
                        let stream = client.GetStream()
                        let! _ = readUntil stream "\r\n"
                        do! write stream "USER alice\r\nPASS secret\r\n"
                        let! _ = readUntil stream "Logged in"
                        do! write stream "NOOP\r\nRETR 1\r\n"
                        let! text = readUntil stream "never"
                        Expect.stringStarts text "+OK\r\n" $"the NOOP reply arrived: {text}"

                        let deadline = DateTime.UtcNow.AddSeconds 5.0

                        while sim.Errors.Count = 0 && DateTime.UtcNow < deadline do
                            do! Task.Delay 20

                        let recorded = sim.Errors |> Seq.map string |> String.concat "; "

                        Expect.isTrue
                            (sim.Errors |> Seq.exists (fun e -> e :? SimulatorServingException))
                            $"recorded: {recorded}"
                    })

            testCaseTask "a certificate without its private key is refused at start" (fun () ->
                task {
                    use withKey = SimulatorCertificate.create "localhost"
                    use publicOnly = X509CertificateLoader.LoadCertificate(withKey.RawData)

                    let! outcome =
                        task {
                            try
                                let! sim =
                                    Pop3Simulator.StartAsync(SimulatorOptions.Default.WithCertificate publicOnly)

                                do! sim.DisposeAsync()
                                return None
                            with ex ->
                                return Some ex
                        }

                    match outcome with
                    | Some(:? ArgumentException) -> ()
                    | other -> failtestf "expected ArgumentException, got %A" other
                })

            testCaseTask "a transcript is not required to have lines when it is off" (fun () ->
                task {
                    let options = SimulatorOptions.Default.WithoutTls().WithTranscript(false, 0)
                    let! sim = Pop3Simulator.StartAsync options
                    use _ = sim
                    Expect.isNull sim.Transcript "no transcript"
                })

            test "a transcript keeps at least one line" {
                Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Transcript(0) |> ignore) "zero"
            }

            test "negative or huge latency and drip are clamped, not fatal" {
                for fault in
                    [
                        Fault.Latency(TimeSpan.FromMilliseconds -5.0)
                        Fault.Drip(TimeSpan.FromDays 100.0)
                    ] do
                    let boxes = Mailboxes()

                    use conn =
                        new ServerConnection(
                            (ServerOptions.Create Personalities.simulator).WithFaults(FaultPlan.Of fault),
                            boxes,
                            1,
                            false,
                            false
                        )

                    let buffer = Array.zeroCreate<byte> 1024
                    let mutable delays = []
                    let mutable go = true

                    while go do
                        let a = conn.Next(Span buffer)

                        match a.Kind with
                        | ServerActionKind.Delay -> delays <- a.Delay :: delays
                        | ServerActionKind.Write -> ()
                        | _ -> go <- false

                    Expect.isTrue
                        (delays
                         |> List.forall (fun d -> d >= TimeSpan.Zero && d <= TimeSpan.FromDays 30.0))
                        $"{fault}: {delays}"
            }

            testCaseTask "disposing an in-memory end while a write starts always ends the peer's reads" (fun () ->
                task {
                    for _ in 1..2000 do
                        let struct (a, b) = InMemoryConnection.CreatePair()

                        let writer =
                            Task.Run(fun () ->
                                (try
                                    a.Write([| 1uy |], 0, 1)
                                 with _ ->
                                     ()))

                        a.Dispose()
                        do! writer
                        let buffer = Array.zeroCreate<byte> 16
                        use cts = new CancellationTokenSource(TimeSpan.FromSeconds 5.0)
                        let mutable total = 0
                        let mutable go = true

                        while go do
                            let! n = b.ReadAsync(Memory buffer, cts.Token)
                            total <- total + n
                            go <- n > 0

                        Expect.isLessThanOrEqual total 1 "at most the one octet, then end of stream"
                        b.Dispose()
                })
        ]
