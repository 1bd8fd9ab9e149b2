module Pop3Functional.Simulator.Tests.HostTests

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Security.Cryptography.X509Certificates
open System.Text
open System.Text.RegularExpressions
open System.Threading
open System.Threading.Tasks
open Expecto
open Pop3Functional.Core
open Pop3Functional.Simulator
open Pop3Functional.Simulator.Tests.StreamClient

/// Unobserved task exceptions raised by simulator code (the hosts must observe every task).
let private unobserved = Collections.Concurrent.ConcurrentQueue<exn>()

do
    TaskScheduler.UnobservedTaskException.Add(fun e ->
        if string e.Exception |> _.Contains("Pop3Functional.Simulator.") then
            unobserved.Enqueue e.Exception)

/// A token that fires after 30 seconds: no test waits longer.
let private cap () =
    new CancellationTokenSource(TimeSpan.FromSeconds 30.0)

/// Starts a simulator, runs the test, disposes it, and checks that nothing went wrong inside.
let private withSimulator (options: SimulatorOptions) (test: Pop3Simulator -> Task<unit>) : Task<unit> =
    task {
        let! sim = Pop3Simulator.StartAsync options

        try
            do! test sim
        finally
            sim.Dispose()

        Expect.isEmpty sim.Errors "no unexpected exception inside the simulator"
    }

let private pass (text: string) = Request.Pass(Secret.FromString text)

/// The reply (the first Answered) to a request.
let private answer (r: RunResult) (id: RequestId) =
    r.Events
    |> List.pick (function
        | Event.Answered(i, reply) when i = id -> Some reply
        | _ -> None)

/// Adds three messages: text with dot lines, 8-bit octets, and a generated 100 KB one.
let private fill (box: Mailbox) (tag: string) : StoredMessage list =
    [
        box.Add $"Subject: {tag} one\n\nbody one\n.leading dot\n..two dots\n.\nend\n"
        box.Add(
            Array.concat
                [
                    Encoding.ASCII.GetBytes $"Subject: {tag} two\r\n\r\n"
                    [| 0uy .. 255uy |]
                    "\r\n"B
                ]
        )
        box.Add(MessageContent.Generated(100_000L, tag.Length))
    ]

/// Logs in, STAT, LIST, RETR of each message, optional DELEs, QUIT; checks everything.
let private fullSession
    (options: Options)
    (stream: Stream)
    (sim: Pop3Simulator)
    (user: string)
    (password: string)
    (messages: StoredMessage list)
    (delete: uint64 list)
    (ct: CancellationToken)
    : Task<RunResult> =
    task {
        let n = messages.Length

        let! r =
            run
                options
                stream
                sim.Certificate
                [
                    [ Request.User user ]
                    [ pass password ]
                    [ Request.Stat; Request.List None ]
                    [ for i in 1..n -> Request.Retr(uint64 i) ]
                    [ for d in delete -> Request.Dele d ]
                    [ Request.Quit ]
                ]
                ct

        Expect.isFalse r.TimedOut $"{user}: no timeout; transcript:\n{sim.Transcript}"
        Expect.isNone r.Failure $"{user}: no failure"
        Expect.equal r.Ids.Length 6 $"{user}: every step ran"
        let ids = r.Ids |> List.toArray
        let expected = messages |> List.map _.Content.ToArray()

        match answer r (ids[2][0]) with
        | Reply.Stat st ->
            Expect.equal st.Count (uint64 n) $"{user}: STAT count"
            Expect.equal st.Octets (expected |> List.sumBy (fun b -> uint64 b.Length)) $"{user}: STAT octets"
        | other -> failtestf "%s: STAT answered %A" user other

        match answer r (ids[2][1]) with
        | Reply.Listing entries ->
            Expect.equal
                (entries |> List.map (fun e -> e.Number, e.Octets))
                (expected |> List.mapi (fun i b -> uint64 (i + 1), uint64 b.Length))
                $"{user}: LIST"
        | other -> failtestf "%s: LIST answered %A" user other

        for i, id in List.indexed ids[3] do
            Expect.isTrue (r.Bodies.ContainsKey id) $"{user}: message {i + 1} delivered"
            Expect.sequenceEqual r.Bodies[id] expected[i] $"{user}: message {i + 1} byte-exact"

            match r.Final id with
            | Some(Event.BodyEnded(_, octets)) -> Expect.equal octets (uint64 expected[i].Length) "body octets"
            | other -> failtestf "%s: RETR %d ended with %A" user (i + 1) other

        match answer r (ids[5][0]) with
        | Reply.Quit q ->
            Expect.isTrue q.UpdateCompleted $"{user}: UPDATE"
            Expect.equal q.DeletionsCommitted delete $"{user}: deletions committed"
        | other -> failtestf "%s: QUIT answered %A" user other

        return r
    }

