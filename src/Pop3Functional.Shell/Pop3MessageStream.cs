using System.Buffers;
using Pop3Functional.Core;

namespace Pop3Functional.Shell;

/// <summary>
/// A failure met while reading a message as a stream: the typed error behind it (Stream reads can
/// only report failures by throwing).
/// </summary>
public sealed class Pop3StreamException(Pop3Error error) : IOException(error.Message)
{
    /// <summary>The error, one of the four kinds (DESIGN §4).</summary>
    public Pop3Error Error { get; } = error;
}

/// <summary>
/// A message read while it arrives (RETR): each read pumps the connection only when what
/// was received so far has been read, so memory stays at one network read whatever the message
/// size. Dispose it to go on with the session: an unread rest is read and dropped
/// (<see cref="DisposeAsync"/>) or, with <see cref="Stream.Dispose()"/>, the connection is closed.
/// </summary>
public sealed class Pop3MessageStream : Stream
{
    private readonly Pop3Connection connection;
    private readonly ArrayBufferWriter<byte> received = new(16384);
    private int readOffset;
    private bool ended;
    private bool disposed;
    private Pop3Error? failure;

    private readonly CancellationTokenSource? deadline;

    internal Pop3MessageStream(Pop3Connection connection, ulong message, TimeSpan? operationDeadline)
    {
        this.connection = connection;
        Message = message;
        if (operationDeadline is { } limit)
        {
            deadline = new CancellationTokenSource(limit);
        }
    }

    /// <summary>Fires at the operation deadline counted from opening (never without one).</summary>
    internal CancellationToken DeadlineToken => deadline?.Token ?? CancellationToken.None;

    /// <summary>The message number.</summary>
    public ulong Message { get; }

    /// <summary>The request id inside the connection.</summary>
    internal long Id { get; set; }

    /// <summary>The RETR span and latency, ended when the stream ends.</summary>
    internal Pop3Telemetry.CommandScope Telemetry { get; init; } = null!;

    /// <summary>The error that ended the stream, if one did.</summary>
    internal Pop3Error? Failure => failure;

    /// <summary>Octets delivered so far (dot-unstuffed).</summary>
    public ulong OctetsReceived { get; private set; }

    /// <summary>Takes a body slice (valid only now): copied once, read out later.</summary>
    internal ValueTask Accept(ReadOnlyMemory<byte> slice, CancellationToken _)
    {
        received.Write(slice.Span);
        OctetsReceived += (ulong)slice.Length;
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (failure is not null)
        {
            // Sticky: a truncated message never reads as complete.
            throw new Pop3StreamException(failure);
        }

        while (readOffset == received.WrittenCount && !ended)
        {
            received.ResetWrittenCount();
            readOffset = 0;
            var error = await connection.PumpBodyAsync(this, cancellationToken).ConfigureAwait(false);
            if (error is not null)
            {
                ended = true;
                failure = error;
                throw new Pop3StreamException(error);
            }

            ended = connection.IsBodyComplete(this);
        }

        var available = received.WrittenCount - readOffset;
        if (available == 0)
        {
            return 0;
        }

        var n = Math.Min(available, buffer.Length);
        received.WrittenSpan.Slice(readOffset, n).CopyTo(buffer.Span);
        readOffset += n;
        return n;
    }

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) =>
        ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>The most octets DisposeAsync reads and drops to keep the session; past it, the connection closes.</summary>
    public const long MaxDrainOctets = 16L * 1024 * 1024;

    /// <summary>
    /// Reads and drops the rest of the message (up to <see cref="MaxDrainOctets"/>, within the
    /// operation deadline), so the session can go on; a longer rest closes the connection instead.
    /// </summary>
    public override async ValueTask DisposeAsync()
    {
        if (!disposed)
        {
            disposed = true;
            var start = OctetsReceived;
            while (!ended && OctetsReceived - start <= MaxDrainOctets)
            {
                received.ResetWrittenCount();
                readOffset = 0;
                var error = await connection.PumpBodyAsync(this, CancellationToken.None).ConfigureAwait(false);
                ended = error is not null || connection.IsBodyComplete(this);
            }

            if (ended)
            {
                connection.EndBody(this);
            }
            else
            {
                connection.AbandonBody(this);
            }

            deadline?.Dispose();
        }

        await base.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Without reading the rest: the session cannot go on, so the connection closes.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing && !disposed)
        {
            disposed = true;
            if (!ended)
            {
                connection.AbandonBody(this);
            }
            else
            {
                connection.EndBody(this);
            }

            deadline?.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <inheritdoc/>
    public override bool CanRead => !disposed;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override bool CanWrite => false;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException("A message stream has no length before it ends.");

    /// <inheritdoc/>
    public override long Position
    {
        get => (long)OctetsReceived - (received.WrittenCount - readOffset);
        set => throw new NotSupportedException("A message stream cannot seek.");
    }

    /// <inheritdoc/>
    public override void Flush()
    {
    }

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("A message stream cannot seek.");

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException("A message stream is read-only.");

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("A message stream is read-only.");
}
