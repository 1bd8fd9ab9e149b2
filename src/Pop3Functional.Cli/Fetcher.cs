using LanguageExt;
using LanguageExt.Common;

namespace Pop3Functional.Cli;

// Inside the namespace: these win over LanguageExt's types of the same names.
using System.Collections.Generic;
using Error = LanguageExt.Common.Error;
using ListEntry = Pop3Functional.Core.ListEntry;
using UidEntry = Pop3Functional.Core.UidEntry;

/// <summary>What <c>pop3 fetch</c> does with one logged-in session.</summary>
/// <param name="Maildir">The Maildir's root.</param>
/// <param name="StateKey">The account (user@host, never the port): the state and the file tags follow from it.</param>
/// <param name="Delete">Mark each message for deletion once it is durable and recorded.</param>
/// <param name="MaxMessages">Store at most this many new messages this run.</param>
/// <param name="MaxSize">Skip messages LIST reports larger than this (octets).</param>
/// <param name="TopLines">Store only the header and this many body lines (TOP); a separate state.</param>
/// <param name="GroupMessages">Messages made durable together (one directory fsync, one state write).</param>
/// <param name="GroupOctets">A group also ends once its messages reach this many listed octets.</param>
internal sealed record FetchSettings(
    string Maildir,
    string StateKey,
    bool Delete = false,
    int? MaxMessages = null,
    long? MaxSize = null,
    ulong? TopLines = null,
    int GroupMessages = 64,
    long GroupOctets = 64L * 1024 * 1024);

/// <summary>What one fetch did.</summary>
internal sealed record FetchSummary
{
    public int OnServer { get; set; }
    public int Fetched { get; set; }
    public int AlreadyFetched { get; set; }
    public int Recovered { get; set; }
    public int TooLarge { get; set; }
    public int Duplicates { get; set; }
    public int NotThisRun { get; set; }
    public int DeleteMarked { get; set; }
    public int Deleted { get; set; }

    /// <summary>Files removed from tmp/ at the start: what interrupted runs left (docs/cli.md).</summary>
    public int TmpRemoved { get; set; }
    public long Bytes { get; set; }
    public TimeSpan Elapsed { get; set; }
    public bool Interrupted { get; set; }
    public bool NoUidl { get; set; }
    public string StateFile { get; set; } = "";
    public List<string> Warnings { get; } = [];

    /// <summary>The POP3 failure that ended the fetch early, if any (what was stored before it is kept).</summary>
    public Error? Failure { get; set; }
}

/// <summary>Progress of a fetch, as it happens.</summary>
internal interface IFetchReporter
{
    void Warning(string text);

    void Planned(int messages, long octets);

    void Received(ulong message, long octets);

    void Committed(int storedSoFar, long bytesSoFar);
}

/// <summary>
/// The fetch: skip what is recorded, recognise what a crash stored but did not record, retrieve
/// the rest in pipelined groups, and make each group durable before its UIDs are recorded and,
/// with <c>--delete</c>, before its messages are marked for deletion (docs/cli.md).
/// </summary>
internal sealed class Fetcher(IFileSystem fileSystem, IFetchReporter reporter)
{
    private sealed record Pending(ulong Number, string? Uid, MessageFile File, Task Durable);

    /// <summary>
    /// Runs the fetch over <paramref name="session"/>. POP3 failures end it with
    /// <see cref="FetchSummary.Failure"/> set; local I/O failures throw (nothing unrecorded is
    /// ever deleted, so both are safe to stop at). <paramref name="stop"/> (Ctrl+C) ends it after
    /// the current message, with what was received made durable and recorded.
    /// </summary>
    public async Task<FetchSummary> RunAsync(Pop3Session session, FetchSettings settings, CancellationToken stop)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var summary = new FetchSummary();
        var maildir = new Maildir(fileSystem, settings.Maildir);
        maildir.Create();
        var key = settings.TopLines is { } lines ? $"{settings.StateKey}#top{lines}" : settings.StateKey;
        using var state = UidState.Open(fileSystem, settings.Maildir, key)
            ?? throw new MaildirBusyException($"another pop3 fetch of {settings.StateKey} into {settings.Maildir} is running");
        summary.StateFile = state.Path;
        using var durability = new DurabilityWorkers();
        summary.TmpRemoved = TmpCleanup.Run(fileSystem, maildir, DateTime.UtcNow, reporter.Warning);

        var listing = await session.ListAsync(CancellationToken.None);
        if (listing.IsFail)
        {
            summary.Failure = (Error)listing;
            return Done();
        }

        var sizes = ((Seq<ListEntry>)listing).ToDictionary(e => e.Number, e => e.Octets);
        summary.OnServer = sizes.Count;
        var uids = await ServerUidsAsync(session, summary);
        if (summary.Failure is not null)
        {
            return Done();
        }

        if (!summary.NoUidl)
        {
            state.RetainOnly(uids.Values.Where(u => u is not null).Select(u => u!).ToHashSet(StringComparer.Ordinal));
        }

