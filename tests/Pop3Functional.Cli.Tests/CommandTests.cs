using System.Text;
using System.Text.Json;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Cli.Tests;

public sealed class CommandTests
{
    [Fact]
    public async Task Stat_list_and_uidl_print_text_and_json()
    {
        await using var server = await Server.StartAsync(messages: 12);
        var sizes = server.Mailbox.Messages.Select(m => m.Content.ToArray().Length).ToList();

        var stat = await Pop3Cli.RunAsync(["stat", .. server.Connection()]);
        var statJson = await Pop3Cli.RunAsync(["stat", "--json", .. server.Connection()]);
        var list = await Pop3Cli.RunAsync(["list", .. server.Connection()]);
        var uidl = await Pop3Cli.RunAsync(["uidl", "--json", .. server.Connection()]);

        Assert.Equal($"12 message(s), {sizes.Sum()} octets", stat.Out.Trim());
        using var statDoc = JsonDocument.Parse(statJson.Out);
        Assert.Equal(12, statDoc.RootElement.GetProperty("messages").GetInt32());
        Assert.Equal(sizes.Sum(), statDoc.RootElement.GetProperty("octets").GetInt64());
        Assert.Equal(sizes.Select((s, i) => $"{i + 1} {s}"), list.Out.Trim().Split('\n'));
        using var uidlDoc = JsonDocument.Parse(uidl.Out);
        Assert.Equal(server.Mailbox.Uids, uidlDoc.RootElement.GetProperty("messages").EnumerateArray().Select(e => e.GetProperty("uid").GetString()));
    }

