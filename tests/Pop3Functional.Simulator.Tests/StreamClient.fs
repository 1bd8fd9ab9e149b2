/// Runs the client core over a real Stream (TCP, TLS or in memory) against a running simulator:
/// reads feed Input.Received, Output.Send is written, Output.StartTls upgrades to an SslStream that
/// trusts exactly the simulator's certificate. Never throws for network trouble and never hangs
/// past its CancellationToken.
module Pop3Functional.Simulator.Tests.StreamClient

open System
open System.Collections.Generic
open System.IO
open System.Net
open System.Net.Security
open System.Net.Sockets
open System.Security.Authentication
open System.Security.Cryptography
open System.Security.Cryptography.X509Certificates
open System.Threading
open System.Threading.Tasks
open Pop3Functional.Core

/// Plaintext client options with plaintext credentials allowed.
let plainOptions =
    Options.Default.WithTls(TlsMode.NoTls).WithPlaintextCredentials(true)

/// Client options that require STLS (the core sends it itself).
let stlsOptions = Options.Default.WithTls(TlsMode.StartTlsRequired)

/// Client options for a connection whose TLS handshake the driver runs first.
let implicitOptions = Options.Default.WithTls(TlsMode.Implicit)

/// True for an event that ends a caller request.
let private finalFor (event: Event) : RequestId option =
    match event with
    | Event.Answered(_, Reply.MessageFollows _) -> None
    | Event.Answered(id, _)
    | Event.BodyEnded(id, _)
    | Event.Rejected(id, _)
    | Event.Refused(id, _)
    | Event.Aborted(id, _) when id > 0L -> Some id
    | _ -> None

/// The client end of one session over a stream.
[<Sealed>]
type StreamClient(stream: Stream, options: Options, trusted: X509Certificate2) =
    let events = ResizeArray<Event>()
    let bodies = Dictionary<RequestId, ResizeArray<byte>>()
    let sent = ResizeArray<string>()
    let buffer = Array.zeroCreate<byte> 16384
    let inputs = Queue<Input>()
    let awaiting = HashSet<RequestId>()
    let mutable current = stream
    let mutable session = Session.create options
    let mutable nextId = 1L
    let mutable ready = false
    let mutable closed = false
    let mutable endOfStream = false
    let mutable timedOut = false
    let mutable transportError: exn option = None
    let mutable serverCertificate: X509Certificate2 = null

    let trustedHash =
        if isNull trusted then
            ""
        else
            trusted.GetCertHashString(HashAlgorithmName.SHA256)

    let validate =
        RemoteCertificateValidationCallback(fun _ certificate _ _ ->
            not (isNull certificate)
            && trustedHash <> ""
            && certificate.GetCertHashString(HashAlgorithmName.SHA256) = trustedHash)

    let transport (operation: string) (ex: exn) : Input =
        transportError <- Some ex

        Input.WriteFailed
            {
                Operation = operation
                Endpoint = ""
                Message = ex.Message
                Exception = Some ex
            }

    let handshake (ct: CancellationToken) : Task<bool> =
        task {
            let ssl = new SslStream(current, false, validate)

            let authentication =
                SslClientAuthenticationOptions(
                    TargetHost = "localhost",
                    EnabledSslProtocols = (SslProtocols.Tls12 ||| SslProtocols.Tls13),
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck
                )

            try
                do! ssl.AuthenticateAsClientAsync(authentication, ct)
                current <- ssl

                serverCertificate <-
                    match ssl.RemoteCertificate with
                    | :? X509Certificate2 as c -> c
                    | null -> null
                    | c -> new X509Certificate2(c)

                return true
            with
            | :? OperationCanceledException ->
                timedOut <- true
                return false
            | ex ->
                inputs.Enqueue(transport "TLS handshake" ex)
                return false
        }

    let finished () =
        closed
        || endOfStream
        || timedOut
        || session.Phase.Kind = PhaseKind.Closed
        || session.Phase.Kind = PhaseKind.Failed

    /// Steps every queued input, writing what the core sends, until the queue is empty.
    let drain (ct: CancellationToken) : Task =
        task {
            while inputs.Count > 0 && not timedOut do
                let struct (next, outputs) = Session.step session (inputs.Dequeue())
                session <- next

                for output in outputs do
                    match output with
                    | Output.Send cmd when not closed && not timedOut ->
                        sent.Add cmd.LogText

                        try
                            do! current.WriteAsync(cmd.Bytes, ct)
                            do! current.FlushAsync(ct)
                        with
                        | :? OperationCanceledException -> timedOut <- true
                        | ex -> inputs.Enqueue(transport "write" ex)
                    | Output.Send _ -> ()
                    | Output.StartTls when not closed && not timedOut ->
                        let! ok = handshake ct

                        if ok then
                            inputs.Enqueue(Input.TlsEstablished None)
                    | Output.StartTls -> ()
                    | Output.Close -> closed <- true
                    | Output.Emit(Event.BodyData(id, data)) ->
                        let copy = data.ToArray()

                        match bodies.TryGetValue id with
                        | true, b -> b.AddRange copy
                        | _ -> bodies[id] <- ResizeArray copy

                        events.Add(Event.BodyData(id, ReadOnlyMemory copy))
                    | Output.Emit e ->
                        match e with
                        | Event.AuthorizationReady _ -> ready <- true
                        | _ -> ()

                        match finalFor e with
                        | Some id -> awaiting.Remove id |> ignore
                        | None -> ()

                        events.Add e
        }

    /// Reads once and queues what arrived (or end of stream, or a read failure).
    let readOnce (ct: CancellationToken) : Task =
        task {
            try
                let! n = current.ReadAsync(Memory<byte>(buffer), ct)

                if n = 0 then
                    endOfStream <- true
                    inputs.Enqueue Input.EndOfStream
                else
                    inputs.Enqueue(Input.Received(ReadOnlyMemory<byte>(buffer, 0, n)))
            with
            | :? OperationCanceledException -> timedOut <- true
            | ex ->
                // The core has no "read failed" input; a transport error is reported the same way.
                endOfStream <- true
                inputs.Enqueue(transport "read" ex)
        }

    /// Drains, then reads and drains until done() or the session can go no further.
    let pump (isDone: unit -> bool) (ct: CancellationToken) : Task =
        task {
            do! drain ct

            while not (isDone ()) && not (finished ()) do
                do! readOnce ct
                do! drain ct

            // A last drain if the read ended the stream (EndOfStream or a failure still queued).
            do! drain ct
        }

    /// Every event so far (BodyData slices are copies).
    member _.Events: Event list = List.ofSeq events

    /// The body octets delivered per request.
    member _.Bodies: Map<RequestId, byte[]> =
        bodies |> Seq.map (fun kv -> kv.Key, kv.Value.ToArray()) |> Map.ofSeq

    /// The commands sent (secrets redacted).
    member _.Sent: string list = List.ofSeq sent

    /// The session now.
    member _.Session = session

    /// The server's certificate as seen in the TLS handshake, or null.
    member _.ServerCertificate = serverCertificate

    /// True once the cancellation token fired.
    member _.TimedOut = timedOut

    /// True once a read returned end of stream (or failed).
    member _.EndOfStream = endOfStream

    /// True once the core asked to close.
    member _.Closed = closed

    /// The exception of a read, write or handshake failure, if one happened.
    member _.TransportError = transportError

    /// True once AuthorizationReady arrived.
    member _.Ready = ready

    /// Runs the implicit TLS handshake when the options ask for it, then waits for
    /// AuthorizationReady; true when it arrived.
    member _.StartAsync(ct: CancellationToken) : Task<bool> =
        task {
            let! ok =
                if options.Tls = TlsMode.Implicit then
                    handshake ct
                else
                    Task.FromResult true

            if ok then do! pump (fun () -> ready) ct else do! drain ct

            return ready
        }

    /// Submits requests together and waits until each has its final event (or the session ends);
    /// returns their ids.
    member _.SendAsync(requests: Request list, ct: CancellationToken) : Task<RequestId list> =
        task {
            let ids =
                [
                    for r in requests do
                        let id = nextId
                        nextId <- nextId + 1L
                        awaiting.Add id |> ignore
                        inputs.Enqueue(Input.Submit(id, r))
                        id
                ]

            if not (finished ()) then
                do! pump (fun () -> awaiting.Count = 0) ct

            return ids
        }

    /// The final event of a request, if any.
    member _.Final(id: RequestId) =
        events |> Seq.tryFindBack (fun e -> finalFor e = Some id)

    /// The first Failed event, if any.
    member _.Failure =
        events
        |> Seq.tryPick (function
            | Event.Failed e -> Some e
            | _ -> None)

    /// Closes the connection.
    member _.Dispose() =
        try
            current.Dispose()
        with _ ->
            ()

        try
            stream.Dispose()
        with _ ->
            ()

    interface IDisposable with
        member this.Dispose() = this.Dispose()