        // Recognise messages a crash stored (renamed into new/) before their UIDs were recorded.
        var tags = maildir.StoredTags();
        var recovered = uids.Values
            .Where(uid => uid is not null && !state.Uids.Contains(uid) && tags.Contains(Maildir.Tag(key, uid)))
            .Select(uid => uid!)
            .ToList();
        if (recovered.Count > 0)
        {
            // The crash may have come before the directory fsync: make the entries durable first.
            maildir.SyncNew();
            maildir.SyncCur();
            state.Record(recovered);
            summary.Recovered = recovered.Count;
            reporter.Warning($"{recovered.Count} message(s) stored by an interrupted run were recognised in the Maildir and recorded, not stored again");
        }

        var toDelete = new List<ulong>();
        var toFetch = new List<ulong>();
        foreach (var (number, octets) in sizes.OrderBy(e => e.Key))
        {
            var uid = uids.GetValueOrDefault(number);
            if (uid is not null && state.Uids.Contains(uid))
            {
                summary.AlreadyFetched++;
                toDelete.Add(number);
            }
            else if (settings.MaxSize is { } max && octets > (ulong)max)
            {
                summary.TooLarge++;
                reporter.Warning($"message {number} skipped: {octets} octets, over --max-size {max}");
            }
            else if (settings.MaxMessages is { } most && toFetch.Count >= most)
            {
                summary.NotThisRun++;
            }
            else
            {
                toFetch.Add(number);
            }
        }

        summary.AlreadyFetched -= summary.Recovered;
        if (settings.Delete && toDelete.Count > 0 && !await DeleteAsync(session, toDelete, summary))
        {
            return Done();
        }

        reporter.Planned(toFetch.Count, toFetch.Sum(n => (long)sizes[n]));
        var recorded = new HashSet<string>(state.Uids, StringComparer.Ordinal);
        foreach (var group in Groups(toFetch, sizes, settings))
        {
            if (stop.IsCancellationRequested)
            {
                summary.Interrupted = true;
                break;
            }

            var pending = await ReceiveGroupAsync(durability, session, group, uids, settings, summary, stop);
            var stored = Commit(maildir, state, key, pending, tags, recorded, summary);
            reporter.Committed(summary.Fetched, summary.Bytes);
            if (settings.Delete && summary.Failure is null && session.IsHealthy && !await DeleteAsync(session, stored, summary))
            {
                break;
            }

            if (summary.Failure is not null || summary.Interrupted)
            {
                break;
            }
        }

        if (summary.Failure is null && session.IsHealthy)
        {
            // Every DELE sent so far is of a message already durable and recorded: QUIT commits only those.
            var quit = await session.QuitAsync(CancellationToken.None);
            quit.Match(q => summary.Deleted = q.DeletionsCommitted.Count, e => summary.Failure = e);
        }

        return Done();

