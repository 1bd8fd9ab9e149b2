using System.Diagnostics;
using Pop3Functional.Core;
using Pop3Functional.Shell;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Shell.Tests.Support;

namespace Pop3Functional.Shell.Tests;

/// <summary>USER and PASS as separate steps (poplib's user/pass_), and how time limits are reported.</summary>
public sealed class LoginStepsAndTimeoutTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task USER_then_PASS_as_separate_calls_log_in()
    {
        await using var sim = await StartAsync();
        await using var connection = Ok(await Pop3Connection.ConnectAsync(Plain(sim), Ct));
        Ok(await connection.UserAsync(User, Ct));
        var maildrop = Ok(await connection.PassAsync(Secret.FromString(Password), Ct));
        Assert.Equal(3UL, maildrop.Count);
        Assert.Equal(maildrop, connection.Maildrop);
    }

    [Fact]
    public async Task PASS_without_USER_is_refused_before_any_byte()
    {
        await using var sim = await StartAsync();
        await using var connection = Ok(await Pop3Connection.ConnectAsync(Plain(sim), Ct));
        var before = sim.Transcript.ToString();
        var error = Error(await connection.PassAsync(Secret.FromString(Password), Ct));
        Assert.True(error.IsUsage, error.Message);
        Assert.Equal(before, sim.Transcript.ToString());
    }

    [Theory]
    [InlineData("deadline")]
    [InlineData("reply timeout")]
    public async Task A_silent_server_is_a_transport_error_marked_as_a_timeout(string limit)
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithFaults(Faults.Silence(Faults.OnVerb("NOOP", 1))));
        await using var connection = await LoggedInAsync(
            limit == "deadline"
                ? Plain(sim) with { OperationDeadline = TimeSpan.FromMilliseconds(300) }
                : Plain(sim) with { ReplyTimeout = TimeSpan.FromMilliseconds(300) });
        var error = Error(await connection.NoopAsync(Ct));
        var transport = Assert.IsType<Pop3Error.Transport>(error).Item;
        Assert.True(transport.IsTimeout, error.Message);
        Assert.IsType<TimeoutException>(transport.Exception.Value);
    }

    [Fact]
    public async Task Every_time_limit_is_a_timeout_and_a_silent_greeting_suggests_implicit_TLS()
    {
        await using var sim = await StartAsync();
        // STLS mode against the implicit-TLS port: the server waits for a ClientHello, the client for a greeting.
        var options = Stls(sim) with { Port = sim.TlsEndpoint.Port, ConnectTimeout = TimeSpan.FromMilliseconds(500) };
        var watch = Stopwatch.StartNew();
        var error = Error(await Pop3Connection.ConnectAsync(options, Ct));
        var transport = Assert.IsType<Pop3Error.Transport>(error).Item;
        Assert.True(transport.IsTimeout, error.Message);
        Assert.Contains("TlsMode.Implicit", error.Message);
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_server_refusing_in_time_is_not_a_timeout()
    {
        await using var sim = await StartAsync();
        await using var connection = Ok(await Pop3Connection.ConnectAsync(Plain(sim), Ct));
        var error = Error(await connection.LoginAsync(User, Secret.FromString("wrong"), Ct));
        Assert.True(error.IsServer, error.Message);
    }

    [Fact]
    public async Task A_time_limit_longer_than_a_timer_accepts_is_refused_before_connecting_and_the_callers_stream_is_closed()
    {
        await using var sim = await StartAsync();
        var stream = sim.ConnectInMemory();
        var error = Error(await Pop3Connection.ConnectAsync(stream, Plain(sim) with { OperationDeadline = TimeSpan.FromDays(60) }, Ct));
        Assert.True(error.IsUsage, error.Message);
        Assert.Contains("operation deadline", error.Message);
        Assert.False(stream.CanRead, "the connection owns the caller's stream from the call on");
    }

    [Fact]
    public async Task IsOpen_turns_false_when_an_enumeration_is_abandoned_and_after_QUIT()
    {
        await using var sim = await StartAsync();
        await using (var connection = await LoggedInAsync(Plain(sim)))
        {
            Assert.True(connection.IsOpen);
            await foreach (var _ in connection.RetrieveManyAsync([1UL, 2UL, 3UL], (_, _, _) => ValueTask.CompletedTask, Ct))
            {
                break;
            }

            Assert.False(connection.IsOpen);
        }

        await using var other = await LoggedInAsync(Plain(sim));
        Ok(await other.QuitAsync(Ct));
        Assert.False(other.IsOpen);
    }

    [Fact]
    public async Task A_stream_that_throws_before_the_greeting_is_closed_and_the_exception_goes_on()
    {
        var stream = new ThrowOnReadStream();
        await Assert.ThrowsAsync<InvalidOperationException>(async () =>
            await Pop3Connection.ConnectAsync(stream, new Pop3ConnectionOptions { Tls = TlsMode.NoTls }, Ct));
        Assert.True(stream.Disposed);
    }

    private sealed class ThrowOnReadStream : MemoryStream
    {
        public bool Disposed { get; private set; }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            throw new InvalidOperationException("a broken stream");

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("a broken stream");

        protected override void Dispose(bool disposing)
        {
            Disposed = true;
            base.Dispose(disposing);
        }
    }
}
