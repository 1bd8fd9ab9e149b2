using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using LanguageExt;
using LanguageExt.Common;
using Microsoft.Extensions.Logging;
using Pop3Functional.Core;
using Pop3Functional.Shell;

namespace Pop3Functional;

/// <summary>
/// How to open a session: immutable, every <c>With*</c> returns a changed copy, so one builder
/// can serve many sessions. Nothing is checked by throwing: an option out of range is a
/// <see cref="Pop3Failure"/> of kind Usage returned by <see cref="OpenAsync"/> or
/// <see cref="RunAsync{T}"/> before any byte is sent; as for every option, the last call wins, so
/// giving a refused option again with a valid value replaces the refusal.
/// </summary>
public sealed record Pop3Builder
{
    internal Pop3Builder(Pop3ConnectionOptions options, Stream? transport)
    {
        Options = options;
        Transport = transport;
    }

    internal Pop3ConnectionOptions Options { get; init; }

    internal Stream? Transport { get; init; }

    internal string? User { get; init; }

    internal Func<CancellationToken, ValueTask<Fin<Secret>>>? Password { get; init; }

    internal bool OwnsPassword { get; init; }

    /// <summary>True when the secret is an OAuth 2 access token (<see cref="WithOAuth2(string, Secret)"/>), not a password.</summary>
    internal bool IsToken { get; init; }

    internal Pop3Mechanism Mechanism { get; init; } = Pop3Mechanism.Auto;

    internal ILogger? Logger { get; init; }

    internal int? DebugLevel { get; init; }

    internal TextWriter? DebugOutput { get; init; }

    internal bool Utf8 { get; init; }

    internal string? Language { get; init; }

    /// <summary>
    /// The options refused so far, by option: calling the same <c>With*</c> again with a valid value
    /// replaces its problem, so the last call wins as for every other option.
    /// </summary>
    internal Map<string, Pop3Failure> Problems { get; init; }

    /// <summary>The host this builder connects to ("" for a caller's stream).</summary>
    public string Host => Options.Host;

    /// <summary>The port this builder connects to.</summary>
    public int Port => Options.Port;

    /// <summary>The TLS mode in force.</summary>
    public TlsMode Tls => Options.Tls;

    // ---- TLS ----

    /// <summary>TLS from the first byte (POP3S), whatever the port.</summary>
    public Pop3Builder WithImplicitTls() => this with { Options = Options.WithTls(TlsMode.Implicit) };

    /// <summary>A plaintext greeting, then STLS before anything secret; the session fails if the server cannot upgrade.</summary>
    public Pop3Builder WithStartTls() => this with { Options = Options.WithTls(TlsMode.StartTlsRequired) };

    /// <summary>No TLS, chosen explicitly. Passwords are still refused unless <see cref="AllowPlaintextCredentials"/> is called too (before or after).</summary>
    public Pop3Builder WithoutTls() => this with { Options = Options.WithoutTls(Options.AllowPlaintextCredentials) };

    /// <summary>The second explicit opt-in: passwords may cross a connection without TLS (only together with <see cref="WithoutTls"/>, in either order).</summary>
    public Pop3Builder AllowPlaintextCredentials() => this with { Options = Options with { AllowPlaintextCredentials = true } };

    /// <summary>A custom certificate check replacing the default one (chain, host name, expiry); every use is logged at Warning.</summary>
    public Pop3Builder WithCertificateValidation(RemoteCertificateValidationCallback validation)
    {
        ArgumentNullException.ThrowIfNull(validation);
        return this with { Options = Options.WithCertificateValidation(validation) };
    }

    /// <summary>A client certificate offered during the TLS handshake, if the server asks for one (added to any given before).</summary>
    public Pop3Builder WithClientCertificate(X509Certificate certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var certificates = new X509CertificateCollection(Options.ClientCertificates ?? []) { certificate };
        return this with { Options = Options with { ClientCertificates = certificates } };
    }

    /// <summary>The name sent for SNI and checked against the certificate, when it differs from the host.</summary>
    public Pop3Builder WithServerName(string serverName)
    {
        ArgumentException.ThrowIfNullOrEmpty(serverName);
        return this with { Options = Options with { TlsServerName = serverName } };
    }

    // ---- credentials ----

