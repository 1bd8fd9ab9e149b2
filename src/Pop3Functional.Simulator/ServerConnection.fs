namespace Pop3Functional.Simulator

open System
open System.Text

/// Settings shared by every session of a simulated server.
type ServerOptions =
    {
        /// How the server behaves (a preset from Personalities, or your own).
        Personality: Personality
        /// Deliberate misbehaviour, applied to every session.
        Faults: FaultPlan
        /// The host name in greetings and challenges.
        Hostname: string
        /// The base seed: session k's randomness derives from (Seed, k), so runs repeat exactly.
        Seed: int
        /// Refuse USER/PASS, PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER before TLS.
        RequireTlsForPlaintextAuth: bool
        /// The longest command line accepted, CRLF included (RFC 2449 §4: 255).
        MaxCommandOctets: int
        /// The longest SASL response line accepted.
        MaxSaslResponseOctets: int
        /// PBKDF2 iterations for SCRAM.
        ScramIterations: int
        /// The clock for APOP timestamps and LOGIN-DELAY (null: the system clock).
        Clock: Func<DateTimeOffset>
    }

    /// The simulator personality, an honest server, seed 1, RFC limits, the system clock.
    static member Create(personality: Personality) =
        {
            Personality = personality
            Faults = FaultPlan.None
            Hostname = "simulator.invalid"
            Seed = 1
            RequireTlsForPlaintextAuth = false
            MaxCommandOctets = 255
            MaxSaslResponseOctets = 65536
            ScramIterations = 4096
            Clock = null
        }

    /// This configuration with another fault plan.
    member this.WithFaults(faults: FaultPlan) = { this with Faults = faults }

    /// This configuration with another seed.
    member this.WithSeed(seed: int) = { this with Seed = seed }

    /// This configuration with another clock.
    member this.WithClock(clock: Func<DateTimeOffset>) = { this with Clock = clock }

    /// This configuration with a fault plan made of these faults (none: an honest server).
    member this.WithFaults([<ParamArray>] faults: Fault[]) =
        { this with
            Faults = FaultPlan.Of(faults)
        }

    /// This configuration with another personality.
    member this.WithPersonality(personality: Personality) = { this with Personality = personality }

    /// This configuration with another host name (in greetings and challenges).
    member this.WithHostname(hostname: string) =
        ArgumentException.ThrowIfNullOrWhiteSpace hostname
        { this with Hostname = hostname }

    /// This configuration with USER/PASS, PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER refused before TLS
    /// (required) or not.
    member this.WithRequireTlsForPlaintextAuth(required: bool) =
        { this with
            RequireTlsForPlaintextAuth = required
        }

    /// This configuration with another longest command line (CRLF included).
    member this.WithMaxCommandOctets(octets: int) = { this with MaxCommandOctets = octets }

    /// This configuration with another longest SASL response line.
    member this.WithMaxSaslResponseOctets(octets: int) =
        { this with
            MaxSaslResponseOctets = octets
        }

    /// This configuration with another number of PBKDF2 iterations for SCRAM.
    member this.WithScramIterations(iterations: int) =
        { this with
            ScramIterations = iterations
        }

/// What a host does next with a connection.
type ServerActionKind =
    /// Send ServerAction.Count octets from the start of the buffer given to Next.
    | Write = 0
    /// Wait ServerAction.Delay, then call Next again.
    | Delay = 1
    /// Run the server side of a TLS handshake, then call TlsEstablished.
    | StartTls = 2
    /// Close the connection.
    | Close = 3
    /// Send nothing, ever (a fault); read and discard until the client closes.
    | Hang = 4
    /// Read the client's next bytes and Feed them (or FeedEndOfStream).
    | ReadInput = 5

/// One step for the host.
[<Struct>]
type ServerAction =
    {
        /// What to do.
        Kind: ServerActionKind
        /// For Write: how many octets of the buffer to send.
        Count: int
        /// For Delay: how long to wait.
        Delay: TimeSpan
    }

