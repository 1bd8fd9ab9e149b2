using Microsoft.FSharp.Core;
using Pop3Functional.Core;

namespace Pop3Functional.Shell;

/// <summary>Operations by unique id (RFC 1939 §7): UIDs survive sessions, message numbers do not.</summary>
public sealed partial class Pop3Connection
{
    // UID -> message number for this session, from one UIDL listing. Numbers never change within
    // a session (RFC 1939 §5), so the map stays right after DELE and RSET; a UID listed twice
    // (the DuplicateUids quirk) maps to 0, which no message has: ambiguous.
    private Dictionary<string, ulong>? uidNumbers;

    /// <summary>
    /// The message number of <paramref name="uid"/> in this session, from one UIDL listing (sent on
    /// the first call, then remembered). An unknown UID, or one the server listed for two messages,
    /// is a <c>UsageError</c>.
    /// </summary>
    public async ValueTask<FSharpResult<ulong, Pop3Error>> MessageNumberAsync(string uid, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(uid);
        if (uidNumbers is null)
        {
            var listing = await UidlAsync(cancellationToken).ConfigureAwait(false);
            if (listing.IsError)
            {
                return ShellErrors.Fail<ulong>(listing.ErrorValue);
            }

            var numbers = new Dictionary<string, ulong>(StringComparer.Ordinal);
            foreach (var entry in listing.ResultValue)
            {
                var key = entry.Uid.Value;
                numbers[key] = numbers.ContainsKey(key) ? 0 : entry.Number;
            }

            uidNumbers = numbers;
        }

        if (!uidNumbers.TryGetValue(uid, out var number))
        {
            return ShellErrors.Fail<ulong>(ShellErrors.Usage("UIDL", $"No message in this maildrop has the UID \"{ProtocolLog.Escape(uid)}\" (or it was deleted before it was listed)."));
        }

        return number == 0
            ? ShellErrors.Fail<ulong>(ShellErrors.Usage("UIDL", $"The server listed the UID \"{ProtocolLog.Escape(uid)}\" for more than one message; an operation by it would be ambiguous."))
            : ShellErrors.Ok(number);
    }

    /// <summary>RETR of the message with this UID, streamed into <paramref name="sink"/> (see <see cref="MessageNumberAsync"/>).</summary>
    public async ValueTask<FSharpResult<Pop3Retrieval, Pop3Error>> RetrieveByUidAsync(
        string uid, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var number = await MessageNumberAsync(uid, cancellationToken).ConfigureAwait(false);
        return number.IsError
            ? ShellErrors.Fail<Pop3Retrieval>(number.ErrorValue)
            : await RetrieveAsync(number.ResultValue, sink, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>RETR of the message with this UID as an array (see <see cref="MessageNumberAsync"/>).</summary>
    public async ValueTask<FSharpResult<byte[], Pop3Error>> RetrieveBytesByUidAsync(string uid, CancellationToken cancellationToken = default)
    {
        var number = await MessageNumberAsync(uid, cancellationToken).ConfigureAwait(false);
        return number.IsError
            ? ShellErrors.Fail<byte[]>(number.ErrorValue)
            : await RetrieveBytesAsync(number.ResultValue, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>DELE of the message with this UID (see <see cref="MessageNumberAsync"/>); committed only by QUIT.</summary>
    public async ValueTask<FSharpResult<string, Pop3Error>> DeleteByUidAsync(string uid, CancellationToken cancellationToken = default)
    {
        var number = await MessageNumberAsync(uid, cancellationToken).ConfigureAwait(false);
        return number.IsError
            ? ShellErrors.Fail<string>(number.ErrorValue)
            : await DeleteAsync(number.ResultValue, cancellationToken).ConfigureAwait(false);
    }
}
