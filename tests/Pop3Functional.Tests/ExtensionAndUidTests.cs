using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Tests.Support;

namespace Pop3Functional.Tests;

/// <summary>The raw command escape hatch, operations by UID and the automatic login.</summary>
public sealed class ExtensionAndUidTests
{
    private static SimulatorOptions WithPrivateCommands() =>
        SimulatorOptions.Default.WithPersonality(
            Personalities.simulator.WithPrivateCommand("XPNG", false).WithPrivateCommand("XLST", true, "one", ".dotted", "three"));

    [Fact]
    public async Task Single_line_extension()
    {
        await using var sim = await StartAsync(WithPrivateCommands());
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        var reply = Ok(await session.ExtensionAsync("XPNG", ["a", "b"], false, Ct));
        Assert.True(reply.Lines.IsEmpty);
        Assert.Contains("XPNG a b", sim.Transcript.ClientLines(0));
    }

    [Fact]
    public async Task Multi_line_extension_is_dot_unstuffed()
    {
        await using var sim = await StartAsync(WithPrivateCommands());
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        var reply = Ok(await session.ExtensionAsync("XLST", [], true, Ct));
        Assert.Equal(new[] { "one", ".dotted", "three" }, reply.Lines.ToArray());
    }

    [Fact]
    public async Task Extension_arguments_and_reserved_keywords_are_refused_before_sending()
    {
        await using var sim = await StartAsync(WithPrivateCommands());
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        AssertCode(Pop3ErrorCodes.InvalidArgument, await session.ExtensionAsync("XPNG", ["a\r\nDELE 1"], false, Ct));
        Assert.Equal(Pop3ErrorKind.Usage, Fail(await session.ExtensionAsync("PASS", ["x"], false, Ct)).Kind);
        Assert.DoesNotContain(sim.Transcript.ClientLines(0), l => l.StartsWith("XPNG", StringComparison.Ordinal) || l.StartsWith("DELE", StringComparison.Ordinal));
        Assert.True(session.IsHealthy);
    }

    [Fact]
    public async Task Unknown_extension_is_a_server_failure()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        Assert.Equal(Pop3ErrorKind.Server, Fail(await session.ExtensionAsync("XNON", [], false, Ct)).Kind);
    }

    [Fact]
    public async Task Retrieve_and_delete_by_uid()
    {
        await using var sim = await StartAsync();
        var uid = sim.Mailbox(User).Uids[1];
        await using (var session = await OpenAsync(InMemory(sim).WithLogin()))
        {
            Assert.Equal(2UL, Ok(await session.MessageNumberAsync(uid, Ct)));
            Assert.Equal(Stored(2), Ok(await session.RetrieveBytesByUidAsync(uid, Ct)));
            using var destination = new MemoryStream();
            Assert.Equal(2UL, Ok(await session.RetrieveByUidAsync(uid, destination, Ct)).Message);
            Assert.Equal(Stored(2), destination.ToArray());
            Ok(await session.DeleteByUidAsync(uid, Ct));
        }

        Assert.DoesNotContain(uid, sim.Mailbox(User).Uids);
        Assert.Equal(2, sim.Mailbox(User).Count);
    }

    [Fact]
    public async Task Unknown_uid_is_a_usage_failure()
    {
        await using var sim = await StartAsync();
        await using var session = await OpenAsync(InMemory(sim).WithLogin());
        Assert.Equal(Pop3ErrorKind.Usage, Fail(await session.RetrieveBytesByUidAsync("no-such-uid", Ct)).Kind);
        Assert.Equal(Pop3ErrorKind.Usage, Fail(await session.DeleteByUidAsync("no-such-uid", Ct)).Kind);
    }

    [Fact]
    public async Task Auto_login_uses_the_strongest_method_offered_SCRAM_then_APOP_then_USER_PASS()
    {
        await using var sim = await StartAsync();
        await using (await OpenAsync(InMemory(sim).WithLogin()))
        {
        }

        Assert.Contains(sim.Transcript.ClientLines(1), l => l.StartsWith("AUTH SCRAM-SHA-256 ", StringComparison.Ordinal));

        await using var apop = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.rfc1939));
        await using (await OpenAsync(InMemory(apop).WithLogin()))
        {
        }

        Assert.Contains(apop.Transcript.ClientLines(1), l => l.StartsWith("APOP alice", StringComparison.Ordinal));

        await using var plain = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.rfc1939.WithApop(false)));
        await using (var session = await OpenAsync(InMemory(plain)))
        {
            Ok(await session.LoginAutoAsync(User, Secrets.FromString(Password), Ct));
        }

        Assert.Contains("USER alice", plain.Transcript.ClientLines(1));
    }

    [Fact]
    public async Task Auto_login_never_falls_back_after_a_refusal()
    {
        await using var sim = await StartAsync();
        var result = await InMemory(sim).WithCredentials(User, Secrets.FromString("wrong")).OpenAsync(Ct);
        Assert.Equal(Pop3ErrorKind.Server, Fail(result).Kind);
        Assert.DoesNotContain(sim.Transcript.ClientLines(1), l => l.StartsWith("USER", StringComparison.Ordinal));
    }
}