/// One client connection to a simulated server: the pure server machine, the shared mailboxes
/// and the wire. A host's loop: call Next; Write, Delay, StartTls, Close or Hang as it says; on
/// ReadInput, read and Feed. Not thread-safe: one connection, one loop. With tlsActive (implicit
/// TLS), channelBinding is the tls-server-end-point data of the server's certificate
/// (SimulatorCertificate.serverEndPointBinding), which SCRAM-*-PLUS needs; null offers no -PLUS.
[<Sealed>]
type ServerConnection
    (
        options: ServerOptions,
        mailboxes: Mailboxes,
        transcript: Transcript,
        session: int,
        tlsActive: bool,
        stlsAvailable: bool,
        channelBinding: byte[]
    ) =
    let clock =
        if isNull options.Clock then
            Func<DateTimeOffset>(fun () -> DateTimeOffset.UtcNow)
        else
            options.Clock

    let policy =
        {
            Lock = options.Personality.LocksMaildrop
            LoginDelay = options.Personality.EnforcedLoginDelay
        }

    let settings =
        {
            Personality = options.Personality
            Faults = options.Faults
            Hostname = options.Hostname
            TlsActive = tlsActive
            StlsAvailable = stlsAvailable
            Seed = (uint64 (uint32 options.Seed) <<< 32) ||| uint64 (uint32 session)
            StartTime = clock.Invoke()
            RequireTlsForPlaintextAuth = options.RequireTlsForPlaintextAuth
            MaxCommandOctets = options.MaxCommandOctets
            MaxSaslResponseOctets = options.MaxSaslResponseOctets
            ScramIterations = options.ScramIterations
            LookupPassword = mailboxes.Password
            LookupTokens = mailboxes.Tokens
            ChannelBinding = if tlsActive then Option.ofObj channelBinding else None
        }

    let transmitter = new Transmitter(options.Faults)
    let mutable state = Unchecked.defaultof<ServerSession>
    let mutable closed = false

    let record (speaker: Speaker) (text: string) =
        if not (isNull transcript) then
            transcript.Add
                {
                    Session = session
                    Speaker = speaker
                    Text = text
                }

    let rec handle (outputs: ServerOutput list) =
        for output in outputs do
            match output with
            | ServerOutput.OpenMaildrop user ->
                let result = mailboxes.Open(policy, clock.Invoke(), user)
                let next, more = ServerMachine.step state (ServerInput.MaildropOpened result)
                state <- next
                handle more
            | ServerOutput.Commit(user, keys) -> mailboxes.Commit(user, keys)
            | ServerOutput.Release user -> mailboxes.Release user
            | ServerOutput.Heard line -> record Speaker.Client line
            | ServerOutput.Reply bytes ->
                if not (isNull transcript) then
                    for line in Encoding.UTF8.GetString(bytes).Split("\r\n", StringSplitOptions.RemoveEmptyEntries) do
                        record Speaker.Server line

                transmitter.Enqueue output
            | ServerOutput.Body transfer ->
                record Speaker.Server $"[body of message {transfer.Message}]"
                transmitter.Enqueue output
            | ServerOutput.Close ->
                closed <- true
                transmitter.Enqueue output
            | other -> transmitter.Enqueue other

    do
        let initial, greeting = ServerMachine.create settings
        state <- initial
        handle greeting

    /// A connection with a transcript (null: none). With tlsActive (implicit TLS) no SCRAM-*-PLUS
    /// mechanism is offered: use the constructor that takes the channel-binding data.
    new(options, mailboxes, transcript, session, tlsActive, stlsAvailable) =
        new ServerConnection(options, mailboxes, transcript, session, tlsActive, stlsAvailable, null)

    /// A connection that keeps no transcript.
    new(options, mailboxes, session, tlsActive, stlsAvailable) =
        new ServerConnection(options, mailboxes, null, session, tlsActive, stlsAvailable, null)

    /// The server machine's state now.
    member _.State = state

    /// The session number.
    member _.Session = session

    /// Octets sent so far.
    member _.OctetsSent = transmitter.Sent

    /// True once the server decided to close (QUIT answered, client gone, or a fault).
    member _.IsClosed = closed

    /// Bytes from the client.
    member _.Feed(bytes: ReadOnlyMemory<byte>) =
        let next, outputs = ServerMachine.step state (ServerInput.Received bytes)
        state <- next
        handle outputs

    /// Bytes from the client.
    member this.Feed(bytes: byte[], offset: int, count: int) =
        this.Feed(ReadOnlyMemory(bytes, offset, count))

    /// The client closed its side. A session without QUIT releases its maildrop unchanged.
    member _.FeedEndOfStream() =
        let next, outputs = ServerMachine.step state ServerInput.EndOfStream
        state <- next
        handle outputs
        closed <- true

    /// The TLS handshake asked for by StartTls is complete; channelBinding is the tls-server-end-point
    /// data of the server's certificate (SimulatorCertificate.serverEndPointBinding), which the
    /// SCRAM-*-PLUS mechanisms need (null: they are not offered).
    member _.TlsEstablished(channelBinding: byte[]) =
        let next, outputs =
            ServerMachine.step state (ServerInput.TlsEstablished(Option.ofObj channelBinding))

        state <- next
        handle outputs

    /// What to do next; for Write, the octets are in buffer[0..Count).
    member _.Next(buffer: Span<byte>) : ServerAction =
        match transmitter.Next buffer with
        | WireAction.Write n ->
            {
                Kind = ServerActionKind.Write
                Count = n
                Delay = TimeSpan.Zero
            }
        | WireAction.Delay d ->
            {
                Kind = ServerActionKind.Delay
                Count = 0
                Delay = d
            }
        | WireAction.StartTls ->
            {
                Kind = ServerActionKind.StartTls
                Count = 0
                Delay = TimeSpan.Zero
            }
        | WireAction.Close ->
            closed <- true

            {
                Kind = ServerActionKind.Close
                Count = 0
                Delay = TimeSpan.Zero
            }
        | WireAction.Hang ->
            {
                Kind = ServerActionKind.Hang
                Count = 0
                Delay = TimeSpan.Zero
            }
        | WireAction.ReadInput ->
            {
                Kind =
                    (if closed then
                         ServerActionKind.Close
                     else
                         ServerActionKind.ReadInput)
                Count = 0
                Delay = TimeSpan.Zero
            }

    /// Releases the maildrop if the session still holds it, and any open message stream.
    member this.Dispose() =
        match state.Phase with
        | ServerPhase.Closed -> ()
        | _ -> this.FeedEndOfStream()

        (transmitter :> IDisposable).Dispose()

    interface IDisposable with
        member this.Dispose() = this.Dispose()
