using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.FSharp.Core;
using Pop3Functional.Core;

namespace Pop3Functional.Shell;

/// <summary>
/// One POP3 connection driven by the pure core (<see cref="Pop3Machine"/>). The shell decides
/// nothing about the protocol: it writes what the core queues, reads what the server sends,
/// feeds it to the core, and hands events to the caller. Results are values
/// (<c>FSharpResult&lt;T, Pop3Error&gt;</c>: the core's one error type, DESIGN §12); cancelling
/// an operation closes the connection and throws <see cref="OperationCanceledException"/>.
/// Not thread-safe: one operation at a time.
/// </summary>
public sealed partial class Pop3Connection : IAsyncDisposable
{
    private readonly Pop3ConnectionOptions options;
    private readonly Pop3Machine machine;
    private readonly Stream transport;
    private readonly Socket? socket;
    private readonly string endpoint;
    private readonly ProtocolLog log;
    private readonly ArrayBufferWriter<byte> outgoing = new(1024);
    private Stream stream;
    private PipeReader reader;
    private readonly Dictionary<long, ulong> sizeMismatches = [];
    private readonly Dictionary<long, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>> sinks = [];
    private readonly Dictionary<long, FSharpResult<Pop3Output, Pop3Error>> finals = [];
    private readonly HashSet<long> tracked = [];
    private readonly HashSet<long> answered = [];

    // The request AwaitCoreAsync pumps for, and one delegate testing it for every request (the pump
    // has one owner at a time), instead of a closure per request.
    private long awaitedId;
    private Func<bool>? awaitedFinal;

    // The source whose timer bounds each read (the reply timeout), linked to idleFor; reused from
    // read to read while that token stays the same and it has not fired (TryReset), instead of a
    // new linked source and timer per read.
    private CancellationTokenSource? idle;
    private CancellationToken idleFor;

    private readonly LowSpeedRule speed;
    private Pop3Output? authorizationReady;
    private bool upgradePending;

    // When the status line now awaited started to be due (DESIGN §12: it must arrive completely
    // within the reply timeout, however it is dripped); null while a body or listing streams.
    private long? statusDueSince;
    private long octetsSinceStatusDue;
    private long octetsReceived;
    private int busy;

    /// <summary>POP3 is sequential: a second operation while one runs is refused, not interleaved.</summary>
    private bool Enter() => Interlocked.Exchange(ref busy, 1) == 0;

    private void Exit() => Volatile.Write(ref busy, 0);

    private static Pop3Error Busy(string command) =>
        ShellErrors.Usage(command, $"{command} was refused: another operation is still running on this connection (one at a time).");
    private System.Diagnostics.Activity? session;
    private long nextId = 1;
    private Pop3Error? broken;
    private bool closed;

    private Pop3Connection(Pop3ConnectionOptions options, Stream transport, Socket? socket, Stream stream, string endpoint)
    {
        this.options = options;
        this.transport = transport;
        this.socket = socket;
        this.stream = stream;
        this.endpoint = endpoint;
        // Over implicit TLS the core needs the channel-binding data from the start (SCRAM-*-PLUS).
        machine = stream is System.Net.Security.SslStream ssl
            ? Pop3Machine.CreateOverTlsWithBinding(options.EffectiveCore(), Transport.ChannelBinding(ssl)!)
            : new Pop3Machine(options.EffectiveCore());
        reader = NewReader(stream);
        log = new ProtocolLog(options.Logger, endpoint);
        speed = new LowSpeedRule(options.LowSpeedLimitOctets, options.LowSpeedTime, endpoint);
    }

    /// <summary>The greeting and capabilities, once connected.</summary>
    public Pop3Greeting Greeting { get; private set; } = null!;

    /// <summary>The capabilities in force now (they change after STLS and after login).</summary>
    public Pop3Capabilities Capabilities => machine.Capabilities;

    /// <summary>True when TLS protects the connection.</summary>
    public bool IsTlsActive => machine.IsTlsActive;

    /// <summary>
    /// False once the connection is closed or broken (after QUIT, a timeout, a cancellation, an
    /// abandoned enumeration or message stream, a transport failure): every later operation fails.
    /// </summary>
    public bool IsOpen => broken is null && !closed;

    /// <summary>The server's address as connected ("host:port", or "stream" for a caller's stream).</summary>
    public string Endpoint => endpoint;

    /// <summary>The maildrop as fixed at login (count and octets), or null before login.</summary>
    public Pop3Stat? Maildrop { get; private set; }