        FetchSummary Done()
        {
            summary.Elapsed = clock.Elapsed;
            return summary;
        }
    }

    private async Task<Dictionary<ulong, string?>> ServerUidsAsync(Pop3Session session, FetchSummary summary)
    {
        var result = new Dictionary<ulong, string?>();
        var listed = await session.UidlAsync(CancellationToken.None);
        if (listed.IsFail)
        {
            var error = (Error)listed;
            if (error is Pop3Failure { Kind: Pop3ErrorKind.Server } || error.Code == Pop3ErrorCodes.CapabilityMissing)
            {
                summary.NoUidl = true;
                Warn(summary, "the server has no UIDL: every message is downloaded to tell new ones from stored ones by the SHA-256 of its content (docs/cli.md, the no-UIDL rule)");
            }
            else
            {
                summary.Failure = error;
            }

            return result;
        }

        var entries = (Seq<UidEntry>)listed;
        var duplicated = entries.GroupBy(e => e.Uid.Value).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet(StringComparer.Ordinal);
        if (duplicated.Count > 0)
        {
            Warn(summary, $"the server gives {duplicated.Count} UID(s) to more than one message: those messages are told apart by the SHA-256 of their content (the no-UIDL rule)");
        }

        foreach (var entry in entries)
        {
            result[entry.Number] = duplicated.Contains(entry.Uid.Value) ? null : entry.Uid.Value;
        }

        return result;
    }

    private void Warn(FetchSummary summary, string text)
    {
        summary.Warnings.Add(text);
        reporter.Warning(text);
    }

    private static IEnumerable<List<ulong>> Groups(List<ulong> numbers, Dictionary<ulong, ulong> sizes, FetchSettings settings)
    {
        var group = new List<ulong>();
        var octets = 0L;
        foreach (var number in numbers)
        {
            group.Add(number);
            octets += (long)sizes[number];
            if (group.Count >= settings.GroupMessages || octets >= settings.GroupOctets)
            {
                yield return group;
                group = [];
                octets = 0;
            }
        }

        if (group.Count > 0)
        {
            yield return group;
        }
    }

    private async Task<List<Pending>> ReceiveGroupAsync(
        DurabilityWorkers durability, Pop3Session session, List<ulong> group, Dictionary<ulong, string?> uids, FetchSettings settings, FetchSummary summary, CancellationToken stop)
    {
        var maildir = new Maildir(fileSystem, settings.Maildir);
        var open = new Dictionary<ulong, MessageFile>();
        var pending = new List<Pending>();
        MessageFile FileOf(ulong number)
        {
            if (!open.TryGetValue(number, out var file))
            {
                file = maildir.Begin(hashContent: uids.GetValueOrDefault(number) is null);
                open[number] = file;
            }

            return file;
        }

        Exception? local = null;
        async ValueTask Sink(ulong number, ReadOnlyMemory<byte> slice, CancellationToken ct)
        {
            try
            {
                await FileOf(number).WriteAsync(slice, ct);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The session reports a failing sink as its own failure; the disk's is the one to report.
                local ??= e;
                throw;
            }
        }

        try
        {
            var results = settings.TopLines is { } lines
                ? session.TopManyAsync(group, lines, Sink, CancellationToken.None)
                : session.RetrieveManyAsync(group, Sink, CancellationToken.None);
            await foreach (var result in results)
            {
                if (result.IsFail)
                {
                    summary.Failure = (Error)result;
                    break;
                }

                var retrieval = (Retrieval)result;
                var file = FileOf(retrieval.Message);
                open.Remove(retrieval.Message);
                // fsync in the background while the next messages arrive; awaited before any rename.
                pending.Add(new Pending(retrieval.Message, uids.GetValueOrDefault(retrieval.Message), file, durability.Run(file.CompleteDurably)));
                reporter.Received(retrieval.Message, file.ReceivedOctets);
                if (stop.IsCancellationRequested && retrieval.Message != group[^1])
                {
                    // Stop after the current message: leaving the enumeration closes the
                    // connection (replies are in flight), so no QUIT; the group is still committed.
                    summary.Interrupted = true;
                    break;
                }
            }

            if (stop.IsCancellationRequested)
            {
                summary.Interrupted = true;
            }

            if (local is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(local).Throw();
            }
        }
        catch
        {
            await DiscardAsync(pending);
            throw;
        }
        finally
        {
            foreach (var partial in open.Values)
            {
                partial.Discard();
            }
        }

        try
        {
            await Task.WhenAll(pending.Select(p => p.Durable));
        }
        catch
        {
            await DiscardAsync(pending);
            throw;
        }

        return pending;
    }

    private static async Task DiscardAsync(List<Pending> pending)
    {
        foreach (var p in pending)
        {
            try
            {
                await p.Durable;
            }
            catch (IOException)
            {
                // Discarded below either way; the first failure is the one reported.
            }

            p.File.Discard();
        }
    }

    /// <summary>
    /// Renames every durable file of the group into new/, fsyncs new/ once, and only then records
    /// the group's UIDs; returns the numbers now safe to delete.
    /// </summary>
    private static List<ulong> Commit(
        Maildir maildir, UidState state, string key, List<Pending> pending, HashSet<string> tags, HashSet<string> recorded, FetchSummary summary)
    {
        var added = new List<string>();
        var safe = new List<ulong>();
        for (var i = 0; i < pending.Count; i++)
        {
            var p = pending[i];
            var uid = p.Uid ?? p.File.ContentUid();
            var tag = Maildir.Tag(key, uid);
            if (recorded.Contains(uid) || (p.Uid is null && tags.Contains(tag)))
            {
                // No UIDL: this content is stored already (the no-UIDL rule).
                p.File.Discard();
                summary.Duplicates++;
                added.Add(uid);
                safe.Add(p.Number);
                continue;
            }

            try
            {
                maildir.Deliver(p.File, tag);
            }
            catch
            {
                foreach (var rest in pending.Skip(i))
                {
                    rest.File.Discard();
                }

                throw;
            }

            tags.Add(tag);
            recorded.Add(uid);
            added.Add(uid);
            safe.Add(p.Number);
            summary.Fetched++;
            summary.Bytes += p.File.SizeOnDisk;
        }

        if (pending.Count > 0)
        {
            maildir.SyncNew();
            state.Record(added);
        }

        return safe;
    }

    private static async Task<bool> DeleteAsync(Pop3Session session, List<ulong> numbers, FetchSummary summary)
    {
        foreach (var number in numbers)
        {
            var deleted = await session.DeleteAsync(number, CancellationToken.None);
            if (deleted.IsFail)
            {
                summary.Failure = (Error)deleted;
                return false;
            }

            summary.DeleteMarked++;
        }

        return true;
    }
}

/// <summary>Another fetch holds the Maildir's lock for this account.</summary>
internal sealed class MaildirBusyException(string message) : Exception(message);
