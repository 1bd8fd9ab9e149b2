using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Pop3Functional.Simulator;
using Spectre.Console;
using Xunit;

namespace Pop3Functional.Cli.Tests;

/// <summary>What the commands print: the progress display and summary on a terminal, and the JSON of every command.</summary>
public sealed partial class OutputTests(ITestOutputHelper output)
{
    /// <summary>A terminal that writes into <paramref name="screen"/>: interactive, ANSI, no colours, 120 columns.</summary>
    private static IAnsiConsole Terminal(StringWriter screen)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.Yes,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.Yes,
            Out = new AnsiConsoleOutput(screen),
        });
        console.Profile.Width = 120;
        return console;
    }

    [GeneratedRegex(@"\x1b\[[0-9;?]*[A-Za-z]")]
    private static partial Regex Escape();

    [Fact]
    public async Task On_a_terminal_fetch_shows_a_progress_display_with_messages_and_octets_then_the_summary()
    {
        await using var server = await Server.StartAsync(messages: 40, seed: 21);
        using var dir = new TempDir();
        var screen = new StringWriter();

        var run = await Pop3Cli.RunAsync(io => io with { Terminal = Terminal(screen) }, ["fetch", dir.Path, "--group-size", "8", .. server.Connection()]);

        Assert.True(run.ExitCode == 0, run.Error);
        var text = Escape().Replace(screen.ToString(), "");
        output.WriteLine(text);
        Assert.Contains("40/40 messages", text);
        Assert.Contains("100%", text);
        // The octets as LIST gives them (CRLF line ends), in Spectre's units.
        var listed = server.Mailbox.Messages.Sum(m => m.Content.ToArray().Length);
        Assert.Contains(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{listed / 1024.0:0.0} KiB"), text);
        Assert.Contains($"Fetched 40 new message(s) into {dir.Path}", text);
        Assert.Equal("", run.Out); // nothing on the plain output: no "stored n/m" lines beside the display
        MaildirAssert.HoldsExactly(dir.Path, server.MessagesAsStored());
    }

    [Fact]
    public async Task On_a_terminal_warnings_appear_with_the_display_and_a_run_with_nothing_new_shows_no_bar()
    {
        await using var server = await Server.StartAsync(messages: 12, seed: 22);
        using var dir = new TempDir();
        var largest = server.Mailbox.Messages.Select((m, i) => (Size: m.Content.ToArray().Length, Number: i + 1)).MaxBy(m => m.Size);
        var first = new StringWriter();
        var second = new StringWriter();

        var limited = await Pop3Cli.RunAsync(
            io => io with { Terminal = Terminal(first) }, ["fetch", dir.Path, "--max-size", (largest.Size - 1).ToString(), .. server.Connection()]);
        var rest = await Pop3Cli.RunAsync(io => io with { Terminal = Terminal(second) }, ["fetch", dir.Path, .. server.Connection()]);
        var again = new StringWriter();
        var nothing = await Pop3Cli.RunAsync(io => io with { Terminal = Terminal(again) }, ["fetch", dir.Path, .. server.Connection()]);

        Assert.Equal(0, limited.ExitCode);
        var firstText = Escape().Replace(first.ToString(), "");
        Assert.Contains($"warning: message {largest.Number} skipped: {largest.Size} octets, over --max-size", firstText);
        Assert.Contains("11/11 messages", firstText);
        Assert.Contains("1 skipped as too large", firstText);
        Assert.Equal(0, rest.ExitCode);
        Assert.Contains("1/1 messages", Escape().Replace(second.ToString(), ""));
        Assert.Equal(0, nothing.ExitCode);
        var againText = Escape().Replace(again.ToString(), "").Trim();
        Assert.StartsWith("Nothing new: all 12 message(s)", againText);
        Assert.DoesNotContain("messages", againText.Replace("message(s)", ""));
    }

    [Fact]
    public async Task With_json_on_a_terminal_fetch_prints_one_json_document_and_no_display()
    {
        await using var server = await Server.StartAsync(messages: 6, seed: 23);
        using var dir = new TempDir();
        var screen = new StringWriter();

        var run = await Pop3Cli.RunAsync(io => io with { Terminal = Terminal(screen) }, ["fetch", dir.Path, "--json", .. server.Connection()]);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", screen.ToString());
        using var doc = JsonDocument.Parse(run.Out);
        Assert.Equal(6, doc.RootElement.GetProperty("fetched").GetInt32());
    }

    /// <summary>The fields docs/cli.md documents for the JSON of <c>fetch</c>.</summary>
    private static readonly string[] FetchFields =
    [
        "maildir", "onServer", "fetched", "alreadyFetched", "recovered", "skippedTooLarge", "duplicates", "leftForNextRun",
        "deleted", "tmpRemoved", "bytes", "seconds", "noUidl", "interrupted", "warnings", "stateFile", "error",
    ];

    [Fact]
    public async Task Every_command_prints_one_json_document_with_the_documented_fields()
    {
        await using var server = await Server.StartAsync(messages: 5, seed: 24);
        using var dir = new TempDir();
        var messages = server.Mailbox.Messages.Select(m => m.Content.ToArray()).ToList();
        var uids = server.Mailbox.Uids;

        var list = await Pop3Cli.RunAsync(["list", "--json", .. server.Connection()]);
        var retr = await Pop3Cli.RunAsync(["retr", "3", "--json", .. server.Connection()]);
        var retrToFile = await Pop3Cli.RunAsync(["retr", "2", "--json", "--output", dir.Sub("m2.eml"), .. server.Connection()]);
        var top = await Pop3Cli.RunAsync(["top", "1", "0", "--json", .. server.Connection()]);
        var fetch = await Pop3Cli.RunAsync(["fetch", dir.Sub("mail"), "--json", .. server.Connection()]);
        var dele = await Pop3Cli.RunAsync(["dele", "5", "--yes", "--json", .. server.Connection()]);

        using (var doc = Parse(list))
        {
            Assert.Equal(
                messages.Select((m, i) => (i + 1, m.Length)),
                doc.RootElement.GetProperty("messages").EnumerateArray().Select(e => (e.GetProperty("number").GetInt32(), e.GetProperty("octets").GetInt32())));
        }

        using (var doc = Parse(retr))
        {
            Assert.Equal(3, doc.RootElement.GetProperty("message").GetInt32());
            Assert.Equal(messages[2].Length, doc.RootElement.GetProperty("octets").GetInt32());
            Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("output").ValueKind);
            Assert.Equal(messages[2], Convert.FromBase64String(doc.RootElement.GetProperty("base64").GetString()!));
        }

        using (var doc = Parse(retrToFile))
        {
            Assert.Equal(dir.Sub("m2.eml"), doc.RootElement.GetProperty("output").GetString());
            Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("base64").ValueKind);
            Assert.Equal(messages[1], File.ReadAllBytes(dir.Sub("m2.eml")));
        }

        using (var doc = Parse(top))
        {
            var header = Encoding.Latin1.GetString(messages[0]);
            header = header[..(header.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)];
            Assert.Equal(header, Encoding.Latin1.GetString(Convert.FromBase64String(doc.RootElement.GetProperty("base64").GetString()!)));
        }

        using (var doc = Parse(fetch))
        {
            Assert.Equal(FetchFields.Order(), doc.RootElement.EnumerateObject().Select(p => p.Name).Order());
            Assert.Equal(5, doc.RootElement.GetProperty("fetched").GetInt32());
            Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("error").ValueKind);
        }

        using (var doc = Parse(dele))
        {
            Assert.Equal([5], doc.RootElement.GetProperty("deleted").EnumerateArray().Select(e => e.GetInt32()));
            Assert.True(doc.RootElement.GetProperty("updateCompleted").GetBoolean());
        }

        Assert.Equal(uids.Take(4), server.Mailbox.Uids);
    }

    [Theory]
    [InlineData("stat --json --host h --tls sometimes")]
    [InlineData("fetch --json --no-such-option")]
    [InlineData("stat --json --host h --user u")]
    [InlineData("fetch --json --max-messages -1 --simulate")]
    public async Task With_json_a_usage_error_is_a_json_error_document_too(string line)
    {
        var run = await Pop3Cli.RunAsync(line.Split(' '));

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        using var doc = JsonDocument.Parse(run.Out);
        var error = doc.RootElement.GetProperty("error");
        Assert.Equal("usage", error.GetProperty("kind").GetString());
        Assert.Equal(ExitCodes.Usage, error.GetProperty("exitCode").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.StartsWith("pop3: ", run.Error);
    }

    private static JsonDocument Parse(Run run)
    {
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Single(run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        return JsonDocument.Parse(run.Out);
    }
}