    /// <summary>
    /// Connects over TCP to <see cref="Pop3ConnectionOptions.Host"/>, runs TLS as the options
    /// say, reads the greeting and the capabilities (and upgrades with STLS when required).
    /// </summary>
    public static async ValueTask<FSharpResult<Pop3Connection, Pop3Error>> ConnectAsync(
        Pop3ConnectionOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (Validate(options) is { } invalid)
        {
            return ShellErrors.Fail<Pop3Connection>(invalid);
        }

        if (string.IsNullOrWhiteSpace(options.Host))
        {
            return ShellErrors.Fail<Pop3Connection>(ShellErrors.Usage("", "No host was given to connect to."));
        }

        var endpoint = $"{options.Host}:{options.Port}";
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(options.ConnectTimeout);
        Socket? socket = null;
        Stream? stream = null;
        try
        {
            options.Logger?.LogDebug("Connecting to {Endpoint}", endpoint);
            socket = await Transport.ConnectTcpAsync(options.Host, options.Port, limit.Token).ConfigureAwait(false);
            var network = new NetworkStream(socket, ownsSocket: true);
            stream = network;
            return await StartAsync(options, network, socket, endpoint, limit, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await DisposeQuietly(stream, socket).ConfigureAwait(false);
            throw;
        }
        catch (OperationCanceledException ex)
        {
            await DisposeQuietly(stream, socket).ConfigureAwait(false);
            var message = $"Connecting to {endpoint} took longer than {options.ConnectTimeout.TotalSeconds:0.#} s.";
            return ShellErrors.Fail<Pop3Connection>(ShellErrors.Transport("connect", endpoint, message, new TimeoutException(message, ex)));
        }
        catch (Exception ex) when (ex is SocketException or IOException)
        {
            await DisposeQuietly(stream, socket).ConfigureAwait(false);
            return ShellErrors.Fail<Pop3Connection>(ShellErrors.Transport("connect", endpoint, $"Could not connect to {endpoint}: {ex.Message}", ex));
        }
    }

    /// <summary>
    /// Runs a session over a caller's duplex stream (a proxy, a tunnel, an in-memory pipe). With
    /// <see cref="TlsMode.Implicit"/> the shell runs the TLS handshake over it first. The
    /// connection owns the stream from now on.
    /// </summary>
    public static async ValueTask<FSharpResult<Pop3Connection, Pop3Error>> ConnectAsync(
        Stream stream, Pop3ConnectionOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(options);
        if (Validate(options) is { } invalid)
        {
            // The connection owns the stream from the call on, even when it never starts.
            await DisposeQuietly(stream, null).ConfigureAwait(false);
            return ShellErrors.Fail<Pop3Connection>(invalid);
        }

        var endpoint = string.IsNullOrEmpty(options.Host) ? "stream" : $"{options.Host}:{options.Port}";
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(options.ConnectTimeout);
        try
        {
            return await StartAsync(options, stream, null, endpoint, limit, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await DisposeQuietly(stream, null).ConfigureAwait(false);
            throw;
        }
        catch (OperationCanceledException ex)
        {
            await DisposeQuietly(stream, null).ConfigureAwait(false);
            var message = $"Starting the session over the stream took longer than {options.ConnectTimeout.TotalSeconds:0.#} s.";
            return ShellErrors.Fail<Pop3Connection>(ShellErrors.Transport("connect", endpoint, message, new TimeoutException(message, ex)));
        }
    }

    private static Pop3Error? Validate(Pop3ConnectionOptions options)
    {
        // poplib: "a timeout of zero raises ValueError"; ours is a usage error before connecting.
        if (options.ReplyTimeout <= TimeSpan.Zero)
        {
            return ShellErrors.Usage("", "The reply timeout must be positive.");
        }

        if (options.ConnectTimeout <= TimeSpan.Zero)
        {
            return ShellErrors.Usage("", "The connect timeout must be positive.");
        }

        if (options.LowSpeedTime <= TimeSpan.Zero || options.LowSpeedLimitOctets < 0)
        {
            return ShellErrors.Usage("", "The low-speed rule needs a positive time and a limit of zero or more octets.");
        }

        if (options.OperationDeadline is { } d && d <= TimeSpan.Zero)
        {
            return ShellErrors.Usage("", "The operation deadline must be positive.");
        }

        // A .NET timer waits at most about 49.7 days; a longer limit would throw at first use.
        foreach (var (name, limit) in new[]
        {
            ("reply timeout", options.ReplyTimeout), ("connect timeout", options.ConnectTimeout),
            ("low-speed time", options.LowSpeedTime), ("operation deadline", options.OperationDeadline ?? TimeSpan.Zero),
        })
        {
            if (limit > Pop3ConnectionOptions.MaxTimeLimit)
            {
                return ShellErrors.Usage("", $"The {name} of {limit} is longer than the longest time limit, {Pop3ConnectionOptions.MaxTimeLimit}.");
            }
        }

        if (options.Port is < 1 or > 65535)
        {
            return ShellErrors.Usage("", $"The port {options.Port} is not between 1 and 65535.");
        }

        return null;
    }

    private static async ValueTask<FSharpResult<Pop3Connection, Pop3Error>> StartAsync(
        Pop3ConnectionOptions options, Stream transport, Socket? socket, string endpoint,
        CancellationTokenSource limit, CancellationToken callerToken)
    {
        Stream stream = transport;
        if (options.Tls == TlsMode.Implicit)
        {
            try
            {
                stream = await Transport.AuthenticateAsync(transport, options, endpoint, limit.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is System.Security.Authentication.AuthenticationException or IOException)
            {
                await DisposeQuietly(transport, socket).ConfigureAwait(false);
                return ShellErrors.Fail<Pop3Connection>(ShellErrors.Transport(
                    "TLS handshake", endpoint, $"The TLS handshake with {endpoint} failed: {ex.Message}", ex));
            }
        }

        var connection = new Pop3Connection(options, transport, socket, stream, endpoint);
        connection.session = Pop3Telemetry.StartSession(string.IsNullOrEmpty(options.Host) ? endpoint : options.Host, options.Port, options.Tls);
        Pop3Error? failed;
        try
        {
            failed = await connection.PumpUntilAsync(
                () => connection.authorizationReady is not null, limit.Token, callerToken, "greeting", "connect timeout").ConfigureAwait(false);
        }
        catch
        {
            // Whatever escapes (the caller's cancellation, a stream that throws something other than
            // an I/O error), the connection never reaches the caller: close it here.
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        if (connection.authorizationReady is not { } output)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            if (failed is Pop3Error.Transport { Item: { IsTimeout: true } timeout } && options.Tls != TlsMode.Implicit && connection.octetsReceived == 0)
            {
                // Silence from the first byte is what a port that expects TLS at once looks like.
                var message = $"{timeout.Message} {endpoint} sent no greeting; if it expects TLS from the first byte (implicit TLS, usually port 995), use TlsMode.Implicit.";
                failed = ShellErrors.Transport(timeout.Operation, timeout.Endpoint, message, new TimeoutException(message, timeout.Exception.Value));
            }

            return ShellErrors.Fail<Pop3Connection>(failed ?? ShellErrors.Transport("greeting", endpoint, $"{endpoint} closed the connection before the session was ready."));
        }

        var capaSupported = output.Source is Output.Emit { Item: Event.AuthorizationReady info } && info.Item.CapaSupported;
        connection.Greeting = new Pop3Greeting(output.Text, output.ApopAvailable, capaSupported, output.Capabilities, connection.IsTlsActive);
        return ShellErrors.Ok(connection);
    }

    // ---- the pump ----

    /// <summary>
    /// Submits a request and pumps until its final event. Body slices go to <paramref name="body"/>
    /// while they arrive (they point into the read buffer: write or copy them before returning).
    /// </summary>
    internal async ValueTask<FSharpResult<Pop3Output, Pop3Error>> RunAsync(
        Pop3Request request, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? body, CancellationToken cancellationToken)
    {
        if (broken is { } error)
        {
            return ShellErrors.Fail<Pop3Output>(error);
        }

        if (!Enter())
        {
            return ShellErrors.Fail<Pop3Output>(Busy(request.Keyword));
        }

        try
        {
            speed.Restart();
            statusDueSince = null;
            var id = Submit(request, body);
            return await AwaitAsync(id, request.Keyword, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Hands a request to the core (which sends it now or when its pipelining window allows).</summary>
    private long Submit(Pop3Request request, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? body)
    {
        var id = nextId++;
        tracked.Add(id);
        if (body is not null)
        {
            sinks[id] = body;
        }

        machine.Submit(id, request);
        return id;
    }

    /// <summary>A source whose token also fires at the operation deadline; null when no deadline is set (the caller's token serves).</summary>
    private CancellationTokenSource? Deadline(CancellationToken cancellationToken)
    {
        if (options.OperationDeadline is not { } limit)
        {
            return null;
        }

        var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(limit);
        return deadline;
    }

    /// <summary>Pumps until the request's final event, within the operation deadline.</summary>
    private async ValueTask<FSharpResult<Pop3Output, Pop3Error>> AwaitAsync(long id, string command, CancellationToken cancellationToken)
    {
        var scope = new Pop3Telemetry.CommandScope(command, endpoint, session);
        FSharpResult<Pop3Output, Pop3Error> result;
        try
        {
            result = await AwaitCoreAsync(id, command, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            scope.Cancelled();
            throw;
        }

        if (result.IsOk)
        {
            scope.Succeeded(result.ResultValue.EventKind == Pop3EventKind.BodyEnded ? result.ResultValue.Octets : null);
        }
        else
        {
            scope.Failed(result.ErrorValue);
        }

        return result;
    }

    private async ValueTask<FSharpResult<Pop3Output, Pop3Error>> AwaitCoreAsync(long id, string command, CancellationToken cancellationToken)
    {
        using var deadline = Deadline(cancellationToken);

        try
        {
            awaitedId = id;
            var error = await PumpUntilAsync(awaitedFinal ??= () => finals.ContainsKey(awaitedId), deadline?.Token ?? cancellationToken, cancellationToken, command).ConfigureAwait(false);
            if (finals.Remove(id, out var result))
            {
                return result;
            }

            return ShellErrors.Fail<Pop3Output>(error ?? broken ?? ShellErrors.Transport(command, endpoint, $"The connection to {endpoint} is closed."));
        }
        finally
        {
            tracked.Remove(id);
            answered.Remove(id);
            sinks.Remove(id);
        }
    }

    private static bool IsFinal(Pop3Output o) =>
        o.EventKind switch
        {
            Pop3EventKind.Answered => o.Source is not Output.Emit { Item: Event.Answered { Item2: Reply.MessageFollows } },
            Pop3EventKind.BodyEnded or Pop3EventKind.Rejected or Pop3EventKind.Refused or Pop3EventKind.Aborted => true,
            _ => false,
        };

    /// <summary>
    /// The pump: write what the core queued, read, feed, hand events out, until
    /// <paramref name="satisfied"/> holds or the connection breaks. Returns the error that broke
    /// it, or null. Cancellation by the caller closes the connection and throws.
    /// </summary>
    private async ValueTask<Pop3Error?> PumpUntilAsync(
        Func<bool> satisfied, CancellationToken token, CancellationToken callerToken, string command, string limit = "operation deadline")
    {
        try
        {
            while (true)
            {
                await DrainAsync(token).ConfigureAwait(false);
                if (upgradePending)
                {
                    await UpgradeAsync(token).ConfigureAwait(false);
                    continue;
                }

                if (satisfied())
                {
                    return null;
                }

                if (broken is { } error)
                {
                    return error;
                }

                await ReadOnceAsync(token, command).ConfigureAwait(false);
            }
        }
        catch (SinkException ex)
        {
            // The caller's code (or its destination stream) failed while a body was arriving: the
            // rest of the reply cannot be matched to anything any more, so the connection closes.
            // The failure is a value like any other, with the caller's exception as its cause.
            var inner = ex.InnerException!;
            var error = ShellErrors.Transport(
                command, endpoint, $"The caller's sink failed during {command} ({inner.GetType().Name}: {inner.Message}); the connection was closed.", inner);
            Break(error);
            return error;
        }
        catch (OperationCanceledException) when (callerToken.IsCancellationRequested)
        {
            // The protocol cannot resynchronise after an abandoned command: close (DESIGN §12).
            Break(ShellErrors.Transport(command, endpoint, $"{command} was cancelled; the connection was closed."));
            throw;
        }
        catch (OperationCanceledException ex)
        {
            var message = $"{command} did not complete within the {limit}; the connection was closed.";
            var error = ShellErrors.Transport(command, endpoint, message, new TimeoutException(message, ex));
            Break(error);
            return error;
        }
        catch (TimeoutException ex)
        {
            var error = ShellErrors.Transport(command, endpoint, ex.Message, ex);
            Break(error);
            return error;
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or System.Security.Authentication.AuthenticationException)
        {
            var error = ShellErrors.Transport(command, endpoint, $"The connection to {endpoint} failed during {command}: {ex.Message}", ex);
            Break(error);
            return error;
        }
    }

    /// <summary>Handles every queued output: writes, the STLS upgrade, body slices, final events.</summary>
    private async ValueTask DrainAsync(CancellationToken token)
    {
        // The sink of the last slice: one message's slices follow each other, so the lookup is per message.
        var sinkId = 0L;
        Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? bodySink = null;
        while (machine.TryDequeueEntry(out var entry))
        {
            // Body slices, most of the outputs, go to their sink as values: no event, no Pop3Output.
            if (entry.IsBody)
            {
                if (entry.BodyId != sinkId)
                {
                    sinkId = entry.BodyId;
                    bodySink = sinks.GetValueOrDefault(sinkId);
                }

                if (bodySink is not null)
                {
                    await DeliverAsync(bodySink, entry.Body, token).ConfigureAwait(false);
                }

                continue;
            }

            sinkId = 0L;

            // The other outputs of every message (its RETR, its "+OK") are handled from the core's
            // values too; a Pop3Output is built only where a caller or the log sees one.
            switch (entry.Output)
            {
                case Output.Send send:
                    log.Client(send.Item.LogText);
                    Pop3Telemetry.PutLine(send.Item.LogText);
                    outgoing.Write(send.Item.Bytes.Span);
                    continue;
                case Output.Emit { Item: Event.Answered { Item2: Reply.MessageFollows } follows } when !log.WantsEvents:
                    // Not final: the body follows. A status line completed: the next one's clock starts anew.
                    statusDueSince = null;
                    if (tracked.Contains(follows.Item1))
                    {
                        answered.Add(follows.Item1);
                    }

                    continue;
            }

            var output = machine.ToPublic(entry.Output);
            if (output.Kind == Pop3OutputKind.Event
                && output.EventKind is not (Pop3EventKind.QuirkTolerated or Pop3EventKind.SizeMismatch or Pop3EventKind.BodyEnded))
            {
                // A status line (or a whole listing) just completed: the next one's clock starts anew.
                statusDueSince = null;
            }

            switch (output.Kind)
            {
                case Pop3OutputKind.Send:
                    log.Client(output.LogText);
                    Pop3Telemetry.PutLine(output.LogText);
                    outgoing.Write(output.Bytes.Span);
                    break;

                case Pop3OutputKind.StartTls:
                    // The handshake waits until every octet of the current read has been fed (the
                    // core rejects any that followed +OK) and the read buffer is released.
                    upgradePending = true;
                    break;

                case Pop3OutputKind.Close:
                    await FlushAsync(token).ConfigureAwait(false);
                    closed = true;
                    break;

                default:
                    log.Event(output);
                    switch (output.EventKind)
                    {
                        case Pop3EventKind.SizeMismatch:
                            sizeMismatches[output.RequestId] = output.ListedOctets;
                            break;
                        case Pop3EventKind.Failed:
                            broken ??= output.Failure.Error;
                            break;
                        case Pop3EventKind.AuthorizationReady:
                            authorizationReady = output.Detach();
                            break;
                    }

                    if (output.EventKind == Pop3EventKind.Answered && tracked.Contains(output.RequestId) && !IsFinal(output))
                    {
                        answered.Add(output.RequestId);
                    }

                    if (tracked.Contains(output.RequestId) && IsFinal(output))
                    {
                        finals[output.RequestId] = output.EventKind switch
                        {
                            Pop3EventKind.Rejected or Pop3EventKind.Refused or Pop3EventKind.Aborted =>
                                ShellErrors.Fail<Pop3Output>(output.Failure.Error),
                            // A fresh Pop3Output: only Bytes pointing into the read buffer need a copy.
                            _ => ShellErrors.Ok(output.Bytes.IsEmpty ? output : output.Detach()),
                        };
                    }

                    break;
            }
        }

        await FlushAsync(token).ConfigureAwait(false);
    }

    /// <summary>Hands a body slice to the caller's sink (the low-speed rule counts only reads, not this).</summary>
    private static async ValueTask DeliverAsync(Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink, ReadOnlyMemory<byte> slice, CancellationToken token)
    {
        try
        {
            await sink(slice, token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !token.IsCancellationRequested)
        {
            throw new SinkException(ex);
        }
    }

    /// <summary>The caller's sink threw; carries its exception out of the pump.</summary>
    private sealed class SinkException(Exception inner) : Exception(inner.Message, inner);

    private async ValueTask FlushAsync(CancellationToken token)
    {
        if (outgoing.WrittenCount == 0)
        {
            return;
        }

        try
        {
            await stream.WriteAsync(outgoing.WrittenMemory, token).ConfigureAwait(false);
            await stream.FlushAsync(token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            machine.WriteFailed("write", endpoint, $"Writing to {endpoint} failed: {ex.Message}", ex);
        }
        finally
        {
            outgoing.Clear();
        }
    }

    /// <summary>
    /// One read: waits at most the reply timeout for octets and feeds every segment, handing out
    /// each segment's events before the next is fed (body slices point into the segment).
    /// </summary>
    private async ValueTask ReadOnceAsync(CancellationToken token, string command)
    {
        if (closed)
        {
            machine.FeedEndOfStream();
            await DrainAsync(token).ConfigureAwait(false);
            broken ??= ShellErrors.Transport(command, endpoint, $"The connection to {endpoint} is closed.");
            return;
        }

        var wait = options.ReplyTimeout;
        if (machine.Session.Reading.IsStatus)
        {
            if (statusDueSince is null)
            {
                statusDueSince = System.Diagnostics.Stopwatch.GetTimestamp();
                octetsSinceStatusDue = 0;
            }

            wait -= System.Diagnostics.Stopwatch.GetElapsedTime(statusDueSince.Value);
            if (wait <= TimeSpan.Zero)
            {
                throw StatusLineTimeout(command);
            }
        }
        else
        {
            statusDueSince = null;
        }

        var idleToken = IdleToken(token, wait);
        ReadResult read;
        var current = reader;
        speed.ReadStarting();
        try
        {
            read = await current.ReadAsync(idleToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!token.IsCancellationRequested)
        {
            throw statusDueSince is null || octetsSinceStatusDue == 0
                ? new TimeoutException($"{endpoint} sent nothing for {options.ReplyTimeout.TotalSeconds:0.#} s while the reply to {command} was due; the connection was closed.")
                : StatusLineTimeout(command);
        }

        var buffer = read.Buffer;
        octetsSinceStatusDue += buffer.Length;
        octetsReceived += buffer.Length;
        speed.Observe(buffer.Length, command);
        Pop3Telemetry.OctetsReceived.Add(buffer.Length);
        QuickAck();
        try
        {
            foreach (var segment in buffer)
            {
                log.Received(segment.Span);
                machine.Feed(segment);
                await DrainAsync(token).ConfigureAwait(false);
            }
        }
        finally
        {
            // Every octet was handed to the core (it copies what it keeps): never feed them twice.
            current.AdvanceTo(buffer.End);
        }

        if (read.IsCompleted)
        {
            machine.FeedEndOfStream();
            await DrainAsync(token).ConfigureAwait(false);
            closed = true;
        }
    }

    /// <summary>A token cancelled when <paramref name="token"/> is, or after <paramref name="wait"/>.</summary>
    private CancellationToken IdleToken(CancellationToken token, TimeSpan wait)
    {
        if (idle is null || idleFor != token || !idle.TryReset())
        {
            idle?.Dispose();
            idle = CancellationTokenSource.CreateLinkedTokenSource(token);
            idleFor = token;
        }

        idle.CancelAfter(wait);
        return idle.Token;
    }

    /// <summary>
    /// Linux delays ACKs; a lock-step server that waits for them (Nagle) stalls 22–44 ms per
    /// message (DESIGN §9). Asking for a quick ACK after each read removes the stall.
    /// </summary>
    private TimeoutException StatusLineTimeout(string command) =>
        new($"{endpoint} did not complete the status line of the reply to {command} within {options.ReplyTimeout.TotalSeconds:0.#} s; the connection was closed.");

    private static readonly byte[] QuickAckOn = BitConverter.GetBytes(1);

    private void QuickAck()
    {
        if (socket is null || !OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            const int ipProtoTcp = 6;
            const int tcpQuickAck = 12;
            socket.SetRawSocketOption(ipProtoTcp, tcpQuickAck, QuickAckOn);
        }
        catch (SocketException)
        {
            // Best effort: some socket types refuse the option.
        }
    }

    /// <summary>STLS: the handshake on the same transport, then a reader over TLS (RFC 2595 §4).</summary>
    private async ValueTask UpgradeAsync(CancellationToken token)
    {
        upgradePending = false;
        await reader.CompleteAsync().ConfigureAwait(false);
        // The reader has handed every octet it read to the core, which rejects any that followed
        // +OK (response injection); nothing of the TLS stream was read as plaintext, because the
        // pump reads only while a reply is due and none is due during the handshake. The read
        // that fed the +OK retires the plaintext reader once it has advanced past its buffer.
        try
        {
            var ssl = await Transport.AuthenticateAsync(stream, options, endpoint, token).ConfigureAwait(false);
            stream = ssl;
            reader = NewReader(ssl);
            machine.TlsEstablishedWithBinding(Transport.ChannelBinding(ssl)!);
        }
        catch (Exception ex) when (ex is System.Security.Authentication.AuthenticationException or IOException)
        {
            Break(ShellErrors.Transport("TLS handshake", endpoint, $"The STLS handshake with {endpoint} failed: {ex.Message}", ex));
        }
    }

    // Large reads: each read that has to wait costs a hand-off through the thread pool, whose
    // workers then spin on a CPU the server may need; over TLS a larger buffer also lets SslStream
    // hand over more than one record per read. On a busy machine 256 KiB halved the reads and cut
    // the waits per 1 MiB message over TLS from about 30 to about 10; on a quiet one it made no
    // measurable difference (docs/benchmarks.md, 2026-12-06).
    private static PipeReader NewReader(Stream stream) =>
        PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 262144, minimumReadSize: 65536, leaveOpen: true));

    private void Break(Pop3Error error)
    {
        broken ??= error;
        closed = true;
        try
        {
            stream.Dispose();
            transport.Dispose();
            socket?.Dispose();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
        {
            // Already gone: nothing more to release.
        }
    }

    // ---- operations ----

    /// <summary>USER and PASS (RFC 1939 §7). The password is sent only over TLS unless plaintext credentials were allowed.</summary>
    public async ValueTask<FSharpResult<Pop3Stat, Pop3Error>> LoginAsync(string user, Secret password, CancellationToken cancellationToken = default)
    {
        var userResult = await RunAsync(Pop3Request.User(user), null, cancellationToken).ConfigureAwait(false);
        if (userResult.IsError)
        {
            return ShellErrors.Fail<Pop3Stat>(userResult.ErrorValue);
        }

        return LoggedIn(await RunAsync(Pop3Request.Pass(password), null, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>USER alone (RFC 1939 §7), for callers that send PASS or RPOP themselves (poplib's <c>user</c>).</summary>
    public async ValueTask<FSharpResult<string, Pop3Error>> UserAsync(string user, CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.User(user), null, cancellationToken).ConfigureAwait(false), o => o.Text ?? "");

    /// <summary>
    /// PASS alone, after a successful <see cref="UserAsync"/> (RFC 1939 §7; poplib's <c>pass_</c>). Sent
    /// only over TLS unless plaintext credentials were allowed; the maildrop is fixed on success.
    /// </summary>
    public async ValueTask<FSharpResult<Pop3Stat, Pop3Error>> PassAsync(Secret password, CancellationToken cancellationToken = default) =>
        LoggedIn(await RunAsync(Pop3Request.Pass(password), null, cancellationToken).ConfigureAwait(false));

    /// <summary>APOP (RFC 1939 §7): the password never crosses the wire; needs the greeting's timestamp.</summary>
    public async ValueTask<FSharpResult<Pop3Stat, Pop3Error>> LoginApopAsync(string user, Secret password, CancellationToken cancellationToken = default) =>
        LoggedIn(await RunAsync(Pop3Request.Apop(user, password), null, cancellationToken).ConfigureAwait(false));


    private FSharpResult<Pop3Stat, Pop3Error> LoggedIn(FSharpResult<Pop3Output, Pop3Error> result)
    {
        if (result.IsError)
        {
            return ShellErrors.Fail<Pop3Stat>(result.ErrorValue);
        }

        var stat = new Pop3Stat(result.ResultValue.Count, result.ResultValue.Octets);
        Maildrop = stat;
        return ShellErrors.Ok(stat);
    }

    /// <summary>STAT (RFC 1939 §5).</summary>
    public async ValueTask<FSharpResult<Pop3Stat, Pop3Error>> StatAsync(CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.Stat(), null, cancellationToken).ConfigureAwait(false), o => new Pop3Stat(o.Count, o.Octets));

    /// <summary>LIST: every message and its size (RFC 1939 §5).</summary>
    public async ValueTask<FSharpResult<IReadOnlyList<ListEntry>, Pop3Error>> ListAsync(CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.List(), null, cancellationToken).ConfigureAwait(false), o => o.ListEntries);

    /// <summary>LIST n (RFC 1939 §5).</summary>
    public async ValueTask<FSharpResult<ListEntry, Pop3Error>> ListAsync(ulong message, CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.List(message), null, cancellationToken).ConfigureAwait(false), o => o.ListEntries[0]);

    /// <summary>UIDL: every message's unique id (RFC 1939 §7).</summary>
    public async ValueTask<FSharpResult<IReadOnlyList<UidEntry>, Pop3Error>> UidlAsync(CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.Uidl(), null, cancellationToken).ConfigureAwait(false), o => o.UidEntries);

    /// <summary>UIDL n (RFC 1939 §7).</summary>
    public async ValueTask<FSharpResult<UidEntry, Pop3Error>> UidlAsync(ulong message, CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.Uidl(message), null, cancellationToken).ConfigureAwait(false), o => o.UidEntries[0]);

    /// <summary>
    /// RETR n (RFC 1939 §5), streamed into <paramref name="sink"/> while it arrives: dot-unstuffed,
    /// never held whole in memory. The sink receives slices of the read buffer.
    /// </summary>
    public async ValueTask<FSharpResult<Pop3Retrieval, Pop3Error>> RetrieveAsync(
        ulong message, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sink);
        return Retrieval(message, await RunAsync(Pop3Request.Retr(message), sink, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// RETR n as a stream read while the message arrives (one network read buffered at a time).
    /// The session goes on once the stream is disposed (DisposeAsync reads and drops an unread rest).
    /// </summary>
    public async ValueTask<FSharpResult<Pop3MessageStream, Pop3Error>> OpenMessageAsync(ulong message, CancellationToken cancellationToken = default)
    {
        if (broken is { } error)
        {
            return ShellErrors.Fail<Pop3MessageStream>(error);
        }

        if (!Enter())
        {
            return ShellErrors.Fail<Pop3MessageStream>(Busy("RETR"));
        }

        speed.Restart();
        var body = new Pop3MessageStream(this, message, options.OperationDeadline)
        {
            // The span and the latency cover the whole message, until the stream is disposed.
            Telemetry = new Pop3Telemetry.CommandScope("RETR", endpoint, session),
        };
        body.Id = Submit(Pop3Request.Retr(message), body.Accept);
        var id = body.Id;
        using var deadline = Deadline(cancellationToken);
        Pop3Error? failed;
        try
        {
            failed = await PumpUntilAsync(() => answered.Contains(id) || finals.ContainsKey(id), deadline?.Token ?? cancellationToken, cancellationToken, "RETR")
                .ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            body.Telemetry.Cancelled();
            EndBody(body);
            throw;
        }
        catch
        {
            EndBody(body);
            throw;
        }

        if (finals.TryGetValue(id, out var final) && final.IsError)
        {
            EndBody(body);
            return ShellErrors.Fail<Pop3MessageStream>(final.ErrorValue);
        }

        if (!answered.Contains(id) && !finals.ContainsKey(id))
        {
            EndBody(body);
            return ShellErrors.Fail<Pop3MessageStream>(failed ?? broken ?? ShellErrors.Transport("RETR", endpoint, $"The connection to {endpoint} is closed."));
        }

        return ShellErrors.Ok(body);
    }

    /// <summary>Pumps until the stream has new octets or its body ended; returns the error that stopped it.</summary>
    internal async ValueTask<Pop3Error?> PumpBodyAsync(Pop3MessageStream body, CancellationToken cancellationToken)
    {
        var before = body.OctetsReceived;
        var id = body.Id;
        // The deadline covers the whole message, from OpenMessageAsync on, not each read.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, body.DeadlineToken);
        var failed = await PumpUntilAsync(() => body.OctetsReceived > before || finals.ContainsKey(id), deadline.Token, cancellationToken, "RETR")
            .ConfigureAwait(false);

        if (finals.TryGetValue(id, out var final) && final.IsError)
        {
            return final.ErrorValue;
        }

        return body.OctetsReceived > before || finals.ContainsKey(id) ? null : failed ?? broken;
    }

    internal bool IsBodyComplete(Pop3MessageStream body) => finals.TryGetValue(body.Id, out var final) && final.IsOk;

    internal void EndBody(Pop3MessageStream body)
    {
        var found = finals.TryGetValue(body.Id, out var final);
        if (found && final.IsOk)
        {
            body.Telemetry.Succeeded(final.ResultValue.Octets);
        }
        else
        {
            body.Telemetry.Failed(found ? final.ErrorValue : body.Failure ?? broken
                ?? ShellErrors.Transport("RETR", endpoint, $"Message {body.Message} was not read to its end."));
        }

        Exit();
        sizeMismatches.Remove(body.Id);
        finals.Remove(body.Id);
        answered.Remove(body.Id);
        tracked.Remove(body.Id);
        sinks.Remove(body.Id);
    }

    internal void AbandonBody(Pop3MessageStream body)
    {
        var error = ShellErrors.Transport("RETR", endpoint, $"Message {body.Message} was abandoned before its end; the connection was closed.");
        body.Telemetry.Failed(error);
        EndBody(body);
        Break(error);
    }

    /// <summary>RETR n written to a caller's stream while it arrives.</summary>
    public ValueTask<FSharpResult<Pop3Retrieval, Pop3Error>> RetrieveAsync(ulong message, Stream destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return RetrieveAsync(message, (bytes, ct) => destination.WriteAsync(bytes, ct), cancellationToken);
    }

    /// <summary>RETR n written to a caller's PipeWriter while it arrives (flushed per slice, so back-pressure applies).</summary>
    public ValueTask<FSharpResult<Pop3Retrieval, Pop3Error>> RetrieveAsync(ulong message, System.IO.Pipelines.PipeWriter destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return RetrieveAsync(
            message,
            async (bytes, ct) => await destination.WriteAsync(bytes, ct).ConfigureAwait(false),
            cancellationToken);
    }

    /// <summary>RETR n as one array (for small messages; use a sink for large ones).</summary>
    public async ValueTask<FSharpResult<byte[], Pop3Error>> RetrieveBytesAsync(ulong message, CancellationToken cancellationToken = default)
    {
        return await CollectAsync((sink, ct) => RetrieveAsync(message, sink, ct), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>TOP n lines (RFC 1939 §7): the header, the blank line and the first lines of the body, into a sink.</summary>
    public async ValueTask<FSharpResult<Pop3Retrieval, Pop3Error>> TopAsync(
        ulong message, ulong lines, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sink);
        return Retrieval(message, await RunAsync(Pop3Request.Top(message, lines), sink, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>TOP n lines as one array.</summary>
    public async ValueTask<FSharpResult<byte[], Pop3Error>> TopBytesAsync(ulong message, ulong lines, CancellationToken cancellationToken = default)
    {
        return await CollectAsync((sink, ct) => TopAsync(message, lines, sink, ct), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs a body-bearing command into a growing array (for the *BytesAsync forms).</summary>
    private static async ValueTask<FSharpResult<byte[], Pop3Error>> CollectAsync(
        Func<Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>, CancellationToken, ValueTask<FSharpResult<Pop3Retrieval, Pop3Error>>> run,
        CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var result = await run((bytes, _) => { buffer.Write(bytes.Span); return ValueTask.CompletedTask; }, cancellationToken).ConfigureAwait(false);
        return result.IsError ? ShellErrors.Fail<byte[]>(result.ErrorValue) : ShellErrors.Ok(buffer.WrittenSpan.ToArray());
    }

    private FSharpResult<Pop3Retrieval, Pop3Error> Retrieval(ulong message, FSharpResult<Pop3Output, Pop3Error> result)
    {
        if (result.IsError)
        {
            return ShellErrors.Fail<Pop3Retrieval>(result.ErrorValue);
        }

        var id = result.ResultValue.RequestId;
        ulong? listed = sizeMismatches.Remove(id, out var octets) ? octets : null;
        return ShellErrors.Ok(new Pop3Retrieval(message, result.ResultValue.Octets, listed));
    }

    /// <summary>
    /// RETR for several messages, pipelined as the core decides (a bounded window when the server
    /// offers PIPELINING, lock-step otherwise): each body goes to <paramref name="sink"/> with its
    /// message number while it arrives; each result is yielded in order once its body is complete.
    /// </summary>
    public IAsyncEnumerable<FSharpResult<Pop3Retrieval, Pop3Error>> RetrieveManyAsync(
        IEnumerable<ulong> messages,
        Func<ulong, ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink,
        CancellationToken cancellationToken = default) =>
        ManyAsync(messages, Pop3Request.Retr, "RETR", sink, cancellationToken);

    /// <summary>
    /// <see cref="RetrieveManyAsync(IEnumerable{ulong}, Func{ulong, ReadOnlyMemory{byte}, CancellationToken, ValueTask}, CancellationToken)"/>
    /// with progress: <paramref name="progress"/> hears of every slice received and of every
    /// message completed (DESIGN §12: the CLI shows it).
    /// </summary>
    public async IAsyncEnumerable<FSharpResult<Pop3Retrieval, Pop3Error>> RetrieveManyAsync(
        IEnumerable<ulong> messages,
        Func<ulong, ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink,
        IProgress<Pop3Progress> progress,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sink);
        ArgumentNullException.ThrowIfNull(progress);
        var received = new Dictionary<ulong, ulong>();
        await foreach (var result in ManyAsync(
            messages,
            Pop3Request.Retr,
            "RETR",
            (message, bytes, ct) =>
            {
                received[message] = received.GetValueOrDefault(message) + (ulong)bytes.Length;
                progress.Report(new Pop3Progress(message, received[message], false));
                return sink(message, bytes, ct);
            },
            cancellationToken).ConfigureAwait(false))
        {
            if (result.IsOk)
            {
                received.Remove(result.ResultValue.Message);
                progress.Report(new Pop3Progress(result.ResultValue.Message, result.ResultValue.Octets, true));
            }

            yield return result;
        }
    }

    /// <summary>
    /// TOP n <paramref name="lines"/> for several messages, pipelined like <see cref="RetrieveManyAsync(IEnumerable{ulong}, Func{ulong, ReadOnlyMemory{byte}, CancellationToken, ValueTask}, CancellationToken)"/>:
    /// with 0 lines, the headers of a whole maildrop in one round of commands.
    /// </summary>
    public IAsyncEnumerable<FSharpResult<Pop3Retrieval, Pop3Error>> TopManyAsync(
        IEnumerable<ulong> messages,
        ulong lines,
        Func<ulong, ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink,
        CancellationToken cancellationToken = default) =>
        ManyAsync(messages, m => Pop3Request.Top(m, lines), "TOP", sink, cancellationToken);

    private async IAsyncEnumerable<FSharpResult<Pop3Retrieval, Pop3Error>> ManyAsync(
        IEnumerable<ulong> messages,
        Func<ulong, Pop3Request> request,
        string command,
        Func<ulong, ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(sink);
        if (broken is { } error)
        {
            yield return ShellErrors.Fail<Pop3Retrieval>(error);
            yield break;
        }

        if (!Enter())
        {
            yield return ShellErrors.Fail<Pop3Retrieval>(Busy(command));
            yield break;
        }

        speed.Restart();
        var submitted = new List<(ulong Message, long Id)>();
        foreach (var message in messages)
        {
            var m = message;
            submitted.Add((m, Submit(request(m), (bytes, ct) => sink(m, bytes, ct))));
        }

        var next = 0;
        try
        {
            for (; next < submitted.Count; next++)
            {
                var (message, id) = submitted[next];
                yield return Retrieval(message, await AwaitAsync(id, command, cancellationToken).ConfigureAwait(false));
            }
        }
        finally
        {
            // A caller that stops early leaves replies in flight: the session cannot be reused.
            for (var i = next; i < submitted.Count; i++)
            {
                tracked.Remove(submitted[i].Id);
                sinks.Remove(submitted[i].Id);
            }

            if (next < submitted.Count - 1 && broken is null)
            {
                Break(ShellErrors.Transport(command, endpoint, $"{command} was abandoned with replies in flight; the connection was closed."));
            }

            Exit();
        }
    }

    /// <summary>Every message of the maildrop (as fixed at login) as arrays, pipelined; for small messages.</summary>
    public async IAsyncEnumerable<FSharpResult<(ulong Message, byte[] Octets), Pop3Error>> RetrieveAllBytesAsync(
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (Maildrop is null)
        {
            yield return ShellErrors.Fail<(ulong, byte[])>(ShellErrors.Usage("RETR", "RetrieveAllBytesAsync needs a login first: the maildrop is fixed at login (RFC 1939 §4)."));
            yield break;
        }

        var count = Maildrop.Value.Count;
        var buffers = new Dictionary<ulong, ArrayBufferWriter<byte>>();
        var numbers = Enumerable.Range(1, (int)Math.Min(count, int.MaxValue)).Select(n => (ulong)n);
        await foreach (var result in RetrieveManyAsync(
            numbers,
            (message, bytes, _) =>
            {
                if (!buffers.TryGetValue(message, out var buffer))
                {
                    buffers[message] = buffer = new ArrayBufferWriter<byte>();
                }

                buffer.Write(bytes.Span);
                return ValueTask.CompletedTask;
            },
            cancellationToken).ConfigureAwait(false))
        {
            if (result.IsError)
            {
                yield return ShellErrors.Fail<(ulong, byte[])>(result.ErrorValue);
                continue;
            }

            var message = result.ResultValue.Message;
            var octets = buffers.Remove(message, out var written) ? written.WrittenSpan.ToArray() : [];
            yield return ShellErrors.Ok((message, octets));
        }
    }

    /// <summary>RPOP (RFC 1081), after USER: a trusted host vouches for the user. For poplib parity; almost no server accepts it.</summary>
    public async ValueTask<FSharpResult<Pop3Stat, Pop3Error>> LoginRpopAsync(string user, CancellationToken cancellationToken = default)
    {
        var userResult = await RunAsync(Pop3Request.User(user), null, cancellationToken).ConfigureAwait(false);
        if (userResult.IsError)
        {
            return ShellErrors.Fail<Pop3Stat>(userResult.ErrorValue);
        }

        return LoggedIn(await RunAsync(Pop3Request.Rpop(user), null, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>UTF8 (RFC 6856 §2): UTF-8 user names, passwords and texts; before login only.</summary>
    public async ValueTask<FSharpResult<string, Pop3Error>> Utf8Async(CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.Utf8(), null, cancellationToken).ConfigureAwait(false), o => o.Text ?? "");

    /// <summary>LANG (RFC 6856 §3): the languages the server offers.</summary>
    public async ValueTask<FSharpResult<IReadOnlyList<LanguageEntry>, Pop3Error>> LanguagesAsync(CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.Lang(), null, cancellationToken).ConfigureAwait(false), o => o.Languages);

    /// <summary>LANG tag (RFC 6856 §3): the language of the server's texts ("*" for the server's choice).</summary>
    public async ValueTask<FSharpResult<string, Pop3Error>> LanguageAsync(string tag, CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.Lang(tag), null, cancellationToken).ConfigureAwait(false), o => o.Text ?? "");

    /// <summary>
    /// STLS (RFC 2595) on a session opened without it (<see cref="TlsMode.NoTls"/>): the handshake
    /// runs as the core asks, and capabilities are asked again over TLS.
    /// </summary>
    public async ValueTask<FSharpResult<Pop3Capabilities, Pop3Error>> StartTlsAsync(CancellationToken cancellationToken = default)
    {
        authorizationReady = null;
        var result = await RunAsync(Pop3Request.Stls(), null, cancellationToken).ConfigureAwait(false);
        if (result.IsError)
        {
            return ShellErrors.Fail<Pop3Capabilities>(result.ErrorValue);
        }

        // The core forgets what it learned in plaintext and asks CAPA over TLS itself (RFC 2595 §4);
        // the session is ready again once that answer is in.
        var failed = await PumpUntilAsync(() => authorizationReady is not null, cancellationToken, cancellationToken, "STLS").ConfigureAwait(false);
        if (authorizationReady is { } ready)
        {
            Greeting = Greeting with
            {
                ApopAvailable = ready.ApopAvailable,
                Capabilities = ready.Capabilities,
                TlsActive = IsTlsActive,
            };
        }

        return authorizationReady is not null
            ? ShellErrors.Ok(machine.Capabilities)
            : ShellErrors.Fail<Pop3Capabilities>(failed ?? broken ?? ShellErrors.Transport("STLS", endpoint, $"The connection to {endpoint} is closed."));
    }

    /// <summary>DELE n (RFC 1939 §5): marks the message; QUIT commits the marks.</summary>
    public async ValueTask<FSharpResult<string, Pop3Error>> DeleteAsync(ulong message, CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.Dele(message), null, cancellationToken).ConfigureAwait(false), o => o.Text ?? "");

    /// <summary>RSET (RFC 1939 §5): unmarks every message marked deleted.</summary>
    public async ValueTask<FSharpResult<string, Pop3Error>> ResetAsync(CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.Rset(), null, cancellationToken).ConfigureAwait(false), o => o.Text ?? "");

    /// <summary>NOOP (RFC 1939 §5).</summary>
    public async ValueTask<FSharpResult<string, Pop3Error>> NoopAsync(CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.Noop(), null, cancellationToken).ConfigureAwait(false), o => o.Text ?? "");

    /// <summary>CAPA (RFC 2449 §5), asked again.</summary>
    public async ValueTask<FSharpResult<Pop3Capabilities, Pop3Error>> CapabilitiesAsync(CancellationToken cancellationToken = default) =>
        Map(await RunAsync(Pop3Request.Capa(), null, cancellationToken).ConfigureAwait(false), o => o.Capabilities);

    /// <summary>QUIT (RFC 1939 §6): ends the session; says whether the deletions were committed.</summary>
    public async ValueTask<FSharpResult<Pop3QuitResult, Pop3Error>> QuitAsync(CancellationToken cancellationToken = default)
    {
        var result = await RunAsync(Pop3Request.Quit(), null, cancellationToken).ConfigureAwait(false);
        await CloseAsync().ConfigureAwait(false);
        return Map(result, o => new Pop3QuitResult(o.Text ?? "", o.UpdateCompleted, o.DeletionsCommitted));
    }

    private static FSharpResult<T, Pop3Error> Map<T>(FSharpResult<Pop3Output, Pop3Error> result, Func<Pop3Output, T> map) =>
        result.IsError ? ShellErrors.Fail<T>(result.ErrorValue) : ShellErrors.Ok(map(result.ResultValue));

    private async ValueTask CloseAsync()
    {
        closed = true;
        session?.Dispose();
        session = null;
        idle?.Dispose();
        idle = null;
        await reader.CompleteAsync().ConfigureAwait(false);
        await DisposeQuietly(stream, null).ConfigureAwait(false);
        await DisposeQuietly(transport, socket).ConfigureAwait(false);
    }

    private static async ValueTask DisposeQuietly(Stream? stream, Socket? socket)
    {
        try
        {
            if (stream is not null)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }

            socket?.Dispose();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
        {
            // Closing a connection that already failed: nothing more to do.
        }
    }

    /// <summary>Closes the connection without QUIT (nothing marked deleted is removed: RFC 1939 §6).</summary>
    public async ValueTask DisposeAsync()
    {
        if (!closed)
        {
            log.Closing();
        }

        await CloseAsync().ConfigureAwait(false);
    }
}
