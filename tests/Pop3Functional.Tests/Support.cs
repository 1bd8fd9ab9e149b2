using System.Collections.Concurrent;
using System.Net.Security;
using LanguageExt;
using LanguageExt.Common;
using Microsoft.Extensions.Logging;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Tests;

/// <summary>Shared set-up: a simulator with a known mailbox, builders that reach it, result helpers.</summary>
internal static class Support
{
    public const string User = "alice";

    /// <summary>The password every test uses; no log line or error message may show it.</summary>
    public const string Password = "canary-Fc62-secret";

    public static readonly string[] Texts =
    [
        "Subject: one\n\nfirst message\n.a dot line\n.\n",
        "Subject: two\n\nsecond message\n",
        "Subject: three\n\nthird\nmessage\n",
    ];

    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static async Task<Pop3Simulator> StartAsync(SimulatorOptions? options = null)
    {
        var sim = await Pop3Simulator.StartAsync(options ?? SimulatorOptions.Default, Ct);
        var box = sim.Mailbox(User, Password);
        foreach (var text in Texts)
        {
            box.Add(text);
        }

        return sim;
    }

    /// <summary>The stored octets of message n (CRLF line ends).</summary>
    public static byte[] Stored(int n) => MessageContent.OfText(Texts[n - 1]).ToArray();

    public static RemoteCertificateValidationCallback Trust(Pop3Simulator sim) =>
        (_, certificate, _, _) => certificate is not null && certificate.GetRawCertData().AsSpan().SequenceEqual(sim.Certificate.RawData);

    /// <summary>Port of the simulator's plaintext endpoint: STLS required by default (DESIGN §12).</summary>
    public static Pop3Builder Stls(Pop3Simulator sim) =>
        Pop3.Connect(sim.Endpoint.Address.ToString(), sim.Endpoint.Port)
            .WithServerName("localhost")
            .WithCertificateValidation(Trust(sim))
            .WithTimeout(TimeSpan.FromSeconds(10));

    public static Pop3Builder Implicit(Pop3Simulator sim) =>
        Pop3.Connect(sim.TlsEndpoint.Address.ToString(), sim.TlsEndpoint.Port)
            .WithImplicitTls()
            .WithServerName("localhost")
            .WithCertificateValidation(Trust(sim))
            .WithTimeout(TimeSpan.FromSeconds(10));

    public static Pop3Builder Plain(Pop3Simulator sim) =>
        Pop3.Connect(sim.Endpoint.Address.ToString(), sim.Endpoint.Port).WithoutTls().AllowPlaintextCredentials().WithTimeout(TimeSpan.FromSeconds(10));

    public static Pop3Builder InMemory(Pop3Simulator sim) =>
        Pop3.Connect(sim.ConnectInMemory(), "localhost").WithoutTls().AllowPlaintextCredentials().WithTimeout(TimeSpan.FromSeconds(10));

    public static Pop3Builder WithLogin(this Pop3Builder builder) => builder.WithCredentials(User, Secrets.FromString(Password));

    public static async Task<Pop3Session> OpenAsync(Pop3Builder builder) => Ok(await builder.OpenAsync(Ct));

    public static T Ok<T>(Fin<T> result) =>
        result.Match(value => value, error => throw new Xunit.Sdk.XunitException($"expected success, got {error.Code}: {error.Message}"));

    public static T Some<T>(Option<T> option) =>
        option.Match(value => value, () => throw new Xunit.Sdk.XunitException("expected a value, got none"));

    public static Pop3Failure Fail<T>(Fin<T> result) =>
        result.Match(
            value => throw new Xunit.Sdk.XunitException($"expected a failure, got {value}"),
            error => error as Pop3Failure ?? throw new Xunit.Sdk.XunitException($"expected a Pop3Failure, got {error.GetType().Name}: {error.Message}"));

    public static void AssertCode<T>(int code, Fin<T> result)
    {
        var failure = Fail(result);
        Assert.True(code == failure.Code, $"expected code {code}, got {failure.Code}: {failure.Message}");
        Assert.DoesNotContain(Password, failure.Message, StringComparison.Ordinal);
    }
}

/// <summary>An ILogger that keeps every formatted line with its level.</summary>
internal sealed class CapturingLogger : ILogger
{
    public ConcurrentQueue<(LogLevel Level, string Text)> Lines { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Lines.Enqueue((logLevel, formatter(state, exception)));

    public string All => string.Join("\n", Lines.Select(l => l.Text));
}

/// <summary>
/// A caller's transport that throws <see cref="InvalidOperationException"/> (not an I/O error the
/// shell expects) when a command line starting with <paramref name="verb"/> is written, and records
/// whether it was disposed.
/// </summary>
internal sealed class ThrowingStream(Stream inner, string verb) : Stream
{
    public bool Disposed { get; private set; }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        System.Text.Encoding.ASCII.GetString(buffer.Span).Split("\r\n").Any(l => l.StartsWith(verb, StringComparison.Ordinal))
            ? throw new InvalidOperationException($"the test transport refuses {verb}")
            : inner.WriteAsync(buffer, cancellationToken);

    protected override void Dispose(bool disposing)
    {
        Disposed = true;
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