let private streamTests =
    testList
        "in-memory pair"
        [
            testCaseTask "bytes cross in both directions; dispose ends the peer's reads" (fun () ->
                task {
                    use cts = cap ()
                    let struct (client, server) = InMemoryConnection.CreatePair()
                    do! client.WriteAsync(ReadOnlyMemory(Encoding.ASCII.GetBytes "hello"), cts.Token)
                    let buffer = Array.zeroCreate<byte> 16
                    let! n = server.ReadAsync(Memory buffer, cts.Token)
                    Expect.equal (Encoding.ASCII.GetString(buffer, 0, n)) "hello" "client to server"
                    do! server.WriteAsync(ReadOnlyMemory(Encoding.ASCII.GetBytes "world"), cts.Token)
                    let! n = client.ReadAsync(Memory buffer, cts.Token)
                    Expect.equal (Encoding.ASCII.GetString(buffer, 0, n)) "world" "server to client"
                    let pending = server.ReadAsync(Memory buffer, cts.Token).AsTask()
                    Expect.isFalse pending.IsCompleted "a read waits for data"
                    client.Dispose()
                    let! n = pending
                    Expect.equal n 0 "the peer reads end of stream"

                    Expect.throwsT<IOException>
                        (fun () -> server.Write(Encoding.ASCII.GetBytes "x", 0, 1))
                        "writing to a closed peer fails"

                    server.Dispose()
                })

            testCaseTask "a pending read ends on dispose and honours cancellation" (fun () ->
                task {
                    use cts = cap ()
                    let struct (client, server) = InMemoryConnection.CreatePair()
                    let buffer = Array.zeroCreate<byte> 16
                    let pending = server.ReadAsync(Memory buffer, cts.Token).AsTask()
                    server.Dispose()

                    let! outcome =
                        task {
                            try
                                let! _ = pending
                                return "completed"
                            with :? ObjectDisposedException ->
                                return "disposed"
                        }

                    Expect.equal outcome "disposed" "dispose ends the pending read"
                    client.Dispose()
                    let struct (client, server) = InMemoryConnection.CreatePair()
                    use cancel = new CancellationTokenSource()
                    let pending = client.ReadAsync(Memory buffer, cancel.Token).AsTask()
                    cancel.Cancel()

                    let! outcome =
                        task {
                            try
                                let! n = pending
                                return $"read {n}"
                            with :? OperationCanceledException ->
                                return "cancelled"
                        }

                    Expect.equal outcome "cancelled" "cancellation ends the pending read"
                    do! server.WriteAsync(ReadOnlyMemory("after"B), cts.Token)
                    let! n = client.ReadAsync(Memory buffer, cts.Token)
                    Expect.equal (Encoding.ASCII.GetString(buffer, 0, n)) "after" "the stream still works"
                    client.Dispose()
                    server.Dispose()
                })

            testCaseTask "a half close lets the peer read to the end, and the other direction goes on" (fun () ->
                task {
                    use cts = cap ()
                    let struct (client, server) = InMemoryConnection.CreatePair()
                    do! server.WriteAsync(ReadOnlyMemory("bye"B), cts.Token)
                    (server :?> DuplexPipeStream).CompleteWrites()
                    let buffer = Array.zeroCreate<byte> 16
                    let! n = client.ReadAsync(Memory buffer, cts.Token)
                    Expect.equal (Encoding.ASCII.GetString(buffer, 0, n)) "bye" "data before the half close"
                    let! n = client.ReadAsync(Memory buffer, cts.Token)
                    Expect.equal n 0 "then end of stream"
                    do! client.WriteAsync(ReadOnlyMemory("late"B), cts.Token)
                    let! n = server.ReadAsync(Memory buffer, cts.Token)
                    Expect.equal (Encoding.ASCII.GetString(buffer, 0, n)) "late" "the other direction still works"
                    server.Dispose()
                    server.Dispose()
                    client.Dispose()
                    Expect.isFalse server.CanRead "disposed"
                })
        ]