/// A TCP connection to an endpoint as a stream that owns its socket.
let connectTcp (endpoint: IPEndPoint) (ct: CancellationToken) : Task<Stream> =
    task {
        let socket =
            new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp, NoDelay = true)

        try
            do! socket.ConnectAsync(endpoint, ct)
            return new NetworkStream(socket, true) :> Stream
        with _ ->
            socket.Dispose()
            return raise (IOException $"could not connect to {endpoint}")
    }

/// What a whole run produced.
type RunResult =
    {
        /// Every event, in order.
        Events: Event list
        /// The body octets per request.
        Bodies: Map<RequestId, byte[]>
        /// The commands sent (secrets redacted).
        Sent: string list
        /// The ids of each step's requests.
        Ids: RequestId list list
        /// The client's final session.
        Client: SessionState
        /// True when the token fired first.
        TimedOut: bool
        /// True when the server ended the stream (or a read failed).
        EndOfStream: bool
        /// The server certificate seen in TLS, or null.
        ServerCertificate: X509Certificate2
    }

    /// The first Failed event, if any.
    member r.Failure =
        r.Events
        |> List.tryPick (function
            | Event.Failed e -> Some e
            | _ -> None)

    /// The final event of a request, if any.
    member r.Final(id: RequestId) =
        r.Events |> List.tryFindBack (fun e -> finalFor e = Some id)

/// Runs a whole session over a stream: AuthorizationReady, then each step's requests together,
/// each step once the previous one's requests all have final events; closes the stream at the end.
let run
    (options: Options)
    (stream: Stream)
    (trusted: X509Certificate2)
    (steps: Request list list)
    (ct: CancellationToken)
    : Task<RunResult> =
    task {
        use client = new StreamClient(stream, options, trusted)
        let! ready = client.StartAsync ct
        let ids = ResizeArray<RequestId list>()

        if ready then
            for step in steps do
                if
                    not client.TimedOut
                    && client.Session.Phase.Kind <> PhaseKind.Closed
                    && client.Session.Phase.Kind <> PhaseKind.Failed
                then
                    let! stepIds = client.SendAsync(step, ct)
                    ids.Add stepIds

        return
            {
                Events = client.Events
                Bodies = client.Bodies
                Sent = client.Sent
                Ids = List.ofSeq ids
                Client = client.Session
                TimedOut = client.TimedOut
                EndOfStream = client.EndOfStream
                ServerCertificate = client.ServerCertificate
            }
    }
