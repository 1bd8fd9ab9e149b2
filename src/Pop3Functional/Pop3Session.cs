using LanguageExt;
using LanguageExt.Common;
using Microsoft.FSharp.Core;
using Pop3Functional.Core;
using Pop3Functional.Shell;

namespace Pop3Functional;

/// <summary>
/// One POP3 session: a method for every operation, each returning <see cref="Fin{A}"/> (failures
/// are <see cref="Pop3Failure"/> values with a code from <see cref="Pop3ErrorCodes"/>; the caller's
/// cancellation is <see cref="Pop3Errors.Cancelled"/>). Every method is one call into the shell
/// (<see cref="Pop3Connection"/>) and one conversion. POP3 is sequential: one operation at a time.
/// Disposing sends QUIT when the session is healthy (nothing failed for good and QUIT was not sent
/// yet), and only closes the connection otherwise.
/// </summary>
public sealed class Pop3Session : IAsyncDisposable
{
    private readonly Pop3Connection connection;
    private bool ended;
    private Fin<QuitResult>? quit;

    internal Pop3Session(Pop3Connection connection)
    {
        this.connection = connection;
    }

    /// <summary>The greeting and what the server advertised before login (poplib's <c>getwelcome</c>).</summary>
    public ServerGreeting Greeting => Conversions.ToGreeting(connection.Greeting);

    /// <summary>The capabilities in force now (they change after STLS and after login).</summary>
    public ServerCapabilities Capabilities => Conversions.ToCapabilities(connection.Capabilities);

    /// <summary>True when TLS protects the connection.</summary>
    public bool IsTlsActive => connection.IsTlsActive;

    /// <summary>The server's address ("host:port", or "stream" for a caller's stream).</summary>
    public string Endpoint => connection.Endpoint;

    /// <summary>The maildrop as fixed at login; none before login.</summary>
    public Option<MaildropStat> Maildrop => connection.Maildrop is { } stat ? Conversions.ToStat(stat) : Option<MaildropStat>.None;

    /// <summary>
    /// False once the session failed for good (a protocol or transport failure, a timeout, a
    /// cancellation, an enumeration stopped early, a message stream abandoned) or ended with QUIT.
    /// </summary>
    public bool IsHealthy => !ended && connection.IsOpen;

    // ---- authorization ----

    /// <summary>USER alone (RFC 1939 §7; poplib's <c>user</c>): PASS follows with <see cref="PassAsync"/>. Returns the server's text.</summary>
    public Task<Fin<string>> UserAsync(string user, CancellationToken cancellationToken = default) =>
        Call(ct => connection.UserAsync(user, ct), text => text, cancellationToken);

    /// <summary>PASS after <see cref="UserAsync"/> (RFC 1939 §7; poplib's <c>pass_</c>). Sent only over TLS unless plaintext credentials were allowed; fixes the maildrop.</summary>
    public Task<Fin<MaildropStat>> PassAsync(Secret password, CancellationToken cancellationToken = default) =>
        Call(ct => connection.PassAsync(password, ct), Conversions.ToStat, cancellationToken);

    /// <summary>USER then PASS in one call (RFC 1939 §7). The password is sent only over TLS unless plaintext credentials were allowed.</summary>
    public Task<Fin<MaildropStat>> LoginAsync(string user, Secret password, CancellationToken cancellationToken = default) =>
        Call(ct => connection.LoginAsync(user, password, ct), Conversions.ToStat, cancellationToken);

    /// <summary>APOP (RFC 1939 §7; poplib's <c>apop</c>): the password never crosses the wire. Needs a strict msg-id timestamp in the greeting.</summary>
    public Task<Fin<MaildropStat>> ApopAsync(string user, Secret password, CancellationToken cancellationToken = default) =>
        Call(ct => connection.LoginApopAsync(user, password, ct), Conversions.ToStat, cancellationToken);