    /// <summary>Logs in as <paramref name="user"/> with <paramref name="password"/> when the session opens (the caller keeps ownership of the secret).</summary>
    public Pop3Builder WithCredentials(string user, Secret password)
    {
        ArgumentNullException.ThrowIfNull(password);
        return WithCredentials(user, _ => ValueTask.FromResult<Fin<Secret>>(password), owns: false);
    }

    /// <summary>
    /// Logs in with a password from a source that may have failed (<see cref="Secrets.FromEnvironment"/>,
    /// <see cref="Secrets.FromFile"/>): a failed source fails the open before connecting.
    /// </summary>
    public Pop3Builder WithCredentials(string user, Fin<Secret> password) =>
        WithCredentials(user, _ => ValueTask.FromResult(password), owns: false)
            .Checked(CredentialsOption, password.IsFail ? AsFailure((Error)password) : null);

    /// <summary>
    /// Logs in with a password asked for at login, after connecting (a vault, a prompt, a token
    /// refresh). The session disposes the secret after use; a callback that throws fails the open
    /// with code <see cref="Pop3ErrorCodes.SecretUnavailable"/>.
    /// </summary>
    public Pop3Builder WithCredentials(string user, Func<CancellationToken, ValueTask<Secret>> password)
    {
        ArgumentNullException.ThrowIfNull(password);
        return WithCredentials(user, async ct => (Fin<Secret>)await password(ct).ConfigureAwait(false), owns: true);
    }

    /// <summary>The user for <see cref="Pop3Mechanism.Rpop"/>, which needs no password.</summary>
    public Pop3Builder WithUser(string user)
    {
        ArgumentNullException.ThrowIfNull(user);
        return (this with { User = user, Password = null }).Checked(CredentialsOption, null);
    }

    /// <summary>
    /// How to log in: <see cref="Pop3Mechanism.Auto"/> (default: the strongest method both sides
    /// have), <see cref="Pop3Mechanism.UserPass"/>, <see cref="Pop3Mechanism.Apop"/>,
    /// <see cref="Pop3Mechanism.Rpop"/>, or a SASL mechanism (<see cref="Pop3Mechanism.ScramSha256"/>,
    /// <see cref="Pop3Mechanism.Sasl"/>...). One the server does not offer fails the open, before
    /// any credential is sent.
    /// </summary>
    public Pop3Builder WithMechanism(Pop3Mechanism mechanism)
    {
        ArgumentNullException.ThrowIfNull(mechanism);
        return this with { Mechanism = mechanism };
    }

    private Pop3Builder WithCredentials(string user, Func<CancellationToken, ValueTask<Fin<Secret>>> password, bool owns)
    {
        ArgumentNullException.ThrowIfNull(user);
        return (this with { User = user, Password = password, OwnsPassword = owns, IsToken = false }).Checked(CredentialsOption, null);
    }

    /// <summary>
    /// Logs in as <paramref name="user"/> with an OAuth 2 access token (Gmail, Outlook): OAUTHBEARER
    /// (RFC 7628) when the server offers it, else XOAUTH2, or the one <see cref="WithMechanism"/>
    /// names. The caller keeps ownership of the token; it is sent only over TLS unless plaintext
    /// credentials were allowed.
    /// </summary>
    public Pop3Builder WithOAuth2(string user, Secret token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return WithCredentials(user, _ => ValueTask.FromResult<Fin<Secret>>(token), owns: false) with { IsToken = true };
    }

    /// <summary>
    /// Logs in with an OAuth 2 access token asked for at login, after connecting (a token
    /// provider that refreshes it); a provider that throws fails the open with code
    /// <see cref="Pop3ErrorCodes.SecretUnavailable"/>.
    /// </summary>
    public Pop3Builder WithOAuth2(string user, Func<CancellationToken, ValueTask<string>> tokenProvider)
    {
        ArgumentNullException.ThrowIfNull(tokenProvider);
        return WithCredentials(
            user,
            async ct => (Fin<Secret>)Secret.FromString(await tokenProvider(ct).ConfigureAwait(false)),
            owns: true) with
        { IsToken = true };
    }

    // ---- time ----

    /// <summary>
    /// The longest time limit a session can wait for (about 49.7 days, what a .NET timer accepts):
    /// a longer <see cref="WithTimeout"/>, <see cref="WithConnectTimeout"/> or <see cref="WithDeadline"/>
    /// is refused at open, like a zero or negative one. For no deadline at all, do not set one.
    /// </summary>
    public static readonly TimeSpan MaxTimeLimit = Pop3ConnectionOptions.MaxTimeLimit;

