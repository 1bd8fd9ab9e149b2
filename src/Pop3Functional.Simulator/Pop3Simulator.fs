namespace Pop3Functional.Simulator

open System
open System.Collections.Generic
open System.IO
open System.Net
open System.Net.Sockets
open System.Runtime.CompilerServices
open System.Runtime.InteropServices
open System.Security.Cryptography.X509Certificates
open System.Threading
open System.Threading.Tasks

/// How a Pop3Simulator listens and behaves. Start from SimulatorOptions.Default and use the With
/// helpers (or copy-and-update in F#).
type SimulatorOptions =
    {
        /// Settings shared by every session: personality, faults, host name, seed, limits, clock.
        Server: ServerOptions
        /// The address both listeners bind to (loopback by default).
        Address: IPAddress
        /// The port of the plaintext listener (STLS offered when EnableStls); 0 for an ephemeral one.
        PlainPort: int
        /// The port of the implicit-TLS listener (POP3S); 0 for an ephemeral one.
        TlsPort: int
        /// Runs the implicit-TLS listener.
        EnableImplicitTls: bool
        /// Offers STLS on the plaintext listener (RFC 2595).
        EnableStls: bool
        /// The server certificate, with its private key; null to generate a self-signed one.
        Certificate: X509Certificate2
        /// Keeps a transcript of every session.
        RecordTranscript: bool
        /// The most transcript lines kept (older ones are dropped).
        MaxTranscriptLines: int
    }

    /// The simulator personality on loopback, ephemeral ports, STLS and implicit TLS with a
    /// generated certificate, a transcript of at most 100,000 lines.
    static member Default =
        {
            Server = ServerOptions.Create Personalities.simulator
            Address = IPAddress.Loopback
            PlainPort = 0
            TlsPort = 0
            EnableImplicitTls = true
            EnableStls = true
            Certificate = null
            RecordTranscript = true
            MaxTranscriptLines = 100_000
        }

    /// These options with another personality.
    member this.WithPersonality(personality: Personality) =
        { this with
            Server =
                { this.Server with
                    Personality = personality
                }
        }

    /// These options with another fault plan.
    member this.WithFaults(faults: FaultPlan) =
        { this with
            Server = this.Server.WithFaults faults
        }

    /// These options with a fault plan made of these faults (none: an honest server), so C# can
    /// write WithFaults(Faults.Silence(Faults.OnVerb("STAT"))) without building a FaultPlan.
    member this.WithFaults([<ParamArray>] faults: Fault[]) =
        { this with
            Server = this.Server.WithFaults faults
        }

    /// These options with another host name (in greetings and challenges).
    member this.WithHostname(hostname: string) =
        { this with
            Server = this.Server.WithHostname hostname
        }

    /// These options with another clock for APOP timestamps and LOGIN-DELAY (null: the system clock).
    member this.WithClock(clock: Func<DateTimeOffset>) =
        { this with
            Server = this.Server.WithClock clock
        }

    /// These options with USER/PASS, PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER refused before TLS
    /// (required) or not.
    member this.WithRequireTlsForPlaintextAuth(required: bool) =
        { this with
            Server = this.Server.WithRequireTlsForPlaintextAuth required
        }

    /// These options with the implicit-TLS listener (POP3S) on or off.
    member this.WithImplicitTls(enabled: bool) =
        { this with
            EnableImplicitTls = enabled
        }

    /// These options with STLS offered on the plaintext listener, or not.
    member this.WithStls(enabled: bool) = { this with EnableStls = enabled }

    /// These options with the transcript kept (at most maxLines lines; 100,000 when omitted) or not.
    member this.WithTranscript(record: bool, [<Optional; DefaultParameterValue(100_000)>] maxLines: int) =
        { this with
            RecordTranscript = record
            MaxTranscriptLines = maxLines
        }

    /// These options with another base seed.
    member this.WithSeed(seed: int) =
        { this with
            Server = this.Server.WithSeed seed
        }

    /// These options with other server settings.
    member this.WithServer(server: ServerOptions) = { this with Server = server }

    /// These options with other ports (0: ephemeral).
    member this.WithPorts(plainPort: int, tlsPort: int) =
        { this with
            PlainPort = plainPort
            TlsPort = tlsPort
        }

    /// These options with neither STLS nor the implicit-TLS listener.
    member this.WithoutTls() =
        { this with
            EnableImplicitTls = false
            EnableStls = false
        }

    /// These options with another certificate (null: generate one).
    member this.WithCertificate(certificate: X509Certificate2) = { this with Certificate = certificate }

    /// These options with another listening address.
    member this.WithAddress(address: IPAddress) = { this with Address = address }