    /// <summary>
    /// The strongest login both sides have, chosen once by the core: SCRAM-*-PLUS, SCRAM, CRAM-MD5,
    /// APOP (none after STLS), then PLAIN, LOGIN and USER/PASS (only over TLS unless plaintext
    /// credentials were allowed). A failure is returned as it is, never retried by a weaker method.
    /// </summary>
    public Task<Fin<MaildropStat>> LoginAutoAsync(string user, Secret password, CancellationToken cancellationToken = default) =>
        Call(ct => connection.LoginAutoAsync(user, password, ct), Conversions.ToStat, cancellationToken);

    /// <summary>
    /// Logs in with a password by the mechanism named (a SASL mechanism, <see cref="Pop3Mechanism.Apop"/>,
    /// <see cref="Pop3Mechanism.UserPass"/> or <see cref="Pop3Mechanism.Auto"/>); one the server does not
    /// offer is a Usage failure, refused before any byte is sent. SCRAM's server signature is verified.
    /// </summary>
    public Task<Fin<MaildropStat>> LoginAsync(string user, Secret password, Pop3Mechanism mechanism, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(mechanism);
        return Call(ct => connection.LoginAsync(user, password, ShellName(mechanism), ct), Conversions.ToStat, cancellationToken);
    }

    /// <summary>
    /// Logs in with an OAuth 2 access token (Gmail, Outlook): OAUTHBEARER when offered, else XOAUTH2,
    /// or the one named. The token is a secret: sent only over TLS unless plaintext credentials were allowed.
    /// </summary>
    public Task<Fin<MaildropStat>> LoginOAuth2Async(string user, Secret token, Pop3Mechanism? mechanism = null, CancellationToken cancellationToken = default)
    {
        return Call(ct => connection.LoginOAuth2Async(user, token, ShellName(mechanism), ct), Conversions.ToStat, cancellationToken);
    }

    /// <summary>USER then RPOP (RFC 1081; poplib's <c>rpop</c>): a trusted host vouches for the user.</summary>
    public Task<Fin<MaildropStat>> RpopAsync(string user, CancellationToken cancellationToken = default) =>
        Call(ct => connection.LoginRpopAsync(user, ct), Conversions.ToStat, cancellationToken);

    /// <summary>UTF8 (RFC 6856 §2; poplib's <c>utf8</c>): UTF-8 user names, passwords and texts. Before login only.</summary>
    public Task<Fin<string>> Utf8Async(CancellationToken cancellationToken = default) =>
        Call(connection.Utf8Async, Same, cancellationToken);

    /// <summary>STLS (RFC 2595; poplib's <c>stls</c>) on a session opened with <c>WithoutTls()</c>: the capabilities asked again over TLS.</summary>
    public Task<Fin<ServerCapabilities>> StartTlsAsync(CancellationToken cancellationToken = default) =>
        Call(connection.StartTlsAsync, Conversions.ToCapabilities, cancellationToken);

    // ---- any state ----

    /// <summary>CAPA (RFC 2449 §5; poplib's <c>capa</c>), asked again.</summary>
    public Task<Fin<ServerCapabilities>> CapabilitiesAsync(CancellationToken cancellationToken = default) =>
        Call(connection.CapabilitiesAsync, Conversions.ToCapabilities, cancellationToken);

    /// <summary>LANG (RFC 6856 §3): the languages the server offers.</summary>
    public Task<Fin<Seq<LanguageEntry>>> LanguagesAsync(CancellationToken cancellationToken = default) =>
        Call(connection.LanguagesAsync, Conversions.ToSeq, cancellationToken);

    /// <summary>LANG tag (RFC 6856 §3): the language of the server's texts ("*" for the server's choice).</summary>
    public Task<Fin<string>> LanguageAsync(string tag, CancellationToken cancellationToken = default) =>
        Call(ct => connection.LanguageAsync(tag, ct), Same, cancellationToken);

    /// <summary>NOOP (RFC 1939 §5; poplib's <c>noop</c>).</summary>
    public Task<Fin<string>> NoopAsync(CancellationToken cancellationToken = default) =>
        Call(connection.NoopAsync, Same, cancellationToken);

