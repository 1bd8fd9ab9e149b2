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
public sealed class Pop3Connection : IAsyncDisposable
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
        machine = new Pop3Machine(options.EffectiveCore());
        reader = NewReader(stream);
        log = new ProtocolLog(options.Logger, endpoint);
    }

    /// <summary>The greeting and capabilities, once connected.</summary>
    public Pop3Greeting Greeting { get; private set; } = null!;

    /// <summary>The capabilities in force now (they change after STLS and after login).</summary>
    public Pop3Capabilities Capabilities => machine.Capabilities;

    /// <summary>True when TLS protects the connection.</summary>
    public bool IsTlsActive => machine.IsTlsActive;

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
            return ShellErrors.Fail<Pop3Connection>(ShellErrors.Transport(
                "connect", endpoint, $"Connecting to {endpoint} took longer than {options.ConnectTimeout.TotalSeconds:0.#} s.", ex));
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
            return ShellErrors.Fail<Pop3Connection>(ShellErrors.Transport(
                "connect", endpoint, $"Starting the session over the stream took longer than {options.ConnectTimeout.TotalSeconds:0.#} s.", ex));
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

        if (options.OperationDeadline is { } d && d <= TimeSpan.Zero)
        {
            return ShellErrors.Usage("", "The operation deadline must be positive.");
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
        var ready = await connection.PumpAsync(
            o => o.EventKind == Pop3EventKind.AuthorizationReady, null, limit.Token, callerToken, "greeting").ConfigureAwait(false);

        if (ready.IsError)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            return ShellErrors.Fail<Pop3Connection>(ready.ErrorValue);
        }

        var output = ready.ResultValue;
        var capaSupported = output.Source is Output.Emit { Item: Event.AuthorizationReady info } && info.Item.CapaSupported;
        connection.Greeting = new Pop3Greeting(output.Text, output.ApopAvailable, capaSupported, output.Capabilities, connection.IsTlsActive);
        return ShellErrors.Ok(connection);
    }

    // ---- requests ----

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

        var id = nextId++;
        machine.Submit(id, request);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (options.OperationDeadline is { } limit)
        {
            deadline.CancelAfter(limit);
        }

        return await PumpAsync(o => IsFinal(o, id), body is null ? null : (id, body), deadline.Token, cancellationToken, request.Keyword)
            .ConfigureAwait(false);
    }

    private static bool IsFinal(Pop3Output o, long id) =>
        o.RequestId == id && o.EventKind switch
        {
            Pop3EventKind.Answered => o.Source is not Output.Emit { Item: Event.Answered { Item2: Reply.MessageFollows } },
            Pop3EventKind.BodyEnded or Pop3EventKind.Rejected or Pop3EventKind.Refused or Pop3EventKind.Aborted => true,
            _ => false,
        };

    /// <summary>
    /// The pump: write what the core queued, read, feed, hand events out, until <paramref name="done"/>
    /// sees its event. Errors of the request become the result's error.
    /// </summary>
    private async ValueTask<FSharpResult<Pop3Output, Pop3Error>> PumpAsync(
        Func<Pop3Output, bool> done,
        (long Id, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> Sink)? body,
        CancellationToken token,
        CancellationToken callerToken,
        string command)
    {
        try
        {
            while (true)
            {
                var found = await DrainAsync(done, body, token).ConfigureAwait(false)
                    ?? (broken is null ? await ReadOnceAsync(done, body, token, command).ConfigureAwait(false) : null);

                if (found is { } result)
                {
                    return result;
                }

                if (broken is { } error)
                {
                    return ShellErrors.Fail<Pop3Output>(error);
                }
            }
        }
        catch (OperationCanceledException) when (callerToken.IsCancellationRequested)
        {
            // The protocol cannot resynchronise after an abandoned command: close (DESIGN §12).
            Break(ShellErrors.Transport(command, endpoint, $"{command} was cancelled; the connection was closed."));
            throw;
        }
        catch (OperationCanceledException ex)
        {
            var error = ShellErrors.Transport(command, endpoint, $"{command} did not complete within the operation deadline; the connection was closed.", ex);
            Break(error);
            return ShellErrors.Fail<Pop3Output>(error);
        }
        catch (TimeoutException ex)
        {
            var error = ShellErrors.Transport(command, endpoint, ex.Message, ex);
            Break(error);
            return ShellErrors.Fail<Pop3Output>(error);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or System.Security.Authentication.AuthenticationException)
        {
            var error = ShellErrors.Transport(command, endpoint, $"The connection to {endpoint} failed during {command}: {ex.Message}", ex);
            Break(error);
            return ShellErrors.Fail<Pop3Output>(error);
        }
    }

    /// <summary>Handles every queued output; returns the result once <paramref name="done"/> matched.</summary>
    private async ValueTask<FSharpResult<Pop3Output, Pop3Error>?> DrainAsync(
        Func<Pop3Output, bool> done,
        (long Id, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> Sink)? body,
        CancellationToken token)
    {
        FSharpResult<Pop3Output, Pop3Error>? result = null;
        while (machine.TryDequeue(out var output))
        {
            switch (output.Kind)
            {
                case Pop3OutputKind.Send:
                    log.Client(output.LogText);
                    outgoing.Write(output.Bytes.Span);
                    break;

                case Pop3OutputKind.StartTls:
                    await FlushAsync(token).ConfigureAwait(false);
                    await UpgradeAsync(token).ConfigureAwait(false);
                    break;

                case Pop3OutputKind.Close:
                    await FlushAsync(token).ConfigureAwait(false);
                    closed = true;
                    break;

                default:
                    log.Event(output);
                    if (output.EventKind == Pop3EventKind.BodyData && body is { } b && output.RequestId == b.Id)
                    {
                        await b.Sink(output.Bytes, token).ConfigureAwait(false);
                    }
                    else if (output.EventKind == Pop3EventKind.SizeMismatch)
                    {
                        sizeMismatches[output.RequestId] = output.ListedOctets;
                    }
                    else if (output.EventKind == Pop3EventKind.Failed)
                    {
                        broken ??= output.Failure.Error;
                    }

                    if (result is null && done(output))
                    {
                        result = output.EventKind switch
                        {
                            Pop3EventKind.Rejected or Pop3EventKind.Refused or Pop3EventKind.Aborted =>
                                ShellErrors.Fail<Pop3Output>(output.Failure.Error),
                            _ => ShellErrors.Ok(output.Detach()),
                        };
                    }

                    break;
            }
        }

        await FlushAsync(token).ConfigureAwait(false);
        return result;
    }

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
    /// each segment's events before the next is fed. Returns the first result <paramref name="done"/> matched.
    /// </summary>
    private async ValueTask<FSharpResult<Pop3Output, Pop3Error>?> ReadOnceAsync(
        Func<Pop3Output, bool> done,
        (long Id, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> Sink)? body,
        CancellationToken token,
        string command)
    {
        if (closed)
        {
            machine.FeedEndOfStream();
            var afterEnd = await DrainAsync(done, body, token).ConfigureAwait(false);
            broken ??= ShellErrors.Transport(command, endpoint, $"The connection to {endpoint} is closed.");
            return afterEnd;
        }

        using var idle = CancellationTokenSource.CreateLinkedTokenSource(token);
        idle.CancelAfter(options.ReplyTimeout);
        ReadResult read;
        var current = reader;
        try
        {
            read = await current.ReadAsync(idle.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!token.IsCancellationRequested)
        {
            throw new TimeoutException(
                $"{endpoint} sent nothing for {options.ReplyTimeout.TotalSeconds:0.#} s while the reply to {command} was due; the connection was closed.");
        }

        FSharpResult<Pop3Output, Pop3Error>? found = null;
        var buffer = read.Buffer;
        foreach (var segment in buffer)
        {
            log.Received(segment.Span);
            machine.Feed(segment);
            // Body slices point into this segment: hand them out before the next one is fed.
            found ??= await DrainAsync(done, body, token).ConfigureAwait(false);
        }

        current.AdvanceTo(buffer.End);
        if (!ReferenceEquals(current, reader))
        {
            // STLS replaced the reader while this buffer was being fed: retire the plaintext one.
            await current.CompleteAsync().ConfigureAwait(false);
            return found;
        }

        if (read.IsCompleted)
        {
            machine.FeedEndOfStream();
            found ??= await DrainAsync(done, body, token).ConfigureAwait(false);
            closed = true;
        }

        return found;
    }

    /// <summary>STLS: the handshake on the same transport, then a reader over TLS (RFC 2595 §4).</summary>
    private async ValueTask UpgradeAsync(CancellationToken token)
    {
        // The reader has handed every octet it read to the core, which rejects any that followed
        // +OK (response injection); nothing of the TLS stream was read as plaintext, because the
        // pump reads only while a reply is due and none is due during the handshake. The read
        // that fed the +OK retires the plaintext reader once it has advanced past its buffer.
        try
        {
            var ssl = await Transport.AuthenticateAsync(stream, options, endpoint, token).ConfigureAwait(false);
            stream = ssl;
            reader = NewReader(ssl);
            machine.TlsEstablished(Transport.ChannelBinding(ssl)!);
        }
        catch (Exception ex) when (ex is System.Security.Authentication.AuthenticationException or IOException)
        {
            Break(ShellErrors.Transport("TLS handshake", endpoint, $"The STLS handshake with {endpoint} failed: {ex.Message}", ex));
        }
    }

    private static PipeReader NewReader(Stream stream) =>
        PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 65536, minimumReadSize: 16384, leaveOpen: true));

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

    /// <summary>RETR n written to a caller's stream while it arrives.</summary>
    public ValueTask<FSharpResult<Pop3Retrieval, Pop3Error>> RetrieveAsync(ulong message, Stream destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return RetrieveAsync(message, (bytes, ct) => destination.WriteAsync(bytes, ct), cancellationToken);
    }

    /// <summary>RETR n as one array (for small messages; use a sink for large ones).</summary>
    public async ValueTask<FSharpResult<byte[], Pop3Error>> RetrieveBytesAsync(ulong message, CancellationToken cancellationToken = default)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var result = await RetrieveAsync(message, (bytes, _) => { buffer.Write(bytes.Span); return ValueTask.CompletedTask; }, cancellationToken).ConfigureAwait(false);
        return result.IsError ? ShellErrors.Fail<byte[]>(result.ErrorValue) : ShellErrors.Ok(buffer.WrittenSpan.ToArray());
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
        var buffer = new ArrayBufferWriter<byte>();
        var result = await TopAsync(message, lines, (bytes, _) => { buffer.Write(bytes.Span); return ValueTask.CompletedTask; }, cancellationToken).ConfigureAwait(false);
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