let private certificateTests =
    testList
        "certificate"
        [
            test "a generated certificate names localhost and 127.0.0.1, has its key, prints its fingerprint" {
                use cert = SimulatorCertificate.create "pop3.test"

                let san =
                    cert.Extensions
                    |> Seq.pick (function
                        | :? X509SubjectAlternativeNameExtension as e -> Some e
                        | _ -> None)

                let dns = san.EnumerateDnsNames() |> List.ofSeq
                let ips = san.EnumerateIPAddresses() |> List.ofSeq
                Expect.contains dns "localhost" "SAN DNS localhost"
                Expect.contains dns "pop3.test" "SAN DNS subject"
                Expect.contains ips IPAddress.Loopback "SAN IP 127.0.0.1"
                Expect.contains ips IPAddress.IPv6Loopback "SAN IP ::1"
                Expect.isTrue cert.HasPrivateKey "private key"
                Expect.equal (cert.GetNameInfo(X509NameType.SimpleName, false)) "pop3.test" "subject CN"

                let eku =
                    cert.Extensions
                    |> Seq.pick (function
                        | :? X509EnhancedKeyUsageExtension as e -> Some e
                        | _ -> None)

                Expect.contains
                    (eku.EnhancedKeyUsages
                     |> Seq.cast<Security.Cryptography.Oid>
                     |> Seq.map _.Value
                     |> List.ofSeq)
                    "1.3.6.1.5.5.7.3.1"
                    "server authentication"

                Expect.isLessThan cert.NotBefore DateTime.Now "valid now"
                Expect.isGreaterThan cert.NotAfter (DateTime.Now.AddDays 300.0) "valid for a year"
                let fingerprint = SimulatorCertificate.sha256Fingerprint cert
                Expect.isMatch fingerprint "^sha256:[0-9a-f]{64}$" "fingerprint format"

                Expect.equal
                    fingerprint
                    ("sha256:"
                     + cert.GetCertHashString(Security.Cryptography.HashAlgorithmName.SHA256).ToLowerInvariant())
                    "fingerprint is the SHA-256 of the DER"

                Expect.sequenceEqual
                    (SimulatorCertificate.serverEndPointBinding cert)
                    (Security.Cryptography.SHA256.HashData cert.RawData)
                    "tls-server-end-point is SHA-256 of the DER for a SHA-256 certificate"
            }

            testCaseTask "the simulator's certificate and fingerprint" (fun () ->
                task {
                    do!
                        withSimulator SimulatorOptions.Default (fun sim ->
                            task {
                                Expect.isTrue sim.Certificate.HasPrivateKey "private key"

                                Expect.isTrue
                                    (Regex.IsMatch(sim.CertificateFingerprint, "^sha256:[0-9a-f]{64}$"))
                                    "format"

                                Expect.equal
                                    sim.CertificateFingerprint
                                    (SimulatorCertificate.sha256Fingerprint sim.Certificate)
                                    "fingerprint"
                            })
                })
        ]

