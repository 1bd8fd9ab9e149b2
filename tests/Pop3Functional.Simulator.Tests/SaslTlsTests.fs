/// SCRAM-*-PLUS over real TLS connections to a running simulator (implicit TLS and STLS): the
/// client takes the tls-server-end-point data from its own SslStream (.NET's channel binding, RFC
/// 5929 §4), not from the simulator, so both ends must agree on the channel.
module Pop3Functional.Simulator.Tests.SaslTlsTests

open System
open System.IO
open System.Net.Security
open System.Net.Sockets
open System.Runtime.InteropServices
open System.Security.Authentication
open System.Security.Authentication.ExtendedProtection
open System.Security.Cryptography
open System.Security.Cryptography.X509Certificates
open System.Text
open System.Threading
open System.Threading.Tasks
open Expecto
open Pop3Functional.Simulator
open Pop3Functional.Simulator.Tests

let private b64 (s: string) =
    Convert.ToBase64String(Encoding.UTF8.GetBytes s)

let private unb64 (line: string) =
    Encoding.UTF8.GetString(Convert.FromBase64String(line.Substring(2)))

/// Reads CRLF lines one octet at a time, so nothing past a line is consumed (STLS needs that).
let private readLine (stream: Stream) (ct: CancellationToken) : Task<string> =
    task {
        let line = ResizeArray<byte>()
        let one = Array.zeroCreate<byte> 1
        let mutable go = true

        while go do
            let! n = stream.ReadAsync(Memory one, ct)

            if n = 0 then
                raise (EndOfStreamException "the server closed the connection")

            if one[0] = 10uy then go <- false else line.Add one[0]

        return Encoding.ASCII.GetString(line.ToArray()).TrimEnd '\r'
    }

let private say (stream: Stream) (line: string) (ct: CancellationToken) =
    task {
        do! stream.WriteAsync(ReadOnlyMemory(Encoding.ASCII.GetBytes(line + "\r\n")), ct)
        do! stream.FlushAsync ct
        return! readLine stream ct
    }

/// A multi-line reply's lines, status line first.
let private sayMulti (stream: Stream) (line: string) (ct: CancellationToken) =
    task {
        let! status = say stream line ct
        let lines = ResizeArray [ status ]
        let mutable go = status.StartsWith "+OK"

        while go do
            let! l = readLine stream ct
            if l = "." then go <- false else lines.Add l

        return List.ofSeq lines
    }

/// The client's view of tls-server-end-point: .NET's Endpoint binding without its 32-octet
/// SEC_CHANNEL_BINDINGS header and "tls-server-end-point:" prefix (DESIGN §9).
let private clientBinding (ssl: SslStream) =
    use binding = ssl.TransportContext.GetChannelBinding ChannelBindingKind.Endpoint
    let bytes = Array.zeroCreate<byte> binding.Size
    Marshal.Copy(binding.DangerousGetHandle(), bytes, 0, bytes.Length)
    let data = bytes[32..]
    let prefix = Encoding.ASCII.GetBytes "tls-server-end-point:"

    if data.Length > prefix.Length && data[.. prefix.Length - 1] = prefix then
        data[prefix.Length ..]
    else
        data

let private handshake (inner: Stream) (trusted: X509Certificate2) (ct: CancellationToken) =
    task {
        let ssl =
            new SslStream(
                inner,
                false,
                RemoteCertificateValidationCallback(fun _ certificate _ _ ->
                    not (isNull certificate)
                    && certificate.GetCertHashString() = trusted.GetCertHashString())
            )

        do!
            ssl.AuthenticateAsClientAsync(
                SslClientAuthenticationOptions(
                    TargetHost = "localhost",
                    EnabledSslProtocols = (SslProtocols.Tls12 ||| SslProtocols.Tls13)
                ),
                ct
            )

        return ssl
    }

