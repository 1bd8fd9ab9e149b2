using System.Runtime.CompilerServices;
using LanguageExt;
using LanguageExt.Common;
using Microsoft.FSharp.Core;
using Pop3Functional.Core;
using Pop3Functional.Shell;

namespace Pop3Functional;

/// <summary>
/// Every conversion from the core's and the shell's types to the façade's: results to
/// <see cref="Fin{A}"/>, <see cref="Pop3Error"/> to <see cref="Pop3Failure"/>, lists to
/// <see cref="Seq{A}"/>, absent values to <see cref="Option{A}"/>, and the caller's cancellation to
/// <see cref="Pop3Errors.Cancelled"/>. Nothing else in the façade touches an F# type.
/// </summary>
internal static class Conversions
{
    // ---- errors ----

    public static Pop3Failure ToFailure(this Pop3Error error) =>
        error switch
        {
            Pop3Error.Usage u => new(UsageCode(u.Item.Kind), u.Item.Message, Pop3ErrorKind.Usage, error, default, u.Item.Command, default, default),
            Pop3Error.Server s => new(
                ServerCode(s.Item.Code), s.Item.Message, Pop3ErrorKind.Server, error, ToOption(s.Item.Code), s.Item.Command, default, default),
            Pop3Error.Protocol p => new(ProtocolCode(p.Item.Kind), p.Item.Message, Pop3ErrorKind.Protocol, error, default, p.Item.Command, default, default),
            Pop3Error.Transport t => IsTimeout(t.Item)
                ? new(Pop3ErrorCodes.TimedOut, t.Item.Message, Pop3ErrorKind.TimedOut, error, default, t.Item.Operation, Endpoint(t.Item), ToOption(t.Item.Exception))
                : new(Pop3ErrorCodes.Transport, t.Item.Message, Pop3ErrorKind.Transport, error, default, t.Item.Operation, Endpoint(t.Item), ToOption(t.Item.Exception)),
            _ => throw new ArgumentOutOfRangeException(nameof(error), error, "An error kind this version does not know."),
        };

    /// <summary>The shell reports every time limit as a transport error caused by a <see cref="TimeoutException"/>.</summary>
    private static bool IsTimeout(TransportError error) => error.IsTimeout;

    private static Option<string> Endpoint(TransportError error) =>
        string.IsNullOrEmpty(error.Endpoint) ? Option<string>.None : error.Endpoint;

    private static int UsageCode(UsageErrorKind kind) =>
        kind.Tag switch
        {
            UsageErrorKind.Tags.WrongState => Pop3ErrorCodes.WrongState,
            UsageErrorKind.Tags.InvalidArgument => Pop3ErrorCodes.InvalidArgument,
            UsageErrorKind.Tags.CommandTooLong => Pop3ErrorCodes.CommandTooLong,
            UsageErrorKind.Tags.NoSuchMessage => Pop3ErrorCodes.NoSuchMessage,
            UsageErrorKind.Tags.MessageDeleted => Pop3ErrorCodes.MessageDeleted,
            UsageErrorKind.Tags.TlsRequired => Pop3ErrorCodes.TlsRequired,
            UsageErrorKind.Tags.PlaintextCredentials => Pop3ErrorCodes.PlaintextCredentials,
            UsageErrorKind.Tags.ApopUnavailable => Pop3ErrorCodes.ApopUnavailable,
            UsageErrorKind.Tags.CapabilityMissing => Pop3ErrorCodes.CapabilityMissing,
            UsageErrorKind.Tags.InvalidRequestId => Pop3ErrorCodes.InvalidRequestId,
            UsageErrorKind.Tags.NoSaslExchange => Pop3ErrorCodes.NoSaslExchange,
            UsageErrorKind.Tags.UnexpectedInput => Pop3ErrorCodes.UnexpectedInput,
            _ => Pop3ErrorCodes.Usage,
        };

    private static int ServerCode(FSharpOption<ResponseCode>? code) =>
        code is null ? Pop3ErrorCodes.Server
        : code.Value.Tag switch
        {
            ResponseCode.Tags.InUse => Pop3ErrorCodes.InUse,
            ResponseCode.Tags.LoginDelay => Pop3ErrorCodes.LoginDelay,
            ResponseCode.Tags.SysTemp => Pop3ErrorCodes.SysTemp,
            ResponseCode.Tags.SysPerm => Pop3ErrorCodes.SysPerm,
            ResponseCode.Tags.Auth => Pop3ErrorCodes.Auth,
            ResponseCode.Tags.Utf8 => Pop3ErrorCodes.Utf8Required,
            _ => Pop3ErrorCodes.OtherResponseCode,
        };