let private sessionTests =
    testList
        "sessions"
        [
            testCaseTask
                "plain TCP: USER/PASS, STAT, LIST, RETR byte-exact, DELE, QUIT commits exactly those"
                (fun () ->
                    task {
                        do!
                            withSimulator SimulatorOptions.Default (fun sim ->
                                task {
                                    use cts = cap ()
                                    let box = sim.Mailbox("alice", "secret")
                                    let messages = fill box "alice"
                                    let! stream = connectTcp sim.Endpoint cts.Token

                                    let! r =
                                        fullSession
                                            plainOptions
                                            stream
                                            sim
                                            "alice"
                                            "secret"
                                            messages
                                            [ 1UL; 3UL ]
                                            cts.Token

                                    Expect.equal r.Client.Phase.Kind PhaseKind.Closed "closed after QUIT"
                                    Expect.equal box.Uids [ messages[1].Uid ] "only message 2 is left"
                                    Expect.equal sim.SessionsStarted 1 "one session"
                                })
                    })

            testCaseTask
                "STLS: a StartTlsRequired client upgrades with the simulator's certificate, then logs in"
                (fun () ->
                    task {
                        do!
                            withSimulator SimulatorOptions.Default (fun sim ->
                                task {
                                    use cts = cap ()
                                    let box = sim.Mailbox("bob", "pw")
                                    let messages = fill box "bob"
                                    let! stream = connectTcp sim.Endpoint cts.Token
                                    let! r = fullSession stlsOptions stream sim "bob" "pw" messages [] cts.Token

                                    Expect.isNotNull r.ServerCertificate "TLS was negotiated"

                                    Expect.equal
                                        r.ServerCertificate.Thumbprint
                                        sim.Certificate.Thumbprint
                                        "the simulator's certificate"

                                    let ready =
                                        r.Events
                                        |> List.pick (function
                                            | Event.AuthorizationReady a -> Some a
                                            | _ -> None)

                                    Expect.isTrue ready.TlsActive "TLS active at login"
                                    let lines = sim.Transcript.ClientLines 1
                                    let stls = lines |> List.findIndex ((=) "STLS")
                                    let user = lines |> List.findIndex (fun l -> l.StartsWith "USER")
                                    Expect.isLessThan stls user $"STLS before USER: {lines}"
                                    Expect.equal box.Count 3 "nothing deleted"
                                })
                    })

            testCaseTask "implicit TLS on TlsEndpoint" (fun () ->
                task {
                    do!
                        withSimulator SimulatorOptions.Default (fun sim ->
                            task {
                                use cts = cap ()
                                Expect.isNotNull sim.TlsEndpoint "TLS listener"
                                Expect.notEqual sim.TlsEndpoint.Port sim.Endpoint.Port "two listeners"
                                let box = sim.Mailbox("carol", "pw")
                                let messages = fill box "carol"
                                let! stream = connectTcp sim.TlsEndpoint cts.Token

                                let! r =
                                    fullSession implicitOptions stream sim "carol" "pw" messages [ 2UL ] cts.Token

                                Expect.equal
                                    r.ServerCertificate.Thumbprint
                                    sim.Certificate.Thumbprint
                                    "the simulator's certificate"

                                Expect.isFalse
                                    (sim.Transcript.ClientLines 1 |> List.contains "STLS")
                                    "no STLS on implicit TLS"

                                Expect.equal box.Count 2 "message 2 deleted"
                            })
                })

            testCaseTask
                "in memory, plain, STLS and implicit TLS, without sockets; session numbers are shared"
                (fun () ->
                    task {
                        do!
                            withSimulator (SimulatorOptions.Default.WithPorts(0, 0)) (fun sim ->
                                task {
                                    use cts = cap ()
                                    let box = sim.Mailbox("dave", "pw")
                                    let messages = fill box "dave"

                                    let! _ =
                                        fullSession
                                            plainOptions
                                            (sim.ConnectInMemory())
                                            sim
                                            "dave"
                                            "pw"
                                            messages
                                            []
                                            cts.Token

                                    let! r =
                                        fullSession
                                            implicitOptions
                                            (sim.ConnectInMemory(implicitTls = true))
                                            sim
                                            "dave"
                                            "pw"
                                            messages
                                            []
                                            cts.Token

                                    Expect.equal
                                        r.ServerCertificate.Thumbprint
                                        sim.Certificate.Thumbprint
                                        "certificate"

                                    let! _ =
                                        fullSession
                                            stlsOptions
                                            (sim.ConnectInMemory())
                                            sim
                                            "dave"
                                            "pw"
                                            messages
                                            []
                                            cts.Token

                                    let! stream = connectTcp sim.Endpoint cts.Token

                                    let! _ =
                                        fullSession plainOptions stream sim "dave" "pw" messages [ 1UL ] cts.Token

                                    Expect.equal sim.SessionsStarted 4 "four sessions"
                                    Expect.equal (sim.Transcript.ClientLines 3 |> List.head) "CAPA" "session 3 exists"
                                    Expect.contains (sim.Transcript.ClientLines 3) "STLS" "session 3 used STLS"
                                    Expect.equal box.Count 2 "the TCP session deleted message 1"
                                })
                    })

            testCaseTask "100 concurrent TCP sessions on 100 accounts, byte-exact" (fun () ->
                task {
                    do!
                        withSimulator SimulatorOptions.Default (fun sim ->
                            task {
                                use cts = cap ()

                                let accounts =
                                    [|
                                        for i in 1..100 ->
                                            let user = $"user{i:D3}"
                                            let box = sim.Mailbox(user, $"pw{i}")

                                            let messages =
                                                [
                                                    for k in 1 .. 1 + i % 3 ->
                                                        box.Add(
                                                            $"Subject: {user} {k}\n\n{String('x', 100 * i + k)}\n.\n"
                                                        )
                                                ]

                                            user, i, box, messages
                                    |]

                                let sessions =
                                    accounts
                                    |> Array.map (fun (user, i, _, messages) ->
                                        task {
                                            let! stream = connectTcp sim.Endpoint cts.Token

                                            let! _ =
                                                fullSession
                                                    plainOptions
                                                    stream
                                                    sim
                                                    user
                                                    $"pw{i}"
                                                    messages
                                                    [ 1UL ]
                                                    cts.Token

                                            return ()
                                        })

                                let! _ = Task.WhenAll sessions

                                for user, _, box, messages in accounts do
                                    Expect.equal box.Count (messages.Length - 1) $"{user}: one message deleted"

                                Expect.equal sim.SessionsStarted 100 "100 sessions"
                            })
                })

            testCaseTask "a second simultaneous session on a locked maildrop is rejected with [IN-USE]" (fun () ->
                task {
                    do!
                        withSimulator SimulatorOptions.Default (fun sim ->
                            task {
                                use cts = cap ()
                                let box = sim.Mailbox("erin", "pw")
                                box.Add "Subject: hi\n\nhello\n" |> ignore
                                let! s1 = connectTcp sim.Endpoint cts.Token
                                let! s2 = connectTcp sim.Endpoint cts.Token
                                use first = new StreamClient(s1, plainOptions, sim.Certificate)
                                use second = new StreamClient(s2, plainOptions, sim.Certificate)
                                let! ready1 = first.StartAsync cts.Token
                                let! ready2 = second.StartAsync cts.Token
                                Expect.isTrue (ready1 && ready2) "both connected"
                                let! _ = first.SendAsync([ Request.User "erin" ], cts.Token)
                                let! ids = first.SendAsync([ pass "pw" ], cts.Token)

                                match first.Final ids.Head with
                                | Some(Event.Answered(_, Reply.LoggedIn _)) -> ()
                                | other -> failtestf "first login: %A" other

                                let! _ = second.SendAsync([ Request.User "erin" ], cts.Token)
                                let! ids = second.SendAsync([ pass "pw" ], cts.Token)

                                match second.Final ids.Head with
                                | Some(Event.Rejected(_, err)) ->
                                    Expect.equal err.Code (Some ResponseCode.InUse) $"IN-USE: {err}"
                                | other -> failtestf "second login: %A" other

                                let! ids = first.SendAsync([ Request.Quit ], cts.Token)

                                match first.Final ids.Head with
                                | Some(Event.Answered(_, Reply.Quit q)) ->
                                    Expect.isTrue q.UpdateCompleted "first QUIT"
                                | other -> failtestf "first QUIT: %A" other

                                // The lock is gone once the first session ended: the second may log in now.
                                let! _ = second.SendAsync([ Request.User "erin" ], cts.Token)
                                let! ids = second.SendAsync([ pass "pw" ], cts.Token)

                                match second.Final ids.Head with
                                | Some(Event.Answered(_, Reply.LoggedIn _)) -> ()
                                | other -> failtestf "second login after the first QUIT: %A" other

                                let! _ = second.SendAsync([ Request.Quit ], cts.Token)
                                Expect.isNone first.Failure "first: no failure"
                                Expect.isNone second.Failure "second: no failure"
                            })
                })
        ]

