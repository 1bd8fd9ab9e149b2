using System.Collections.Concurrent;
using System.Net.Security;
using Microsoft.Extensions.Logging;
using Microsoft.FSharp.Core;
using Pop3Functional.Core;
using Pop3Functional.Shell;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Shell.Tests;

/// <summary>Shared set-up: a simulator with a known mailbox, options that reach it, a capturing log.</summary>
internal static class Support
{
    public const string User = "alice";

    /// <summary>The password every test uses; no log line, error or transcript may ever show it.</summary>
    public const string Password = "canary-Zq81-secret";

    public static readonly string[] Texts =
    [
        "Subject: one\n\nfirst message\n.a dot line\n.\n",
        "Subject: two\n\nsecond message\n",
        "Subject: three\n\nthird\nmessage\n",
    ];

    public static async Task<Pop3Simulator> StartAsync(SimulatorOptions? options = null)
    {
        var sim = await Pop3Simulator.StartAsync(options ?? SimulatorOptions.Default, TestContext.Current.CancellationToken);
        var box = sim.Mailbox(User, Password);
        foreach (var text in Texts)
        {
            box.Add(text);
        }

        return sim;
    }

    /// <summary>The stored octets of message n (CRLF line ends).</summary>
    public static byte[] Stored(int n) => MessageContent.OfText(Texts[n - 1]).ToArray();

    /// <summary>Trusts exactly the simulator's certificate.</summary>
    public static RemoteCertificateValidationCallback Trust(Pop3Simulator sim) =>
        (_, certificate, _, _) => certificate is not null && certificate.GetRawCertData().AsSpan().SequenceEqual(sim.Certificate.RawData);

    public static Pop3ConnectionOptions Plain(Pop3Simulator sim, CapturingLogger? log = null) =>
        new()
        {
            Host = sim.Endpoint.Address.ToString(),
            Port = sim.Endpoint.Port,
            Tls = TlsMode.NoTls,
            AllowPlaintextCredentials = true,
            Logger = log,
            ReplyTimeout = TimeSpan.FromSeconds(10),
        };

    public static Pop3ConnectionOptions Stls(Pop3Simulator sim, CapturingLogger? log = null) =>
        Plain(sim, log) with
        {
            Tls = TlsMode.StartTlsRequired,
            AllowPlaintextCredentials = false,
            TlsServerName = "localhost",
            CertificateValidation = Trust(sim),
        };

    public static Pop3ConnectionOptions Implicit(Pop3Simulator sim, CapturingLogger? log = null) =>
        Stls(sim, log) with { Port = sim.TlsEndpoint.Port, Tls = TlsMode.Implicit };

    public static T Ok<T>(FSharpResult<T, Pop3Error> result) =>
        result.IsOk ? result.ResultValue : throw new Xunit.Sdk.XunitException($"expected success, got {result.ErrorValue.Message}");

    public static Pop3Error Error<T>(FSharpResult<T, Pop3Error> result) =>
        result.IsError ? result.ErrorValue : throw new Xunit.Sdk.XunitException($"expected an error, got {result.ResultValue}");

    public static async Task<Pop3Connection> LoggedInAsync(Pop3ConnectionOptions options)
    {
        var ct = TestContext.Current.CancellationToken;
        var connection = Ok(await Pop3Connection.ConnectAsync(options, ct));
        Ok(await connection.LoginAsync(User, Secret.FromString(Password), ct));
        return connection;
    }
}

/// <summary>An ILogger that keeps every formatted line (and the exception text) for assertions.</summary>
internal sealed class CapturingLogger : ILogger
{
    public ConcurrentQueue<string> Lines { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        Lines.Enqueue($"{logLevel}: {formatter(state, exception)}{(exception is null ? "" : " " + exception)}");
    }

    public string All => string.Join("\n", Lines);
}