    /// <summary>The reply timeout (poplib's <c>timeout</c>): a status line must arrive completely within it. 60 s by default; zero, negative or above <see cref="MaxTimeLimit"/> is refused before connecting.</summary>
    public Pop3Builder WithTimeout(TimeSpan timeout) =>
        (this with { Options = Options.WithReplyTimeout(timeout) }).Checked(ReplyTimeoutOption, TooLong("reply timeout", timeout));

    /// <summary>How long connecting may take (DNS, TCP, TLS, greeting, CAPA). 30 s by default; zero, negative or above <see cref="MaxTimeLimit"/> is refused before connecting.</summary>
    public Pop3Builder WithConnectTimeout(TimeSpan timeout) =>
        (this with { Options = Options with { ConnectTimeout = timeout } }).Checked(ConnectTimeoutOption, TooLong("connect timeout", timeout));

    /// <summary>An overall limit for each operation, besides the caller's token; zero, negative or above <see cref="MaxTimeLimit"/> is refused before connecting.</summary>
    public Pop3Builder WithDeadline(TimeSpan deadline) =>
        (this with { Options = Options.WithDeadline(deadline) }).Checked(DeadlineOption, TooLong("operation deadline", deadline));

    /// <summary>
    /// The shell refuses zero and negative limits itself (poplib's ValueError); one beyond what a
    /// timer accepts would throw from deep inside an operation instead, so it is refused here.
    /// </summary>
    private static Pop3Failure? TooLong(string limit, TimeSpan value) =>
        value > MaxTimeLimit
            ? Pop3Errors.Usage(Pop3ErrorCodes.InvalidArgument, $"The {limit} of {value.TotalDays:0.#} days is longer than the {MaxTimeLimit.TotalDays:0.#} days a timer can wait; give a shorter one.")
            : null;

    /// <summary>The low-speed rule (curl's --speed-limit/--speed-time): fewer than <paramref name="octets"/> in any <paramref name="window"/> while a body or listing arrives is a timeout. 1 KiB per 60 s by default.</summary>
    public Pop3Builder WithLowSpeedLimit(long octets, TimeSpan window) =>
        this with { Options = Options with { LowSpeedLimitOctets = octets, LowSpeedTime = window } };

    // ---- observability ----

    /// <summary>The protocol log: C:/S: lines at Debug, octet counts at Trace, secrets redacted.</summary>
    public Pop3Builder WithLogger(ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        return this with { Logger = logger };
    }

    /// <summary>
    /// poplib's <c>set_debuglevel</c> over the logger: 0 shows only Information and above, 1 adds the
    /// dialogue (Debug), 2 adds octet counts (Trace). Another level is refused at open. Without
    /// <see cref="WithLogger"/>, levels 1 and 2 print the redacted dialogue to standard error (poplib
    /// prints it to standard output).
    /// </summary>
    public Pop3Builder WithDebugLevel(int level) =>
        level is >= 0 and <= 2
            ? (this with { DebugLevel = level }).Checked(DebugLevelOption, null)
            : Checked(DebugLevelOption, Pop3Errors.Usage(Pop3ErrorCodes.InvalidArgument, $"The debug level must be 0, 1 or 2, not {level}."));

    /// <summary><see cref="WithDebugLevel(int)"/>, printing to <paramref name="output"/> when no logger was given.</summary>
    public Pop3Builder WithDebugLevel(int level, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        return WithDebugLevel(level) with { DebugOutput = output };
    }

    // ---- protocol ----

    /// <summary>At most <paramref name="commands"/> commands and <paramref name="octets"/> command octets in flight when the server offers PIPELINING (32 and 4,096 by default).</summary>
    public Pop3Builder WithPipeliningWindow(int commands, int octets) =>
        commands >= 1 && octets >= 1
            ? WithCore(Options.Core.WithLimits(Options.Core.Limits.WithPipelineWindow(commands, octets))).Checked(PipeliningWindowOption, null)
            : Checked(
                PipeliningWindowOption,
                Pop3Errors.Usage(Pop3ErrorCodes.InvalidArgument, $"The pipelining window needs at least one command and one octet, not {commands} and {octets}."));

    /// <summary>Lock-step: one command at a time, even when the server offers PIPELINING.</summary>
    public Pop3Builder WithoutPipelining() => WithCore(Options.Core.WithPipelining(false));