    // ---- transaction ----

    /// <summary>STAT (RFC 1939 §5; poplib's <c>stat</c>): message count and total octets.</summary>
    public Task<Fin<MaildropStat>> StatAsync(CancellationToken cancellationToken = default) =>
        Call(connection.StatAsync, Conversions.ToStat, cancellationToken);

    /// <summary>LIST (RFC 1939 §5; poplib's <c>list()</c>): every message not marked deleted and its size.</summary>
    public Task<Fin<Seq<ListEntry>>> ListAsync(CancellationToken cancellationToken = default) =>
        Call(connection.ListAsync, Conversions.ToSeq, cancellationToken);

    /// <summary>LIST n (RFC 1939 §5; poplib's <c>list(which)</c>). A number outside the login snapshot is refused before sending.</summary>
    public Task<Fin<ListEntry>> ListAsync(ulong message, CancellationToken cancellationToken = default) =>
        Call(ct => connection.ListAsync(message, ct), Same, cancellationToken);

    /// <summary>UIDL (RFC 1939 §7; poplib's <c>uidl()</c>): every message's unique id.</summary>
    public Task<Fin<Seq<UidEntry>>> UidlAsync(CancellationToken cancellationToken = default) =>
        Call(connection.UidlAsync, Conversions.ToSeq, cancellationToken);

    /// <summary>UIDL n (RFC 1939 §7; poplib's <c>uidl(which)</c>).</summary>
    public Task<Fin<UidEntry>> UidlAsync(ulong message, CancellationToken cancellationToken = default) =>
        Call(ct => connection.UidlAsync(message, ct), Same, cancellationToken);

    // ---- by UID (RFC 1939 §7: UIDs survive sessions, numbers do not) ----

    /// <summary>The message number of <paramref name="uid"/> in this session (one UIDL per session); an unknown or ambiguous UID is a usage failure.</summary>
    public Task<Fin<ulong>> MessageNumberAsync(string uid, CancellationToken cancellationToken = default) =>
        Call(ct => connection.MessageNumberAsync(uid, ct), Same, cancellationToken);

    /// <summary>RETR of the message with <paramref name="uid"/>, handed to <paramref name="sink"/> while it arrives.</summary>
    public Task<Fin<Retrieval>> RetrieveByUidAsync(
        string uid, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink, CancellationToken cancellationToken = default) =>
        Call(ct => connection.RetrieveByUidAsync(uid, sink, ct), Conversions.ToRetrieval, cancellationToken);

    /// <summary>RETR of the message with <paramref name="uid"/>, written to <paramref name="destination"/> while it arrives.</summary>
    public Task<Fin<Retrieval>> RetrieveByUidAsync(string uid, Stream destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return RetrieveByUidAsync(uid, (bytes, ct) => destination.WriteAsync(bytes, ct), cancellationToken);
    }

    /// <summary>RETR of the message with <paramref name="uid"/> as one array.</summary>
    public Task<Fin<byte[]>> RetrieveBytesByUidAsync(string uid, CancellationToken cancellationToken = default) =>
        Call(ct => connection.RetrieveBytesByUidAsync(uid, ct), Same, cancellationToken);

    /// <summary>DELE of the message with <paramref name="uid"/>; QUIT commits it.</summary>
    public Task<Fin<string>> DeleteByUidAsync(string uid, CancellationToken cancellationToken = default) =>
        Call(ct => connection.DeleteByUidAsync(uid, ct), Same, cancellationToken);

    // ---- by number ----

    /// <summary>RETR n (poplib's <c>retr</c>) written to <paramref name="destination"/> while it arrives: never whole in memory.</summary>
    public Task<Fin<Retrieval>> RetrieveAsync(ulong message, Stream destination, CancellationToken cancellationToken = default) =>
        Call(ct => connection.RetrieveAsync(message, destination, ct), Conversions.ToRetrieval, cancellationToken);