    private static int ProtocolCode(ProtocolErrorKind kind) =>
        kind.Tag switch
        {
            ProtocolErrorKind.Tags.BadGreeting => Pop3ErrorCodes.BadGreeting,
            ProtocolErrorKind.Tags.BadStatusLine => Pop3ErrorCodes.BadStatusLine,
            ProtocolErrorKind.Tags.LineTooLong => Pop3ErrorCodes.LineTooLong,
            ProtocolErrorKind.Tags.NulInLine => Pop3ErrorCodes.NulInLine,
            ProtocolErrorKind.Tags.BadNumber => Pop3ErrorCodes.BadNumber,
            ProtocolErrorKind.Tags.BadListing => Pop3ErrorCodes.BadListing,
            ProtocolErrorKind.Tags.ListingTooLong => Pop3ErrorCodes.ListingTooLong,
            ProtocolErrorKind.Tags.WrongMessageNumber => Pop3ErrorCodes.WrongMessageNumber,
            ProtocolErrorKind.Tags.DuplicateMessageNumber => Pop3ErrorCodes.DuplicateMessageNumber,
            ProtocolErrorKind.Tags.BadUid => Pop3ErrorCodes.BadUid,
            ProtocolErrorKind.Tags.UnsolicitedData => Pop3ErrorCodes.UnsolicitedData,
            ProtocolErrorKind.Tags.ResponseInjection => Pop3ErrorCodes.ResponseInjection,
            ProtocolErrorKind.Tags.ConnectionClosed => Pop3ErrorCodes.ConnectionClosed,
            ProtocolErrorKind.Tags.BadSaslChallenge => Pop3ErrorCodes.BadSaslChallenge,
            ProtocolErrorKind.Tags.SaslLimitExceeded => Pop3ErrorCodes.SaslLimitExceeded,
            ProtocolErrorKind.Tags.MessageTooLarge => Pop3ErrorCodes.MessageTooLarge,
            ProtocolErrorKind.Tags.TlsUnavailable => Pop3ErrorCodes.TlsUnavailable,
            ProtocolErrorKind.Tags.SnapshotUnavailable => Pop3ErrorCodes.SnapshotUnavailable,
            _ => Pop3ErrorCodes.Protocol,
        };

    // ---- results ----

    public static Fin<T> ToFin<T>(this FSharpResult<T, Pop3Error> result) =>
        result.IsOk ? result.ResultValue : result.ErrorValue.ToFailure();

    public static Fin<TOut> ToFin<TIn, TOut>(this FSharpResult<TIn, Pop3Error> result, Func<TIn, TOut> map) =>
        result.IsOk ? map(result.ResultValue) : result.ErrorValue.ToFailure();

    /// <summary>
    /// Runs one shell operation: its result converted, and the caller's cancellation (the shell's
    /// <see cref="OperationCanceledException"/>, only when <paramref name="cancellationToken"/> fired)
    /// turned into <see cref="Pop3Errors.Cancelled"/>.
    /// </summary>
    public static async Task<Fin<TOut>> CallAsync<TIn, TOut>(
        Func<CancellationToken, ValueTask<FSharpResult<TIn, Pop3Error>>> operation, Func<TIn, TOut> map, CancellationToken cancellationToken)
    {
        try
        {
            return (await operation(cancellationToken).ConfigureAwait(false)).ToFin(map);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return Pop3Errors.Cancelled;
        }
    }

    /// <summary>A shell enumeration converted item by item; the caller's cancellation ends it with <see cref="Pop3Errors.Cancelled"/>.</summary>
    public static async IAsyncEnumerable<Fin<TOut>> ToFinStream<TIn, TOut>(
        IAsyncEnumerable<FSharpResult<TIn, Pop3Error>> results, Func<TIn, TOut> map, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var items = results.GetAsyncEnumerator(cancellationToken);
        await using (items.ConfigureAwait(false))
        {
            while (true)
            {
                Fin<TOut> next;
                try
                {
                    if (!await items.MoveNextAsync().ConfigureAwait(false))
                    {
                        yield break;
                    }

                    next = items.Current.ToFin(map);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    next = Pop3Errors.Cancelled;
                }

                yield return next;
                if (next.IsFail && ((Error)next).Code == Pop3ErrorCodes.Cancelled)
                {
                    yield break;
                }
            }
        }
    }

    // ---- values ----

    public static Option<T> ToOption<T>(FSharpOption<T>? option) => option is null ? Option<T>.None : option.Value;

    public static Option<T> ToOption<T>(T? value) where T : struct => value.HasValue ? value.Value : Option<T>.None;

    public static Option<T> ToOptionRef<T>(T? value) where T : class => value is null ? Option<T>.None : value;

    public static Seq<T> ToSeq<T>(IReadOnlyList<T> items) => Prelude.toSeq(items.ToArray());

    public static MaildropStat ToStat(Pop3Stat stat) => new(stat.Count, stat.Octets);

    public static ServerCapabilities ToCapabilities(Pop3Capabilities c) =>
        new(
            c.Top, c.User, ToSeq(c.SaslMechanisms), c.RespCodes, c.AuthRespCode, c.Pipelining, c.Uidl, c.Stls, c.Lang, c.Utf8, c.Utf8User,
            ToOptionRef(c.Implementation), ToOption(c.LoginDelaySeconds), c.LoginDelayPerUser, c.ExpireNever, ToOption(c.ExpireDays), c.ExpirePerUser,
            ToSeq(c.Other), ToSeq(c.Lines));

    public static ServerGreeting ToGreeting(Pop3Greeting g) =>
        new(g.Text, g.ApopAvailable, g.CapaSupported, ToCapabilities(g.Capabilities), g.TlsActive);

    public static Retrieval ToRetrieval(Pop3Retrieval r) => new(r.Message, r.Octets, ToOption(r.ListedOctets));

    public static RetrievedMessage ToRetrievedMessage((ulong Message, byte[] Octets) m) => new(m.Message, m.Octets);

    public static QuitResult ToQuit(Pop3QuitResult q) => new(q.Text, q.UpdateCompleted, ToSeq(q.DeletionsCommitted));

    public static ExtensionReply ToExtensionReply(Pop3ExtensionReply r) => new(r.Text, ToSeq(r.Lines));
}