let private faultTests =
    testList
        "faults"
        [
            testCaseTask
                "Silence: the client gives up by its own timeout, the simulator still disposes promptly"
                (fun () ->
                    task {
                        let options =
                            SimulatorOptions.Default.WithFaults(FaultPlan.Of(Fault.Silence(FaultTrigger.Verb "STAT")))

                        let! sim = Pop3Simulator.StartAsync options
                        let box = sim.Mailbox("frank", "pw")
                        box.Add "Subject: hi\n\nhello\n" |> ignore
                        use cts = new CancellationTokenSource(TimeSpan.FromSeconds 1.0)
                        let! stream = connectTcp sim.Endpoint cts.Token
                        // Kept open while the simulator stops: its end must not wait for this client.
                        use client = new StreamClient(stream, plainOptions, sim.Certificate)
                        let! ready = client.StartAsync cts.Token
                        Expect.isTrue ready "ready"
                        let! _ = client.SendAsync([ Request.User "frank" ], cts.Token)
                        let! _ = client.SendAsync([ pass "pw" ], cts.Token)
                        let! _ = client.SendAsync([ Request.Stat ], cts.Token)
                        Expect.isTrue client.TimedOut "the client timed out"
                        Expect.equal sim.ActiveSessions 1 "the session is still being served (hanging)"
                        let clock = Stopwatch.StartNew()
                        do! sim.DisposeAsync()
                        clock.Stop()
                        Expect.isLessThan clock.Elapsed (TimeSpan.FromSeconds 5.0) "disposed promptly"
                        Expect.equal sim.ActiveSessions 0 "no session left"
                        Expect.isEmpty sim.Errors "no unexpected exception"
                    })

            testCaseTask
                "Drip without delay and 1 ms Latency: the session still completes byte-exact over TCP"
                (fun () ->
                    task {
                        let options =
                            SimulatorOptions.Default.WithFaults(
                                FaultPlan.Of(Fault.Drip TimeSpan.Zero, Fault.Latency(TimeSpan.FromMilliseconds 1.0))
                            )

                        do!
                            withSimulator options (fun sim ->
                                task {
                                    use cts = cap ()
                                    let box = sim.Mailbox("grace", "pw")

                                    let messages =
                                        [
                                            box.Add "Subject: one\n\n.dot\nbody\n"
                                            box.Add(MessageContent.Generated(3_000L, 7))
                                        ]

                                    let! stream = connectTcp sim.Endpoint cts.Token

                                    let! _ =
                                        fullSession plainOptions stream sim "grace" "pw" messages [ 2UL ] cts.Token

                                    Expect.equal box.Count 1 "message 2 deleted"
                                })
                    })

            testCaseTask "DisconnectAfterOctets: the client sees end of stream and fails with a typed error" (fun () ->
                task {
                    let options =
                        SimulatorOptions.Default.WithFaults(FaultPlan.Of(Fault.DisconnectAfterOctets 3000L))

                    do!
                        withSimulator options (fun sim ->
                            task {
                                use cts = cap ()
                                let box = sim.Mailbox("heidi", "pw")
                                box.Add(MessageContent.Generated(20_000L, 3)) |> ignore
                                let! stream = connectTcp sim.Endpoint cts.Token

                                let! r =
                                    run
                                        plainOptions
                                        stream
                                        sim.Certificate
                                        [
                                            [ Request.User "heidi" ]
                                            [ pass "pw" ]
                                            [ Request.Retr 1UL ]
                                            [ Request.Dele 1UL ]
                                            [ Request.Quit ]
                                        ]
                                        cts.Token

                                Expect.isFalse r.TimedOut "no timeout"
                                Expect.isTrue r.EndOfStream "end of stream"
                                Expect.equal r.Ids.Length 3 "the session ended during RETR"
                                let retr = r.Ids[2].Head

                                match r.Final retr with
                                | Some(Event.Aborted(_, Pop3Error.Protocol e)) ->
                                    Expect.equal e.Kind ProtocolErrorKind.ConnectionClosed $"connection closed: {e}"
                                | other -> failtestf "RETR ended with %A" other

                                match r.Failure with
                                | Some(Pop3Error.Protocol e) ->
                                    Expect.equal e.Kind ProtocolErrorKind.ConnectionClosed "failed"
                                | other -> failtestf "session failure %A" other

                                let received =
                                    r.Bodies |> Map.tryFind retr |> Option.map _.Length |> Option.defaultValue 0

                                Expect.isLessThan received 3000 "part of the body only"
                                Expect.equal box.Count 1 "nothing deleted"
                                // The maildrop was released: a new session logs in at once.
                                let! stream = connectTcp sim.Endpoint cts.Token

                                let! again =
                                    run
                                        plainOptions
                                        stream
                                        sim.Certificate
                                        [ [ Request.User "heidi" ]; [ pass "pw" ] ]
                                        cts.Token

                                match again.Final(again.Ids[1].Head) with
                                | Some(Event.Answered(_, Reply.LoggedIn(_, snapshot))) ->
                                    Expect.equal snapshot.Count 1UL "the message is still there"
                                | other -> failtestf "login after the cut: %A" other
                            })
                })
        ]