    /// <summary>RETR n handed to <paramref name="sink"/> slice by slice while it arrives (slices are valid only during the call).</summary>
    public Task<Fin<Retrieval>> RetrieveAsync(
        ulong message, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink, CancellationToken cancellationToken = default) =>
        Call(ct => connection.RetrieveAsync(message, sink, ct), Conversions.ToRetrieval, cancellationToken);

    /// <summary>RETR n as one array (for small messages; use a stream or a sink for large ones).</summary>
    public Task<Fin<byte[]>> RetrieveBytesAsync(ulong message, CancellationToken cancellationToken = default) =>
        Call(ct => connection.RetrieveBytesAsync(message, ct), Same, cancellationToken);

    /// <summary>
    /// RETR n as a readable <see cref="Stream"/> that reads while the message arrives. Dispose it
    /// before the next operation (disposing drops an unread rest of up to 16 MiB, else closes the
    /// connection). A failure while reading throws <see cref="Pop3StreamException"/> (an
    /// <see cref="IOException"/>) whose <c>Error</c> is the core's error.
    /// </summary>
    public Task<Fin<Stream>> OpenMessageAsync(ulong message, CancellationToken cancellationToken = default) =>
        Call(ct => connection.OpenMessageAsync(message, ct), s => (Stream)s, cancellationToken);

    /// <summary>
    /// Every message of the maildrop (as fixed at login), pipelined when the server allows, each
    /// yielded whole once it arrived. For small messages; use <see cref="RetrieveManyAsync"/> with
    /// a sink for large ones. Stopping early closes the connection (replies are in flight).
    /// </summary>
    public IAsyncEnumerable<Fin<RetrievedMessage>> RetrieveAllAsync(CancellationToken cancellationToken = default) =>
        Enumerate(connection.RetrieveAllBytesAsync(cancellationToken), Conversions.ToRetrievedMessage, cancellationToken);

    /// <summary>
    /// RETR for several messages, pipelined when the server allows: each body goes to
    /// <paramref name="sink"/> with its number while it arrives; each result is yielded in order.
    /// </summary>
    public IAsyncEnumerable<Fin<Retrieval>> RetrieveManyAsync(
        IEnumerable<ulong> messages, Func<ulong, ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink, CancellationToken cancellationToken = default) =>
        Enumerate(connection.RetrieveManyAsync(messages, sink, cancellationToken), Conversions.ToRetrieval, cancellationToken);

    /// <summary>TOP n lines (RFC 1939 §7; poplib's <c>top</c>) written to <paramref name="destination"/>.</summary>
    public Task<Fin<Retrieval>> TopAsync(ulong message, ulong lines, Stream destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return TopAsync(message, lines, (bytes, ct) => destination.WriteAsync(bytes, ct), cancellationToken);
    }

    /// <summary>TOP n lines handed to <paramref name="sink"/> slice by slice.</summary>
    public Task<Fin<Retrieval>> TopAsync(
        ulong message, ulong lines, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink, CancellationToken cancellationToken = default) =>
        Call(ct => connection.TopAsync(message, lines, sink, ct), Conversions.ToRetrieval, cancellationToken);

    /// <summary>TOP n lines as one array: the header, the blank line and the first lines of the body.</summary>
    public Task<Fin<byte[]>> TopBytesAsync(ulong message, ulong lines, CancellationToken cancellationToken = default) =>
        Call(ct => connection.TopBytesAsync(message, lines, ct), Same, cancellationToken);

    /// <summary>TOP for several messages, pipelined: with 0 lines, the headers of a whole maildrop in one round.</summary>
    public IAsyncEnumerable<Fin<Retrieval>> TopManyAsync(
        IEnumerable<ulong> messages, ulong lines, Func<ulong, ReadOnlyMemory<byte>, CancellationToken, ValueTask> sink, CancellationToken cancellationToken = default) =>
        Enumerate(connection.TopManyAsync(messages, lines, sink, cancellationToken), Conversions.ToRetrieval, cancellationToken);

