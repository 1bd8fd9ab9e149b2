using System.Collections.Concurrent;

namespace Pop3Functional.Cli;

/// <summary>
/// A few dedicated threads that run the blocking fsyncs of a group's files side by side. ext4 and
/// xfs commit fsyncs that wait at the same time in one journal transaction, so on the test VM's
/// disk 2,000 small files became durable 3–4× faster from 8 threads than one after another
/// (docs/fetch-benchmark.md). The thread pool would start only about as many threads as there are
/// cores and then add one every half second while they block.
/// </summary>
internal sealed class DurabilityWorkers : IDisposable
{
    /// <summary>How many fsyncs may wait at once: enough for the journal to batch them, few enough to stay cheap.</summary>
    public const int DefaultThreads = 8;

    private readonly BlockingCollection<(Action Work, TaskCompletionSource Done)> queue = new();
    private readonly Thread[] threads;

    public DurabilityWorkers(int threads = DefaultThreads)
    {
        this.threads = new Thread[threads];
        for (var i = 0; i < threads; i++)
        {
            // Background threads: they never keep the process alive (a killed or failed fetch is
            // recovered by the next run). A small stack: they only call fsync.
            this.threads[i] = new Thread(Serve, maxStackSize: 256 * 1024) { IsBackground = true, Name = "pop3 fsync" };
            this.threads[i].Start();
        }
    }

    /// <summary>Queues <paramref name="work"/>; the task ends when it has run (faulted with its exception).</summary>
    public Task Run(Action work)
    {
        // Continuations run elsewhere: never on a worker, which would then wait for the caller's code.
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        queue.Add((work, done));
        return done.Task;
    }

    private void Serve()
    {
        foreach (var (work, done) in queue.GetConsumingEnumerable())
        {
            try
            {
                work();
                done.SetResult();
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        }
    }

    /// <summary>Lets the queued work finish, then ends the threads.</summary>
    public void Dispose()
    {
        queue.CompleteAdding();
        foreach (var thread in threads)
        {
            thread.Join();
        }

        queue.Dispose();
    }
}