/// C#-friendly hosting of a ServerConnection you created yourself (F# can use ConnectionHost.runAsync).
[<Extension; AbstractClass; Sealed>]
type ServerConnectionExtensions =
    /// Serves one connection over stream until the session ends, as ConnectionHost.runAsync does:
    /// owns stream and connection (both disposed at the end); with a certificate STLS runs a TLS
    /// handshake, without one (null or omitted) a StartTls closes the connection. I/O errors and
    /// cancellation end the connection quietly.
    [<Extension>]
    static member RunAsync
        (
            connection: ServerConnection,
            stream: Stream,
            [<Optional; DefaultParameterValue(null: X509Certificate2)>] certificate: X509Certificate2,
            [<Optional>] cancellationToken: CancellationToken
        ) : Task =
        ConnectionHost.runAsync connection stream (Option.ofObj certificate) cancellationToken

/// A running POP3 server simulator: a plaintext listener (STLS when enabled), an implicit-TLS
/// listener, and in-memory connections, all sharing one set of mailboxes and one transcript.
/// Dispose it to stop: listeners close, every connection is closed and awaited.
[<Sealed>]
type Pop3Simulator
    private
    (
        options: SimulatorOptions,
        certificate: X509Certificate2,
        ownsCertificate: bool,
        plainListener: Socket,
        tlsListener: Socket
    ) =
    let mailboxes = Mailboxes()

    let transcript =
        if options.RecordTranscript then
            Transcript(options.MaxTranscriptLines)
        else
            null

    let fingerprint = SimulatorCertificate.sha256Fingerprint certificate
    let stopping = new CancellationTokenSource()
    let gate = obj ()
    let connections = Dictionary<int, Stream * Task>()
    let errors = List<exn>()
    let mutable acceptLoops: Task[] = [||]
    let mutable sessionCounter = 0
    let mutable active = 0
    let mutable disposed = false
    let mutable disposal: Task = null

    let plainEndpoint = plainListener.LocalEndPoint :?> IPEndPoint

    let tlsEndpoint =
        if isNull tlsListener then
            null
        else
            tlsListener.LocalEndPoint :?> IPEndPoint

    let recordError (ex: exn) = lock gate (fun () -> errors.Add ex)

    let serve (session: int) (transport: Stream) (implicitTls: bool) : Task =
        task {
            try
                try
                    if implicitTls then
                        let! ssl =
                            ConnectionHost.authenticateAsServerAsync transport certificate stopping.Token

                        let connection =
                            new ServerConnection(
                                options.Server,
                                mailboxes,
                                transcript,
                                session,
                                true,
                                false,
                                SimulatorCertificate.serverEndPointBinding certificate
                            )

                        do! ConnectionHost.runOverAsync connection transport ssl (Some certificate) stopping.Token
                    else
                        let connection =
                            new ServerConnection(
                                options.Server,
                                mailboxes,
                                transcript,
                                session,
                                false,
                                options.EnableStls
                            )

                        let tls = if options.EnableStls then Some certificate else None
                        do! ConnectionHost.runOverAsync connection transport transport tls stopping.Token
                with ex ->
                    if not (ConnectionHost.isConnectionEnd stopping.Token ex) then
                        recordError ex
            finally
                try
                    transport.Dispose()
                with _ ->
                    ()

                lock gate (fun () -> connections.Remove session |> ignore)
                Interlocked.Decrement(&active) |> ignore
        }

    /// Registers and starts a connection; false (and the stream closed) once disposal began.
    let start (transport: Stream) (implicitTls: bool) =
        let accepted =
            lock gate (fun () ->
                if disposed then
                    false
                else
                    let session = Interlocked.Increment(&sessionCounter)
                    Interlocked.Increment(&active) |> ignore
                    // Registered before it runs, so the finally's Remove always finds it.
                    let started =
                        TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

                    let work =
                        Task.Run(
                            Func<Task>(fun () ->
                                task {
                                    do! started.Task
                                    do! serve session transport implicitTls
                                })
                        )

                    connections[session] <- (transport, work)
                    started.SetResult()
                    true)

        if not accepted then
            transport.Dispose()

        accepted

    let acceptLoop (listener: Socket) (implicitTls: bool) : Task =
        task {
            let mutable listening = true

            while listening && not stopping.IsCancellationRequested do
                try
                    let! socket = listener.AcceptAsync(stopping.Token)
                    let mutable ok = false

                    try
                        try
                            socket.NoDelay <- true
                        with :? SocketException ->
                            () // already reset by the client; the connection's first I/O will tell

                        ok <- start (new NetworkStream(socket, true)) implicitTls
                    finally
                        if not ok then
                            socket.Dispose()
                with
                | :? SocketException as ex when
                    not stopping.IsCancellationRequested
                    && (ex.SocketErrorCode = SocketError.ConnectionAborted
                        || ex.SocketErrorCode = SocketError.ConnectionReset)
                    ->
                    () // the client gave up before the accept: next
                | ex when stopping.IsCancellationRequested || (ex :? ObjectDisposedException) -> listening <- false
                | ex ->
                    // Out of descriptors or similar: note it, breathe, go on.
                    recordError ex

                    try
                        do! Task.Delay(50, stopping.Token)
                    with _ ->
                        listening <- false
        }

    let disposeCore () : Task =
        task {
            let snapshot =
                lock gate (fun () ->
                    disposed <- true
                    connections.Values |> Seq.toArray)

            try
                stopping.Cancel()
            with _ ->
                ()

            for listener in [ plainListener; tlsListener ] do
                if not (isNull listener) then
                    try
                        listener.Dispose()
                    with _ ->
                        ()

            // Closing each stream ends its pending read or write even if cancellation did not.
            for stream, _ in snapshot do
                try
                    stream.Dispose()
                with _ ->
                    ()

            let all = Array.append acceptLoops (snapshot |> Array.map snd)

            let mutable finished = true

            try
                do! Task.WhenAll(all).WaitAsync(TimeSpan.FromSeconds 10.0)
            with _ ->
                finished <- all |> Array.forall _.IsCompleted

            // Observe every exception so none surfaces as unobserved.
            for t in all do
                if t.IsFaulted then
                    t.Exception |> ignore

            if finished then
                if ownsCertificate then
                    certificate.Dispose()

                stopping.Dispose()
        }

    member private _.Run() =
        acceptLoops <-
            [|
                Task.Run(fun () -> acceptLoop plainListener false)
                if not (isNull tlsListener) then
                    Task.Run(fun () -> acceptLoop tlsListener true)
            |]

    /// Starts a simulator: binds the listeners (ephemeral ports unless set) and begins accepting.
    /// The task fails when a port cannot be bound (SocketException).
    static member StartAsync
        (options: SimulatorOptions, [<Optional>] cancellationToken: CancellationToken)
        : Task<Pop3Simulator> =
        ArgumentNullException.ThrowIfNull(box options, nameof options)
        ArgumentNullException.ThrowIfNull(options.Address, "options.Address")

        if options.RecordTranscript then
            ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxTranscriptLines, 1, "options.MaxTranscriptLines")

        // A certificate without its private key would fail every TLS handshake later; say so now.
        if not (isNull options.Certificate) && not options.Certificate.HasPrivateKey then
            raise (
                ArgumentException("The certificate has no private key; a TLS server needs one.", "options.Certificate")
            )

        let ct = cancellationToken
        ct.ThrowIfCancellationRequested()

        let listen (port: int) =
            let socket =
                new Socket(options.Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp)

            try
                socket.Bind(IPEndPoint(options.Address, port))
                socket.Listen 512
                socket
            with _ ->
                socket.Dispose()
                reraise ()

        let ownsCertificate = isNull options.Certificate
        let mutable certificate: X509Certificate2 = null
        let mutable plain: Socket = null
        let mutable tls: Socket = null

        try
            certificate <-
                if ownsCertificate then
                    // Named for the bound address too, unless that is loopback or "any".
                    let address = options.Address

                    if
                        IPAddress.IsLoopback address
                        || address.Equals IPAddress.Any
                        || address.Equals IPAddress.IPv6Any
                    then
                        SimulatorCertificate.create "localhost"
                    else
                        SimulatorCertificate.create (address.ToString())
                else
                    options.Certificate

            plain <- listen options.PlainPort

            if options.EnableImplicitTls then
                tls <- listen options.TlsPort

            ct.ThrowIfCancellationRequested()
            let simulator = new Pop3Simulator(options, certificate, ownsCertificate, plain, tls)
            simulator.Run()
            Task.FromResult simulator
        with ex ->
            for s in [ plain; tls ] do
                if not (isNull s) then
                    s.Dispose()

            if ownsCertificate && not (isNull certificate) then
                certificate.Dispose()

            match ex with
            | :? OperationCanceledException when ct.IsCancellationRequested -> Task.FromCanceled<Pop3Simulator> ct
            | _ -> Task.FromException<Pop3Simulator> ex

    /// Starts a simulator with SimulatorOptions.Default.
    static member StartAsync() : Task<Pop3Simulator> =
        Pop3Simulator.StartAsync(SimulatorOptions.Default)

    /// The options it was started with.
    member _.Options = options

    /// The plaintext listener (STLS is offered there when EnableStls).
    member _.Endpoint: IPEndPoint = plainEndpoint

    /// The implicit-TLS listener, or null when EnableImplicitTls is false.
    member _.TlsEndpoint: IPEndPoint = tlsEndpoint

    /// The server certificate (generated unless the options gave one; a generated one is
    /// disposed with the simulator).
    member _.Certificate: X509Certificate2 = certificate

    /// The certificate's SHA-256 fingerprint, "sha256:" and 64 lowercase hex digits.
    member _.CertificateFingerprint: string = fingerprint

    /// The accounts and messages every session sees.
    member _.Mailboxes: Mailboxes = mailboxes

    /// A handle on one account, created (with the password, "" when null or omitted) if it does
    /// not exist; an existing account's password changes when one is given.
    member _.Mailbox(user: string, [<Optional; DefaultParameterValue(null: string)>] password: string) : Mailbox =
        mailboxes.Mailbox(user, ?password = Option.ofObj password)

    /// What every session said, or null when RecordTranscript is false.
    member _.Transcript: Transcript = transcript

    /// Connections accepted so far, TCP and in memory (each got a session number, from 1).
    member _.SessionsStarted = Volatile.Read(&sessionCounter)

    /// Connections being served now.
    member _.ActiveSessions = Volatile.Read(&active)

    /// Unexpected exceptions that ended a connection or disturbed a listener (simulator bugs,
    /// or the system running out of resources); empty in a healthy run. I/O errors, failed TLS
    /// handshakes and clients going away are not errors.
    member _.Errors: IReadOnlyList<exn> =
        lock gate (fun () -> errors.ToArray() :> IReadOnlyList<exn>)

    /// The client end of a new in-memory connection served like a TCP one (session numbers are
    /// shared). With implicitTls the server runs a TLS handshake first (the client must run
    /// SslStream.AuthenticateAsClientAsync, trusting Certificate); otherwise it is a plaintext
    /// connection with STLS when EnableStls. Throws ObjectDisposedException once disposal began.
    member _.ConnectInMemory([<Optional; DefaultParameterValue(false)>] implicitTls: bool) : Stream =
        let struct (client, server) = InMemoryConnection.CreatePair()

        if start server implicitTls then
            client
        else
            client.Dispose()
            raise (ObjectDisposedException(nameof Pop3Simulator))

    /// Stops: closes both listeners, cancels and closes every connection, and waits for them
    /// (at most 10 seconds). Never throws; later calls return the same task.
    member _.DisposeAsync() : ValueTask =
        let t =
            lock gate (fun () ->
                if isNull disposal then
                    disposal <-
                        Task.Run(fun () ->
                            task {
                                try
                                    do! disposeCore ()
                                with _ ->
                                    ()
                            }
                            :> Task)

                disposal)

        ValueTask(t)

    /// Stops, as DisposeAsync does, blocking the calling thread.
    member this.Dispose() =
        this.DisposeAsync().AsTask().GetAwaiter().GetResult()

    interface IAsyncDisposable with
        member this.DisposeAsync() = this.DisposeAsync()

    interface IDisposable with
        member this.Dispose() = this.Dispose()
