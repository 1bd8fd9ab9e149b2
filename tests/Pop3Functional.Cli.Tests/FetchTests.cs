using System.Text.Json;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Cli.Tests;

public sealed class FetchTests
{
    [Fact]
    public async Task Fetch_keeps_the_server_unchanged_stores_every_message_byte_exact_and_a_rerun_fetches_nothing()
    {
        await using var server = await Server.StartAsync();
        using var dir = new TempDir();
        var maildir = dir.Sub("mail");
        var expected = server.MessagesAsStored();

        var first = await Pop3Cli.RunAsync(["fetch", maildir, .. server.Connection()]);
        Assert.True(first.ExitCode == 0, first.Error);
        Assert.Contains($"Fetched {expected.Count} new message(s)", first.Out);
        MaildirAssert.HoldsExactly(maildir, expected);
        Assert.Equal(expected.Count, server.Mailbox.Count);

        var second = await Pop3Cli.RunAsync(["fetch", maildir, .. server.Connection()]);
        Assert.Equal(0, second.ExitCode);
        Assert.Contains($"Nothing new: all {expected.Count} message(s)", second.Out);
        MaildirAssert.HoldsExactly(maildir, expected);
    }

    [Fact]
    public async Task Fetch_delete_empties_the_server_into_the_maildir_byte_exact()
    {
        await using var server = await Server.StartAsync(seed: 11);
        using var dir = new TempDir();
        var expected = server.MessagesAsStored();

        var run = await Pop3Cli.RunAsync(["fetch", dir.Path, "--delete", "--group-size", "7", "--json", .. server.Connection()]);

        Assert.True(run.ExitCode == 0, run.Error);
        using var summary = JsonDocument.Parse(run.Out);
        Assert.Equal(expected.Count, summary.RootElement.GetProperty("fetched").GetInt32());
        Assert.Equal(expected.Count, summary.RootElement.GetProperty("deleted").GetInt32());
        Assert.Equal(0, server.Mailbox.Count);
        MaildirAssert.HoldsExactly(dir.Path, expected);
    }

    [Fact]
    public async Task Max_messages_and_max_size_limit_a_run_and_the_next_run_takes_the_rest()
    {
        await using var server = await Server.StartAsync(messages: 30, seed: 3);
        using var dir = new TempDir();
        var expected = server.MessagesAsStored();
        var largest = server.Mailbox.Messages.Max(m => m.Content.ToArray().Length);

        var limited = await Pop3Cli.RunAsync(["fetch", dir.Path, "--max-messages", "10", "--max-size", (largest - 1).ToString(), "--json", .. server.Connection()]);
        Assert.Equal(0, limited.ExitCode);
        using (var summary = JsonDocument.Parse(limited.Out))
        {
            Assert.Equal(10, summary.RootElement.GetProperty("fetched").GetInt32());
            Assert.Equal(1, summary.RootElement.GetProperty("skippedTooLarge").GetInt32());
            Assert.Equal(19, summary.RootElement.GetProperty("leftForNextRun").GetInt32());
        }

        Assert.Contains("over --max-size", limited.Error);
        var rest = await Pop3Cli.RunAsync(["fetch", dir.Path, .. server.Connection()]);
        Assert.Equal(0, rest.ExitCode);
        MaildirAssert.HoldsExactly(dir.Path, expected);
    }

    [Fact]
    public async Task Top_stores_headers_only_under_its_own_state()
    {
        await using var server = await Server.StartAsync(messages: 12);
        using var dir = new TempDir();

        var run = await Pop3Cli.RunAsync(["fetch", dir.Path, "--top", "0", .. server.Connection()]);

        Assert.Equal(0, run.ExitCode);
        var headers = server.Mailbox.Messages.Select(m =>
        {
            var text = System.Text.Encoding.Latin1.GetString(m.Content.ToArray());
            return System.Text.Encoding.Latin1.GetBytes(text[..(text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)].Replace("\r\n", "\n"));
        });
        MaildirAssert.HoldsExactly(dir.Path, headers);
        var full = await Pop3Cli.RunAsync(["fetch", dir.Sub("full"), "--top", "0", "--delete", .. server.Connection()]);
        Assert.Equal(ExitCodes.Usage, full.ExitCode);
    }

    [Fact]
    public async Task Without_uidl_the_content_rule_stores_each_message_once_and_warns()
    {
        var noUidl = SimulatorOptions.Default.WithPersonality(Personalities.simulator.WithUidl(false));
        await using var server = await Server.StartAsync(messages: 15, options: noUidl);
        using var dir = new TempDir();
        var expected = server.MessagesAsStored();

        var first = await Pop3Cli.RunAsync(["fetch", dir.Path, .. server.Connection()]);
        var second = await Pop3Cli.RunAsync(["fetch", dir.Path, "--json", .. server.Connection()]);

        Assert.True(first.ExitCode == 0, first.Error);
        Assert.Contains("no UIDL", first.Error);
        Assert.Equal(0, second.ExitCode);
        using var summary = JsonDocument.Parse(second.Out);
        Assert.Equal(0, summary.RootElement.GetProperty("fetched").GetInt32());
        Assert.Equal(expected.Count, summary.RootElement.GetProperty("duplicates").GetInt32());
        Assert.True(summary.RootElement.GetProperty("noUidl").GetBoolean());
        MaildirAssert.HoldsExactly(dir.Path, expected);
    }

    [Fact]
    public async Task Fetch_simulate_serves_the_same_mailbox_every_run_and_the_second_run_stores_nothing()
    {
        using var dir = new TempDir();

        var first = await Pop3Cli.RunAsync(["fetch", "--simulate", dir.Path]);
        var second = await Pop3Cli.RunAsync(["fetch", "--simulate", dir.Path]);

        Assert.True(first.ExitCode == 0, first.Error);
        Assert.Contains($"Fetched {Simulation.DefaultMessages} new message(s)", first.Out);
        Assert.Equal(0, second.ExitCode);
        Assert.Contains($"Nothing new: all {Simulation.DefaultMessages} message(s)", second.Out);
        Assert.Equal(Simulation.DefaultMessages, Directory.GetFiles(Path.Combine(dir.Path, "new")).Length);
    }
}