    /// <summary>A server deviation tolerated (true) or refused as a protocol error (false). All but long UIDs are tolerated by default.</summary>
    public Pop3Builder WithQuirk(Quirk quirk, bool tolerated)
    {
        ArgumentNullException.ThrowIfNull(quirk);
        return WithCore(Options.Core.WithQuirk(quirk, tolerated));
    }

    /// <summary>
    /// RFC behaviour only: lines of at most 512 octets and no deviation tolerated (the three RFC 1939
    /// allows are still accepted). The other limits (message size, pipelining window, …) stay as set.
    /// </summary>
    public Pop3Builder WithStrictParsing()
    {
        var strict = Core.Options.Strict;
        var limits = Options.Core.Limits;
        var core = Options.Core.WithLimits(limits.WithMaxLineOctets(Math.Min(limits.MaxLineOctets, strict.Limits.MaxLineOctets)));
        foreach (var quirk in Quirk.All)
        {
            core = core.WithQuirk(quirk, strict.Quirks.Contains(quirk));
        }

        return WithCore(core);
    }

    /// <summary>Other limits on what a server can make the client hold (line length, listing size, message size).</summary>
    public Pop3Builder WithLimits(Limits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        return WithCore(Options.Core.WithLimits(limits));
    }

    /// <summary>Sends UTF8 (RFC 6856 §2) on opening, before login (the only state where RFC 6856 allows it).</summary>
    public Pop3Builder WithUtf8() => this with { Utf8 = true };

    /// <summary>Sends LANG <paramref name="tag"/> (RFC 6856 §3) on opening, after login.</summary>
    public Pop3Builder WithLanguage(string tag)
    {
        ArgumentException.ThrowIfNullOrEmpty(tag);
        return this with { Language = tag };
    }

    private Pop3Builder WithCore(Core.Options core) => this with { Options = Options.WithCore(core) };

    private const string CredentialsOption = "credentials";
    private const string DebugLevelOption = "debug level";
    private const string PipeliningWindowOption = "pipelining window";
    private const string ReplyTimeoutOption = "reply timeout";
    private const string ConnectTimeoutOption = "connect timeout";
    private const string DeadlineOption = "operation deadline";

    /// <summary>This builder with <paramref name="option"/>'s problem replaced: <paramref name="problem"/>, or none when null.</summary>
    private Pop3Builder Checked(string option, Pop3Failure? problem) =>
        this with { Problems = problem is null ? Problems.Remove(option) : Problems.AddOrUpdate(option, problem) };

    // ---- opening ----