    /// <summary>DELE n (RFC 1939 §5; poplib's <c>dele</c>): marks the message; QUIT commits the marks.</summary>
    public Task<Fin<string>> DeleteAsync(ulong message, CancellationToken cancellationToken = default) =>
        Call(ct => connection.DeleteAsync(message, ct), Same, cancellationToken);

    /// <summary>RSET (RFC 1939 §5; poplib's <c>rset</c>): unmarks every message marked deleted.</summary>
    public Task<Fin<string>> ResetAsync(CancellationToken cancellationToken = default) =>
        Call(connection.ResetAsync, Same, cancellationToken);

    /// <summary>
    /// The escape hatch for private or newer commands (RFC 2449 §8; private keywords start with X):
    /// <paramref name="keyword"/> and <paramref name="arguments"/> are checked before any byte is
    /// sent (three or four letters or digits, not a command the library sends itself; no spaces,
    /// line breaks or control characters in arguments). With <paramref name="multiline"/>, the
    /// lines up to "." come back in <see cref="ExtensionReply.Lines"/>. The session state is
    /// assumed unchanged by it.
    /// </summary>
    public Task<Fin<ExtensionReply>> ExtensionAsync(
        string keyword, IReadOnlyList<string> arguments, bool multiline, CancellationToken cancellationToken = default) =>
        Call(ct => connection.ExtensionAsync(keyword, arguments, multiline, ct), Conversions.ToExtensionReply, cancellationToken);

    /// <summary>QUIT (RFC 1939 §6; poplib's <c>quit</c>): ends the session and says which deletions were committed.</summary>
    public async Task<Fin<QuitResult>> QuitAsync(CancellationToken cancellationToken = default)
    {
        var result = await Call(connection.QuitAsync, Conversions.ToQuit, cancellationToken).ConfigureAwait(false);
        ended = true;
        quit ??= result;
        return result;
    }

    /// <summary>What the first <see cref="QuitAsync"/> returned, once one was sent (so <see cref="Pop3Builder.RunAsync{T}"/> never sends a second).</summary>
    internal Fin<QuitResult>? QuitOutcome => quit;

    /// <summary>Sends QUIT when the session is healthy (committing deletions), then closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!ended)
            {
                ended = true;
                await connection.QuitAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        finally
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Closes the connection without QUIT: nothing marked deleted is removed (RFC 1939 §6).</summary>
    internal async ValueTask AbandonAsync()
    {
        ended = true;
        await connection.DisposeAsync().ConfigureAwait(false);
    }

    // ---- plumbing ----

    /// <summary>The name the shell takes: null (the core chooses) for none or <see cref="Pop3Mechanism.Auto"/>.</summary>
    private static string? ShellName(Pop3Mechanism? mechanism) =>
        mechanism is null || mechanism.Equals(Pop3Mechanism.Auto) ? null : mechanism.Name;

    private static T Same<T>(T value) => value;

    private async Task<Fin<TOut>> Call<TIn, TOut>(
        Func<CancellationToken, ValueTask<FSharpResult<TIn, Pop3Error>>> operation, Func<TIn, TOut> map, CancellationToken cancellationToken)
    {
        var result = await Conversions.CallAsync(operation, map, cancellationToken).ConfigureAwait(false);
        Observe(result);
        return result;
    }

    private async IAsyncEnumerable<Fin<TOut>> Enumerate<TIn, TOut>(
        IAsyncEnumerable<FSharpResult<TIn, Pop3Error>> results, Func<TIn, TOut> map,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var result in Conversions.ToFinStream(results, map, cancellationToken).ConfigureAwait(false))
        {
            Observe(result);
            yield return result;
        }
    }

    /// <summary>A failure that closed the connection ends the session: disposing then only closes.</summary>
    private void Observe<T>(Fin<T> result)
    {
        if (result.IsFail && (Error)result is Pop3Failure { Kind: not (Pop3ErrorKind.Usage or Pop3ErrorKind.Server) })
        {
            ended = true;
        }
    }
}