/// SCRAM over the stream with the client's binding data; the server's reply to the empty line
/// after server-final-message (or the -ERR that ended it).
let private scramPlus (stream: Stream) mechanism (cbind: byte[]) (password: string) ct =
    task {
        let gs2 = "p=tls-server-end-point,,"
        let bare = "n=alice,r=TlsClientNonce"
        let! serverFirst = say stream ($"AUTH {mechanism} " + b64 (gs2 + bare)) ct
        Expect.stringStarts serverFirst "+ " $"server-first-message: {serverFirst}"

        let final, expected =
            ScramClient.clientFinal mechanism password gs2 cbind bare (unb64 serverFirst)

        let! serverFinal = say stream (b64 final) ct

        if serverFinal.StartsWith "+ " then
            Expect.equal (unb64 serverFinal) expected "the server signature"
            return! say stream "" ct
        else
            return serverFinal
    }

let private start (personality: Personality) =
    task {
        let! sim =
            Pop3Simulator.StartAsync(SimulatorOptions.Default.WithPersonality personality)

        sim.Mailbox("alice", "secret").Add("Subject: tls\n\nbound\n") |> ignore
        return sim
    }

[<Tests>]
let tests =
    testList
        "SCRAM-PLUS over TLS"
        [
            for mechanism in [ "SCRAM-SHA-1-PLUS"; "SCRAM-SHA-256-PLUS" ] do
                test $"implicit TLS: {mechanism} binds to the channel the client sees" {
                    (task {
                        use cap = new CancellationTokenSource(TimeSpan.FromSeconds 30.0)
                        let ct = cap.Token
                        let! sim = start Personalities.cyrus

                        try
                            use tcp = new TcpClient()
                            do! tcp.ConnectAsync(sim.TlsEndpoint, ct)
                            use! ssl = handshake (tcp.GetStream()) sim.Certificate ct
                            let cbind = clientBinding ssl

                            Expect.equal
                                cbind
                                (ScramClient.serverEndPoint sim.Certificate.RawData)
                                "RFC 5929 §4.1: SHA-256 of the certificate"

                            let! greeting = readLine ssl ct
                            Expect.stringStarts greeting "+OK" "greeting"
                            let! capa = sayMulti ssl "CAPA" ct

                            Expect.contains
                                capa
                                "SASL SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-256-PLUS PLAIN"
                                "CAPA"

                            let! ok = scramPlus ssl mechanism cbind "secret" ct
                            Expect.stringStarts ok "+OK" "logged in"
                            let! quit = say ssl "QUIT" ct
                            Expect.equal quit "+OK" "Cyrus's bare +OK"
                        finally
                            sim.Dispose()

                        Expect.isEmpty sim.Errors "no simulator errors"
                    })
                        .GetAwaiter()
                        .GetResult()
                }

            test "STLS: -PLUS appears after the handshake and binds; other binding data fails" {
                (task {
                    use cap = new CancellationTokenSource(TimeSpan.FromSeconds 30.0)
                    let ct = cap.Token
                    let! sim = start Personalities.simulator

                    try
                        use tcp = new TcpClient()
                        do! tcp.ConnectAsync(sim.Endpoint, ct)
                        let plain = tcp.GetStream()
                        let! _ = readLine plain ct
                        let! before = sayMulti plain "CAPA" ct
                        Expect.isFalse (before |> List.exists _.Contains("-PLUS")) "no -PLUS before STLS"
                        let! stls = say plain "STLS" ct
                        Expect.stringStarts stls "+OK" "STLS"
                        use! ssl = handshake plain sim.Certificate ct
                        let cbind = clientBinding ssl
                        let! after = sayMulti ssl "CAPA" ct
                        Expect.isTrue (after |> List.exists _.Contains("SCRAM-SHA-256-PLUS")) "-PLUS after STLS"
                        let wrong = SHA256.HashData(Encoding.ASCII.GetBytes "another certificate")
                        let! refused = scramPlus ssl "SCRAM-SHA-256-PLUS" wrong "secret" ct
                        Expect.stringStarts refused "-ERR [AUTH]" "bound to another channel"
                        let! ok = scramPlus ssl "SCRAM-SHA-256-PLUS" cbind "secret" ct
                        Expect.stringStarts ok "+OK Logged in" "logged in"
                        let! _ = say ssl "QUIT" ct
                        ()
                    finally
                        sim.Dispose()

                    Expect.isEmpty sim.Errors "no simulator errors"
                    let text = sim.Transcript.ToString()
                    Expect.stringContains text "AUTH SCRAM-SHA-256-PLUS [redacted]" "redacted AUTH line"
                })
                    .GetAwaiter()
                    .GetResult()
            }
        ]
