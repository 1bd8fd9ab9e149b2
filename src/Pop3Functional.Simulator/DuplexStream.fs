namespace Pop3Functional.Simulator

open System
open System.IO
open System.IO.Pipelines
open System.Threading
open System.Threading.Tasks

/// One end of an in-memory duplex connection: reads come from one pipe, writes go to another.
/// Reads and writes are truly asynchronous and honour cancellation; one read and one write may
/// be in progress at a time, as with a socket. Disposing it (from any thread, even while a read or
/// write is pending) ends both directions: the pending operations fail with
/// ObjectDisposedException, and the peer reads end of stream and fails to write (IOException).
[<Sealed>]
type DuplexPipeStream
    /// A stream that reads what arrives on reader and writes to writer (InMemoryConnection.CreatePair
    /// joins two of them); it owns both pipe ends.
    (reader: PipeReader, writer: PipeWriter) =
    inherit Stream()

    // Completing a pipe end while an operation on it is in progress is not allowed, so Dispose
    // completes an end only when it is idle, and an operation that finds the stream disposed when
    // it finishes completes it instead (Interlocked makes sure one of the two does).
    let mutable disposed = 0
    let mutable reading = 0
    let mutable writing = 0
    let mutable readerCompleted = 0
    let mutable writerCompleted = 0

    let completeReader () =
        if Interlocked.Exchange(&readerCompleted, 1) = 0 then
            reader.Complete()

    let completeWriter () =
        if Interlocked.Exchange(&writerCompleted, 1) = 0 then
            writer.Complete()

    let isDisposed () = Volatile.Read(&disposed) = 1

    let disposedError () =
        ObjectDisposedException(nameof DuplexPipeStream)

    let endRead () =
        Interlocked.Exchange(&reading, 0) |> ignore

        if isDisposed () then
            completeReader ()

    let beginRead () =
        if Interlocked.Exchange(&reading, 1) = 1 then
            raise (InvalidOperationException "Another read is already in progress on this stream.")

        if isDisposed () then
            // endRead, not a plain reset: Dispose may have seen this read in progress and left
            // completing the reader to it.
            endRead ()
            raise (disposedError ())

    let endWrite () =
        Interlocked.Exchange(&writing, 0) |> ignore

        if isDisposed () then
            completeWriter ()

    let beginWrite () =
        if Interlocked.Exchange(&writing, 1) = 1 then
            raise (InvalidOperationException "Another write is already in progress on this stream.")

        if isDisposed () then
            // endWrite, not a plain reset: Dispose may have seen this write in progress and left
            // completing the writer (the peer's end of stream) to it.
            endWrite ()
            raise (disposedError ())

        if Volatile.Read(&writerCompleted) = 1 then
            Volatile.Write(&writing, 0)
            raise (InvalidOperationException "Writes were completed on this stream (CompleteWrites).")

    let copyOut (buffer: Buffers.ReadOnlySequence<byte>) (destination: Memory<byte>) =
        let n = int (min buffer.Length (int64 destination.Length))
        let slice = buffer.Slice(0L, int64 n)
        Buffers.BuffersExtensions.CopyTo(&slice, destination.Span)
        reader.AdvanceTo(slice.End)
        n

    let readCore (destination: Memory<byte>) (ct: CancellationToken) : Task<int> =
        task {
            beginRead ()

            try
                let! result = reader.ReadAsync(ct)

                if isDisposed () || result.IsCanceled then
                    // Dispose cancelled the pending read; the reader is completed in endRead.
                    return raise (disposedError ())
                else
                    let buffer = result.Buffer

                    if destination.Length = 0 then
                        // A zero-byte read waits for data without consuming it.
                        reader.AdvanceTo(buffer.Start)
                        return 0
                    elif buffer.IsEmpty && result.IsCompleted then
                        reader.AdvanceTo(buffer.End)
                        return 0
                    else
                        return copyOut buffer destination
            finally
                endRead ()
        }

    let writeCore (source: ReadOnlyMemory<byte>) (ct: CancellationToken) : Task =
        task {
            beginWrite ()

            try
                let! result = writer.WriteAsync(source, ct)

                if isDisposed () || result.IsCanceled then
                    raise (disposedError ())
                elif result.IsCompleted then
                    raise (IOException "The peer closed the in-memory connection.")
            finally
                endWrite ()
        }

    let flushCore (ct: CancellationToken) : Task =
        // After CompleteWrites there is nothing left to flush (as NetworkStream after Shutdown).
        if Volatile.Read(&writerCompleted) = 1 && not (isDisposed ()) then
            Task.CompletedTask
        else
            task {
                beginWrite ()

                try
                    let! result = writer.FlushAsync(ct)

                    if isDisposed () || result.IsCanceled then
                        raise (disposedError ())
                finally
                    endWrite ()
            }

    /// True until the stream is disposed.
    override _.CanRead = not (isDisposed ())

    /// True until the stream is disposed.
    override _.CanWrite = not (isDisposed ())

    /// False: a connection has no position.
    override _.CanSeek = false

    /// Not supported: a connection has no length.
    override _.Length =
        raise (NotSupportedException "An in-memory connection has no length.")

    /// Not supported: a connection has no position.
    override _.Position
        with get () = raise (NotSupportedException "An in-memory connection has no position.")
        and set (_: int64) = raise (NotSupportedException "An in-memory connection has no position.")

    /// Not supported: a connection cannot seek.
    override _.Seek(_: int64, _: SeekOrigin) : int64 =
        raise (NotSupportedException "An in-memory connection cannot seek.")

    /// Not supported: a connection has no length.
    override _.SetLength(_: int64) =
        raise (NotSupportedException "An in-memory connection has no length.")

    /// Reads what the peer has written, waiting for at least one octet; 0 at end of stream.
    override _.ReadAsync(destination: Memory<byte>, cancellationToken: CancellationToken) : ValueTask<int> =
        ValueTask<int>(readCore destination cancellationToken)

    /// Reads what the peer has written, waiting for at least one octet; 0 at end of stream.
    override this.ReadAsync(buffer: byte[], offset: int, count: int, cancellationToken: CancellationToken) =
        Stream.ValidateBufferArguments(buffer, offset, count)
        this.ReadAsync(Memory<byte>(buffer, offset, count), cancellationToken).AsTask()

    /// Reads synchronously (blocks the calling thread; prefer ReadAsync).
    override this.Read(buffer: byte[], offset: int, count: int) =
        Stream.ValidateBufferArguments(buffer, offset, count)

        this.ReadAsync(Memory<byte>(buffer, offset, count), CancellationToken.None).AsTask().GetAwaiter().GetResult()

    /// Writes and flushes to the peer; waits while the peer is more than 64 KiB behind.
    override _.WriteAsync(source: ReadOnlyMemory<byte>, cancellationToken: CancellationToken) : ValueTask =
        ValueTask(writeCore source cancellationToken)

    /// Writes and flushes to the peer; waits while the peer is more than 64 KiB behind.
    override this.WriteAsync(buffer: byte[], offset: int, count: int, cancellationToken: CancellationToken) =
        Stream.ValidateBufferArguments(buffer, offset, count)
        this.WriteAsync(ReadOnlyMemory<byte>(buffer, offset, count), cancellationToken).AsTask()

    /// Writes synchronously (blocks the calling thread; prefer WriteAsync).
    override this.Write(buffer: byte[], offset: int, count: int) =
        Stream.ValidateBufferArguments(buffer, offset, count)

        this
            .WriteAsync(ReadOnlyMemory<byte>(buffer, offset, count), CancellationToken.None)
            .AsTask()
            .GetAwaiter()
            .GetResult()

    /// Flushes the writer (writes already flush, so this only waits out back-pressure).
    override _.FlushAsync(cancellationToken: CancellationToken) = flushCore cancellationToken

    /// Flushes the writer synchronously.
    override _.Flush() =
        (flushCore CancellationToken.None).GetAwaiter().GetResult()

    /// Ends the write direction only (a half close): the peer reads end of stream once it has
    /// read everything written so far, and this end can still read.
    member _.CompleteWrites() =
        if Volatile.Read(&writing) = 0 then
            completeWriter ()
        else
            raise (InvalidOperationException "A write is in progress on this stream.")

    /// Ends both directions; pending reads and writes fail with ObjectDisposedException.
    override _.Dispose(disposing: bool) =
        if disposing && Interlocked.Exchange(&disposed, 1) = 0 then
            reader.CancelPendingRead()
            writer.CancelPendingFlush()

            if Volatile.Read(&reading) = 0 then
                completeReader ()

            if Volatile.Read(&writing) = 0 then
                completeWriter ()

    /// Ends both directions, as Dispose does.
    override this.DisposeAsync() =
        this.Dispose()
        ValueTask.CompletedTask

/// In-memory duplex connections: a client end and a server end joined by two pipes.
[<AbstractClass; Sealed>]
type InMemoryConnection =
    /// A connected pair (client end, server end): what one writes, the other reads. Each pipe
    /// holds up to 64 KiB before the writer waits, like a socket buffer.
    static member CreatePair() : struct (Stream * Stream) =
        let options =
            PipeOptions(
                pauseWriterThreshold = 65536L,
                resumeWriterThreshold = 32768L,
                useSynchronizationContext = false
            )

        let toServer = Pipe(options)
        let toClient = Pipe(options)

        let client = new DuplexPipeStream(toClient.Reader, toServer.Writer) :> Stream

        let server = new DuplexPipeStream(toServer.Reader, toClient.Writer) :> Stream

        struct (client, server)
