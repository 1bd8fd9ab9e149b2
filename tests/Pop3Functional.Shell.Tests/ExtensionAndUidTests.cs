using Pop3Functional.Core;
using Pop3Functional.Shell;
using Pop3Functional.Simulator;
using Xunit;
using static Pop3Functional.Shell.Tests.Support;

namespace Pop3Functional.Shell.Tests;

/// <summary>Extension commands, the automatic login and operations by UID, against the simulator.</summary>
public sealed class ExtensionAndUidTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static SimulatorOptions WithPrivateCommands() =>
        SimulatorOptions.Default.WithPersonality(
            Personalities.simulator
                .WithPrivateCommand("XSTA", false)
                .WithPrivateCommand("XLST", true, "first", ".dotted", ""));

    [Fact]
    public async Task Extension_commands_answer_single_and_multi_line_and_the_session_goes_on()
    {
        await using var sim = await StartAsync(WithPrivateCommands());
        await using var connection = await LoggedInAsync(Plain(sim));

        var single = Ok(await connection.ExtensionAsync("xsta", ["now"], multiline: false, Ct));
        Assert.Equal("XSTA done.", single.Text);
        Assert.Empty(single.Lines);

        var multi = Ok(await connection.ExtensionAsync("XLST", [], multiline: true, Ct));
        Assert.Equal(["first", ".dotted", ""], multi.Lines);

        var unknown = Error(await connection.ExtensionAsync("XNOP", [], multiline: true, Ct));
        Assert.True(unknown.IsServer, unknown.Message);

        Assert.Equal(Stored(1), Ok(await connection.RetrieveBytesAsync(1, Ct)));
        Assert.Contains("C: XSTA now", sim.Transcript.ToString());
    }

    [Fact]
    public async Task An_extension_that_would_hide_a_state_change_or_inject_a_line_is_refused_before_any_byte()
    {
        await using var sim = await StartAsync(WithPrivateCommands());
        await using var connection = await LoggedInAsync(Plain(sim));
        var before = sim.Transcript.ToString();

        var stls = Error(await connection.ExtensionAsync("STLS", [], multiline: false, Ct));
        Assert.True(stls.IsUsage, stls.Message);
        var injected = Error(await connection.ExtensionAsync("XSTA", ["a\r\nDELE 1"], multiline: false, Ct));
        Assert.True(injected.IsUsage, injected.Message);

        Assert.Equal(before, sim.Transcript.ToString());
        Ok(await connection.NoopAsync(Ct));
    }

    [Fact]
    public async Task The_automatic_login_uses_APOP_when_the_greeting_offers_it_and_no_SASL_is_offered()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.rfc1939));
        await using var connection = Ok(await Pop3Connection.ConnectAsync(Plain(sim), Ct));
        Assert.True(connection.Greeting.ApopAvailable);
        Assert.Equal(3UL, Ok(await connection.LoginAutoAsync(User, Secret.FromString(Password), Ct)).Count);
        Assert.Contains("C: APOP alice", sim.Transcript.ToString());
        Assert.DoesNotContain("C: USER", sim.Transcript.ToString());
    }

    [Fact]
    public async Task The_automatic_login_uses_USER_and_PASS_without_an_APOP_timestamp_or_SASL()
    {
        await using var sim = await StartAsync(SimulatorOptions.Default.WithPersonality(Personalities.rfc1939.WithApop(false)));
        await using var connection = Ok(await Pop3Connection.ConnectAsync(Plain(sim), Ct));
        Assert.False(connection.Greeting.ApopAvailable);
        Ok(await connection.LoginAutoAsync(User, Secret.FromString(Password), Ct));
        Assert.Contains("C: USER alice", sim.Transcript.ToString());
    }

    [Fact]
    public async Task A_rejected_automatic_login_is_not_retried_by_a_weaker_method()
    {
        await using var sim = await StartAsync();
        await using var connection = Ok(await Pop3Connection.ConnectAsync(Plain(sim), Ct));
        var error = Error(await connection.LoginAutoAsync(User, Secret.FromString("wrong"), Ct));
        Assert.True(error.IsServer, error.Message);
        Assert.DoesNotContain("C: USER", sim.Transcript.ToString());
        Assert.DoesNotContain("C: PASS", sim.Transcript.ToString());
    }

    [Fact]
    public async Task Messages_are_retrieved_and_deleted_by_UID_with_one_UIDL()
    {
        await using var sim = await StartAsync();
        var uids = sim.Mailbox(User).Uids;
        await using (var connection = await LoggedInAsync(Plain(sim)))
        {
            Assert.Equal(Stored(2), Ok(await connection.RetrieveBytesByUidAsync(uids[1], Ct)));
            var sink = new MemoryStream();
            var retrieval = Ok(await connection.RetrieveByUidAsync(uids[2], (bytes, _) => { sink.Write(bytes.Span); return ValueTask.CompletedTask; }, Ct));
            Assert.Equal(3UL, retrieval.Message);
            Assert.Equal(Stored(3), sink.ToArray());
            Ok(await connection.DeleteByUidAsync(uids[0], Ct));
            Assert.Equal(1UL, Ok(await connection.MessageNumberAsync(uids[0], Ct)));

            var unknown = Error(await connection.MessageNumberAsync("no-such-uid", Ct));
            Assert.True(unknown.IsUsage, unknown.Message);
            Assert.Contains("no-such-uid", unknown.Message);
            Ok(await connection.QuitAsync(Ct));
        }

        Assert.Single(System.Text.RegularExpressions.Regex.Matches(sim.Transcript.ToString(), "C: UIDL"));
        Assert.Equal(uids.Skip(1), sim.Mailbox(User).Uids);
    }

    [Fact]
    public async Task A_UID_listed_for_two_messages_is_ambiguous_and_refused()
    {
        await using var sim = await StartAsync();
        var box = sim.Mailbox(User);
        box.Add(MessageContent.OfText("Subject: twin\n\nx\n"), box.Uids[0]);
        var options = Plain(sim) with { Core = Options.Default.WithQuirk(Quirk.DuplicateUids, true) };
        await using var connection = await LoggedInAsync(options);
        var error = Error(await connection.RetrieveBytesByUidAsync(box.Uids[0], Ct));
        Assert.True(error.IsUsage, error.Message);
        Assert.Contains("more than one message", error.Message);
    }
}
