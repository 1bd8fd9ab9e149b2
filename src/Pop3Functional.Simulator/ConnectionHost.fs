namespace Pop3Functional.Simulator

open System
open System.IO
open System.Net.Security
open System.Net.Sockets
open System.Runtime.CompilerServices
open System.Security.Authentication
open System.Security.Cryptography.X509Certificates
open System.Threading
open System.Threading.Tasks

/// Serving failed on the simulator's side, not the client's: a message stream could not be opened
/// or read, or a simulator bug. Pop3Simulator records it in Errors and closes that connection.
type SimulatorServingException(message: string, inner: exn) =
    inherit Exception(message, inner)

/// Runs a ServerConnection over a Stream: the host loop every simulator host shares (TCP, TLS,
/// in memory).
[<RequireQualifiedAccess>]
module ConnectionHost =

    /// The size of the read buffer and of the buffer given to ServerConnection.Next.
    [<Literal>]
    let BufferSize = 16384

    /// How long a closing connection waits for the client to close its side (so a client whose
    /// unread commands are still in flight sees end of stream, not a reset).
    let private lingerTimeout = TimeSpan.FromSeconds 1.0

    let private contexts =
        ConditionalWeakTable<X509Certificate2, SslStreamCertificateContext>()

    let private serverOptions (certificate: X509Certificate2) =
        let context =
            contexts.GetValue(
                certificate,
                fun c -> SslStreamCertificateContext.Create(c, X509Certificate2Collection(), true)
            )

        SslServerAuthenticationOptions(
            ServerCertificateContext = context,
            EnabledSslProtocols = (SslProtocols.Tls12 ||| SslProtocols.Tls13),
            ClientCertificateRequired = false,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck
        )

    /// The longest a TLS handshake may take before the connection is dropped.
    let HandshakeTimeout = TimeSpan.FromSeconds 30.0

    /// A token that fires at HandshakeTimeout or with ct: a client that connects and never says
    /// ClientHello must not hold a connection forever (implicit TLS and STLS alike).
    let private handshakeLimitFor (ct: CancellationToken) =
        let limit = CancellationTokenSource.CreateLinkedTokenSource ct
        limit.CancelAfter HandshakeTimeout
        limit

    /// Runs the server side of a TLS handshake (TLS 1.2 or 1.3, no client certificate) on stream
    /// and returns the authenticated SslStream, which owns stream. On failure stream is disposed
    /// and the task fails (AuthenticationException, IOException, OperationCanceledException).
    let authenticateAsServerAsync
        (stream: Stream)
        (certificate: X509Certificate2)
        (ct: CancellationToken)
        : Task<SslStream> =
        ArgumentNullException.ThrowIfNull stream
        ArgumentNullException.ThrowIfNull certificate

        task {
            let ssl = new SslStream(stream, false)
            let mutable authenticated = false
            use handshakeLimit = handshakeLimitFor ct

            try
                do! ssl.AuthenticateAsServerAsync(serverOptions certificate, handshakeLimit.Token)
                authenticated <- true
                return ssl
            finally
                if not authenticated then
                    ssl.Dispose()
        }

    /// True for the exceptions that just mean "this connection is over".
    let rec internal isConnectionEnd (ct: CancellationToken) (ex: exn) =
        match ex with
        | :? IOException
        | :? SocketException
        | :? ObjectDisposedException
        | :? AuthenticationException
        | :? OperationCanceledException -> true
        | :? AggregateException as a -> a.InnerExceptions |> Seq.forall (isConnectionEnd ct)
        | _ -> ct.IsCancellationRequested

    /// Asks the connection what to do next. Whatever fails here is the simulator's side (a message
    /// stream that cannot be opened or read, or a bug), never the client's connection ending: it is
    /// wrapped so that it is recorded rather than taken for an I/O error of the socket.
    let private next (connection: ServerConnection) (buffer: byte[]) =
        try
            connection.Next(Span<byte>(buffer))
        with ex ->
            raise (SimulatorServingException($"Serving session {connection.Session} failed: {ex.Message}", ex))

    let private dispose (d: IDisposable) =
        if not (isNull d) then
            try
                d.Dispose()
            with _ ->
                ()

    /// Closing after the server decided to: TLS close_notify, then a half close, then discarding
    /// what the client still sends until it closes (at most lingerTimeout).
    let private closeGracefully (current: Stream) (transport: Stream) (buffer: byte[]) (ct: CancellationToken) =
        task {
            try
                match current with
                | :? SslStream as ssl -> do! ssl.ShutdownAsync()
                | _ -> ()

                let halfClosed =
                    match transport with
                    | :? NetworkStream as ns ->
                        ns.Socket.Shutdown(SocketShutdown.Send)
                        true
                    | :? DuplexPipeStream as d ->
                        d.CompleteWrites()
                        true
                    | _ -> false

                if halfClosed then
                    use linger = CancellationTokenSource.CreateLinkedTokenSource(ct)
                    linger.CancelAfter lingerTimeout
                    let mutable draining = true

                    while draining do
                        let! n = transport.ReadAsync(Memory<byte>(buffer), linger.Token)
                        draining <- n > 0
            with _ ->
                ()
        }

    /// The loop, talking over stream, which is transport or an SslStream over it. Owns both.
    let internal runOverAsync
        (connection: ServerConnection)
        (transport: Stream)
        (stream: Stream)
        (certificate: X509Certificate2 option)
        (ct: CancellationToken)
        : Task =
        task {
            let output = Array.zeroCreate<byte> BufferSize
            let input = Array.zeroCreate<byte> BufferSize
            let mutable current = stream
            let mutable running = true
            let mutable graceful = false
            let mutable released = false

            // Releases the maildrop before the client can learn that the connection is over, so
            // a client that reconnects at once never meets its own lock.
            let release () =
                if not released then
                    released <- true
                    connection.Dispose()

            try
                try
                    while running do
                        let action = next connection output

                        match action.Kind with
                        | ServerActionKind.Write ->
                            do! current.WriteAsync(ReadOnlyMemory<byte>(output, 0, action.Count), ct)
                            do! current.FlushAsync(ct)
                        | ServerActionKind.Delay -> do! Task.Delay(action.Delay, ct)
                        | ServerActionKind.StartTls ->
                            match certificate with
                            | Some cert ->
                                // Nothing was read past STLS (the loop never reads while it has
                                // something to write), so the handshake starts on a clean stream.
                                let ssl = new SslStream(current, true)
                                current <- ssl
                                use handshakeLimit = handshakeLimitFor ct
                                do! ssl.AuthenticateAsServerAsync(serverOptions cert, handshakeLimit.Token)
                                connection.TlsEstablished(SimulatorCertificate.serverEndPointBinding cert)
                            | None -> running <- false
                        | ServerActionKind.Close ->
                            running <- false
                            graceful <- true
                        | ServerActionKind.Hang ->
                            let mutable draining = true

                            while draining do
                                let! n = current.ReadAsync(Memory<byte>(input), ct)
                                draining <- n > 0

                            running <- false
                        | _ ->
                            let! n = current.ReadAsync(Memory<byte>(input), ct)

                            if n = 0 then
                                connection.FeedEndOfStream()
                            else
                                connection.Feed(ReadOnlyMemory<byte>(input, 0, n))
                with ex when isConnectionEnd ct ex ->
                    graceful <- false

                release ()

                if graceful then
                    do! closeGracefully current transport input ct
            finally
                try
                    release ()
                finally
                    dispose current
                    dispose stream
                    dispose transport
        }

    /// Serves one connection: repeats connection.Next and does what it says (write and flush,
    /// wait, TLS handshake with certificate then TlsEstablished with the tls-server-end-point
    /// binding, close, hang, or read up to 16 KiB and Feed or FeedEndOfStream) until the session
    /// ends. Owns stream and connection: both are disposed at the end (the maildrop is released
    /// first). Without a certificate a StartTls closes the connection. I/O errors, a failed
    /// handshake, and cancellation by ct end the connection quietly; the task fails only for a
    /// bug in the simulator.
    let runAsync
        (connection: ServerConnection)
        (stream: Stream)
        (certificate: X509Certificate2 option)
        (ct: CancellationToken)
        : Task =
        ArgumentNullException.ThrowIfNull connection
        ArgumentNullException.ThrowIfNull stream
        runOverAsync connection stream stream certificate ct