let private lifecycleTests =
    testList
        "lifecycle"
        [
            testCaseTask
                "Dispose with clients still connected completes promptly; later connects are refused"
                (fun () ->
                    task {
                        let! sim = Pop3Simulator.StartAsync()
                        use cts = cap ()
                        let endpoint = sim.Endpoint
                        let tlsEndpoint = sim.TlsEndpoint
                        let! plain = connectTcp endpoint cts.Token
                        let! tls = connectTcp tlsEndpoint cts.Token
                        use c1 = new StreamClient(plain, plainOptions, sim.Certificate)
                        use c2 = new StreamClient(tls, implicitOptions, sim.Certificate)
                        use c3 = new StreamClient(sim.ConnectInMemory(), plainOptions, sim.Certificate)
                        // A client that never speaks TLS: its handshake is pending when the simulator stops.
                        let! mute = connectTcp tlsEndpoint cts.Token
                        use _ = mute

                        for c in [ c1; c2; c3 ] do
                            let! ready = c.StartAsync cts.Token
                            Expect.isTrue ready "connected"

                        let deadline = Stopwatch.StartNew()

                        while sim.ActiveSessions < 4 && deadline.Elapsed < TimeSpan.FromSeconds 5.0 do
                            do! Task.Delay 10

                        Expect.equal sim.ActiveSessions 4 "four connections served"
                        let clock = Stopwatch.StartNew()
                        do! sim.DisposeAsync()
                        clock.Stop()
                        Expect.isLessThan clock.Elapsed (TimeSpan.FromSeconds 5.0) "disposed promptly"
                        Expect.equal sim.ActiveSessions 0 "no connection left"
                        Expect.isEmpty sim.Errors "no unexpected exception"

                        for c in [ c1; c2; c3 ] do
                            let! _ = c.SendAsync([ Request.Capa ], cts.Token)
                            Expect.isFalse c.TimedOut "the client learnt of the close"
                            Expect.isTrue (c.EndOfStream || c.TransportError.IsSome) "end of stream or a failed write"
                            Expect.equal c.Session.Phase.Kind PhaseKind.Failed "the session failed"

                        let! refused =
                            task {
                                try
                                    let! s = connectTcp endpoint cts.Token
                                    s.Dispose()
                                    return false
                                with :? IOException ->
                                    return true
                            }

                        Expect.isTrue refused "plain connects are refused"

                        let! refusedTls =
                            task {
                                try
                                    let! s = connectTcp tlsEndpoint cts.Token
                                    s.Dispose()
                                    return false
                                with :? IOException ->
                                    return true
                            }

                        Expect.isTrue refusedTls "TLS connects are refused"

                        Expect.throwsT<ObjectDisposedException>
                            (fun () -> sim.ConnectInMemory() |> ignore)
                            "in-memory connects are refused"

                        // Disposing again is harmless.
                        do! sim.DisposeAsync()
                        sim.Dispose()
                        GC.Collect()
                        GC.WaitForPendingFinalizers()
                        GC.Collect()
                        Expect.isEmpty unobserved "no unobserved task exception from the simulator"
                    })

            testCaseTask "WithoutTls: no TLS listener, no STLS offered" (fun () ->
                task {
                    do!
                        withSimulator (SimulatorOptions.Default.WithoutTls()) (fun sim ->
                            task {
                                use cts = cap ()
                                Expect.isNull sim.TlsEndpoint "no TLS listener"
                                sim.Mailbox("ivan", "pw").Add "Subject: x\n\ny\n" |> ignore
                                let! stream = connectTcp sim.Endpoint cts.Token
                                let! r = run stlsOptions stream sim.Certificate [] cts.Token

                                match r.Failure with
                                | Some(Pop3Error.Protocol e) ->
                                    Expect.equal e.Kind ProtocolErrorKind.TlsUnavailable "no STLS"
                                | other -> failtestf "expected TlsUnavailable, got %A" other
                            })
                })
        ]

[<Tests>]
let tests =
    testList "Hosts" [ streamTests; certificateTests; sessionTests; faultTests; lifecycleTests ]