    [Fact]
    public async Task Capa_shows_the_greeting_and_capabilities_without_logging_in()
    {
        await using var server = await Server.StartAsync(messages: 1);

        var capa = await Pop3Cli.RunAsync(["capa", "--host", "127.0.0.1", "--port", server.Simulator.TlsEndpoint.Port.ToString(), "--tls", "implicit", "--fingerprint", server.Simulator.CertificateFingerprint]);
        var json = await Pop3Cli.RunAsync(["capa", "--json", "--host", "127.0.0.1", "--port", server.Simulator.TlsEndpoint.Port.ToString(), "--tls", "implicit", "--fingerprint", server.Simulator.CertificateFingerprint]);

        Assert.Equal(0, capa.ExitCode);
        Assert.Contains("tls: yes", capa.Out);
        Assert.Contains("  UIDL", capa.Out);
        using var doc = JsonDocument.Parse(json.Out);
        Assert.Contains("UIDL", doc.RootElement.GetProperty("capabilities").EnumerateArray().Select(e => e.GetString()));
        Assert.DoesNotContain(server.Simulator.Transcript.ClientLines(), l => l.StartsWith("USER", StringComparison.Ordinal) || l.StartsWith("AUTH", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Retr_and_top_give_the_octets_exactly_to_a_file_or_standard_output()
    {
        await using var server = await Server.StartAsync(messages: 5);
        using var dir = new TempDir();
        var second = server.Mailbox.Messages[1].Content.ToArray();

        var toFile = await Pop3Cli.RunAsync(["retr", "2", "--output", dir.Sub("m2.eml"), .. server.Connection()]);
        var toStdout = await Pop3Cli.RunAsync(["retr", "2", .. server.Connection()]);
        var top = await Pop3Cli.RunAsync(["top", "2", "0", .. server.Connection()]);

        Assert.Equal(0, toFile.ExitCode);
        Assert.Equal(second, File.ReadAllBytes(dir.Sub("m2.eml")));
        Assert.Equal(Encoding.UTF8.GetString(second), toStdout.Out);
        var text = Encoding.UTF8.GetString(second);
        Assert.Equal(text[..(text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)], top.Out);
    }

    [Fact]
    public async Task Dele_needs_yes_without_a_terminal_and_with_it_deletes_at_quit()
    {
        await using var server = await Server.StartAsync(messages: 4);
        var uids = server.Mailbox.Uids.ToList();

        var refused = await Pop3Cli.RunAsync(["dele", "1", "3", .. server.Connection()]);
        Assert.Equal(ExitCodes.Usage, refused.ExitCode);
        Assert.Equal(4, server.Mailbox.Count);

        var deleted = await Pop3Cli.RunAsync(["dele", "1", "3", "--yes", "--json", .. server.Connection()]);

        Assert.Equal(0, deleted.ExitCode);
        Assert.Contains("\"deleted\":[1,3]", deleted.Out);
        Assert.Equal([uids[1], uids[3]], server.Mailbox.Uids);
    }

    [Fact]
    public async Task A_password_on_the_command_line_is_refused_before_connecting()
    {
        var run = await Pop3Cli.RunAsync(["stat", "--host", "127.0.0.1", "--port", "1", "--user", "a", "--password", "hunter2"]);

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("a password on the command line is refused", run.Error);
        Assert.DoesNotContain("hunter2", run.Error);
    }

    [Theory]
    [InlineData("stat --host h --tls sometimes")]
    [InlineData("fetch --no-such-option")]
    [InlineData("retr notanumber --host h")]
    [InlineData("stat --host h --user u --fingerprint md5:00")]
    [InlineData("stat --user u --password-env X")]
    [InlineData("frobnicate")]
    public async Task Usage_errors_exit_2(string line)
    {
        var run = await Pop3Cli.RunAsync(line.Split(' '));

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.StartsWith("pop3: ", run.Error);
    }

    [Fact]
    public async Task A_wrong_password_exits_3()
    {
        await using var server = await Server.StartAsync(messages: 1);
        Environment.SetEnvironmentVariable("POP3_CLI_TESTS_WRONG", "not-the-password");
        var args = server.Connection();
        args[^1] = "POP3_CLI_TESTS_WRONG";

        var run = await Pop3Cli.RunAsync(["stat", "--json", .. args]);

        Assert.Equal(ExitCodes.AuthenticationFailed, run.ExitCode);
        using var doc = JsonDocument.Parse(run.Out);
        Assert.Equal("authentication", doc.RootElement.GetProperty("error").GetProperty("kind").GetString());
    }

    [Fact]
    public async Task An_untrusted_certificate_exits_4_and_names_the_problem()
    {
        await using var server = await Server.StartAsync(messages: 1);

        var run = await Pop3Cli.RunAsync(
            ["stat", "--host", "127.0.0.1", "--port", server.Simulator.TlsEndpoint.Port.ToString(), "--tls", "implicit", "--user", Server.User, "--password-env", Server.PasswordVariable]);

        Assert.Equal(ExitCodes.Tls, run.ExitCode);
        Assert.Contains("certificate", run.Error);
        Assert.Contains("--fingerprint", run.Error);
        Assert.Empty(server.Simulator.Transcript.ClientLines());
    }

    [Fact]
    public async Task A_mailbox_in_use_exits_5()
    {
        var busy = SimulatorOptions.Default.WithFaults(Faults.ErrorReply(Faults.OnVerb("PASS"), "IN-USE", "Another session holds the mailbox."));
        await using var server = await Server.StartAsync(messages: 1, options: busy);

        var run = await Pop3Cli.RunAsync(["stat", "--auth", "user", .. server.Connection()]);

        Assert.Equal(ExitCodes.ServerBusy, run.ExitCode);
        Assert.Contains("IN-USE", run.Error);
    }

    [Fact]
    public async Task A_maildir_that_cannot_be_written_exits_8()
    {
        await using var server = await Server.StartAsync(messages: 2);
        using var dir = new TempDir();
        File.WriteAllText(dir.Sub("file"), "not a directory");

        var run = await Pop3Cli.RunAsync(["fetch", Path.Combine(dir.Sub("file"), "mail"), .. server.Connection()]);

        Assert.Equal(ExitCodes.NotWritable, run.ExitCode);
        Assert.Equal(2, server.Mailbox.Count);
    }
}