    /// <summary>
    /// Connects, sends UTF8 if asked, logs in when credentials were given (else the session stays
    /// in the authorization state, for a manual <see cref="Pop3Session.LoginAsync(string, Secret, CancellationToken)"/>), then sends
    /// LANG if asked. Any failure closes the connection and is returned; an exception from below
    /// (a caller's stream throwing what the shell does not expect) closes it too, then propagates.
    /// </summary>
    public async Task<Fin<Pop3Session>> OpenAsync(CancellationToken cancellationToken = default)
    {
        if (!Problems.IsEmpty)
        {
            return Problems.Values.First();
        }

        if (User is null && !Mechanism.Equals(Pop3Mechanism.Auto))
        {
            return Pop3Errors.Usage(Pop3ErrorCodes.InvalidArgument, $"The {Mechanism} mechanism needs a user: call WithCredentials (or WithUser for RPOP).");
        }

        if (User is not null && Password is null && Mechanism.NeedsPassword)
        {
            return Pop3Errors.Usage(Pop3ErrorCodes.InvalidArgument, $"The {Mechanism} mechanism needs a password: call WithCredentials(user, password).");
        }

        var logger = Logger ?? (DebugLevel is > 0 ? new TextWriterLogger(DebugOutput ?? Console.Error) : null);
        var options = logger is null ? Options : Options.WithLogger(DebugLevel is { } level ? new DebugLevelLogger(logger, level) : logger);
        var transport = Transport;
        var connected = await Conversions.CallAsync(
            ct => transport is null ? Pop3Connection.ConnectAsync(options, ct) : Pop3Connection.ConnectAsync(transport, options, ct),
            connection => new Pop3Session(connection),
            cancellationToken).ConfigureAwait(false);
        if (connected.IsFail)
        {
            return connected;
        }

        var session = (Pop3Session)connected;
        Fin<Unit> ready;
        try
        {
            ready = await SetUpAsync(session, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Something below threw instead of returning a failure (a caller's stream that throws
            // what the shell does not expect): the connection is in an unknown state, so close it.
            await session.AbandonAsync().ConfigureAwait(false);
            throw;
        }

        if (ready.IsFail)
        {
            await session.DisposeAsync().ConfigureAwait(false);
            return (Error)ready;
        }

        return session;
    }

    /// <summary>
    /// Opens a session, runs <paramref name="body"/>, sends QUIT (committing what the body
    /// deleted) and closes. When the body fails, its failure is returned and the connection closes
    /// without QUIT, so nothing it marked deleted is removed; when QUIT fails, that failure is
    /// returned (the deletions may not have taken effect). A body may send QUIT itself with
    /// <see cref="Pop3Session.QuitAsync"/> (to read <see cref="QuitResult.DeletionsCommitted"/>):
    /// no second QUIT follows, and a failure of the body's QUIT is returned as above.
    /// </summary>
    public async Task<Fin<T>> RunAsync<T>(Func<Pop3Session, Task<Fin<T>>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        var opened = await OpenAsync(cancellationToken).ConfigureAwait(false);
        if (opened.IsFail)
        {
            return (Error)opened;
        }

        var session = (Pop3Session)opened;
        Fin<T> result;
        try
        {
            result = await body(session).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            result = Pop3Errors.Cancelled;
        }
        catch
        {
            await session.AbandonAsync().ConfigureAwait(false);
            throw;
        }

        if (result.IsFail)
        {
            await session.AbandonAsync().ConfigureAwait(false);
            return result;
        }

        // A body that sent QUIT itself (to see what was committed) has ended the session: a second
        // QUIT would be refused and turn a run that committed into a failure.
        Fin<QuitResult> quit;
        try
        {
            quit = session.QuitOutcome ?? await session.QuitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await session.AbandonAsync().ConfigureAwait(false);
            throw;
        }

        await session.DisposeAsync().ConfigureAwait(false);
        return quit.IsFail ? (Error)quit : result;
    }

    private async Task<Fin<Unit>> SetUpAsync(Pop3Session session, CancellationToken cancellationToken)
    {
        if (Utf8)
        {
            var utf8 = await session.Utf8Async(cancellationToken).ConfigureAwait(false);
            if (utf8.IsFail)
            {
                return (Error)utf8;
            }
        }

        if (User is { } user)
        {
            var login = await LoginAsync(session, user, cancellationToken).ConfigureAwait(false);
            if (login.IsFail)
            {
                return (Error)login;
            }
        }

        if (Language is { } tag)
        {
            var language = await session.LanguageAsync(tag, cancellationToken).ConfigureAwait(false);
            if (language.IsFail)
            {
                return (Error)language;
            }
        }

        return Prelude.unit;
    }

    private async Task<Fin<MaildropStat>> LoginAsync(Pop3Session session, string user, CancellationToken cancellationToken)
    {
        if (!Mechanism.NeedsPassword)
        {
            return await session.RpopAsync(user, cancellationToken).ConfigureAwait(false);
        }

        var password = await AskPasswordAsync(cancellationToken).ConfigureAwait(false);
        if (password.IsFail)
        {
            return (Error)password;
        }

        var secret = (Secret)password;
        try
        {
            if (IsToken)
            {
                return await session.LoginOAuth2Async(user, secret, Mechanism, cancellationToken).ConfigureAwait(false);
            }

            return Mechanism.Name switch
            {
                "APOP" => await session.ApopAsync(user, secret, cancellationToken).ConfigureAwait(false),
                "USER" => await session.LoginAsync(user, secret, cancellationToken).ConfigureAwait(false),
                "AUTO" => await session.LoginAutoAsync(user, secret, cancellationToken).ConfigureAwait(false),
                _ => await session.LoginAsync(user, secret, Mechanism, cancellationToken).ConfigureAwait(false),
            };
        }
        finally
        {
            if (OwnsPassword)
            {
                ((IDisposable)secret).Dispose();
            }
        }
    }

    private async Task<Fin<Secret>> AskPasswordAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await Password!(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return Pop3Errors.Cancelled;
        }
        catch (Exception ex)
        {
            return Pop3Errors.SecretUnavailable($"The password callback failed ({ex.GetType().Name}: {ex.Message}).", ex);
        }
    }

    private static Pop3Failure AsFailure(Error error) =>
        error as Pop3Failure ?? Pop3Errors.SecretUnavailable(error.Message);
}
