using System.Text.Json;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Cli.Tests;

/// <summary>Where the password or token comes from: the prompt, standard input, a file, the environment; never the command line.</summary>
public sealed class CredentialTests
{
    private const string TokenVariable = "POP3_CLI_TESTS_OAUTH_TOKEN";

    /// <summary>The connection options of <paramref name="server"/> without any password source.</summary>
    private static string[] WithoutPassword(Server server) =>
    [
        "--host", "127.0.0.1", "--port", server.Simulator.TlsEndpoint.Port.ToString(), "--tls", "implicit",
        "--fingerprint", server.Simulator.CertificateFingerprint, "--user", Server.User,
    ];

    [Fact]
    public async Task Without_a_password_source_the_password_is_prompted_for_on_the_terminal()
    {
        await using var server = await Server.StartAsync(messages: 3);
        var prompts = new List<string>();

        var run = await Pop3Cli.RunAsync(
            io => io with
            {
                PromptPassword = prompt =>
                {
                    prompts.Add(prompt);
                    return Server.Password;
                },
            },
            ["stat", .. WithoutPassword(server)]);

        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Equal(["Password: "], prompts);
        Assert.StartsWith("3 message(s)", run.Out);
    }

    [Fact]
    public async Task An_empty_answer_to_the_prompt_exits_2_before_connecting()
    {
        await using var server = await Server.StartAsync(messages: 1);

        var run = await Pop3Cli.RunAsync(io => io with { PromptPassword = _ => "" }, ["stat", .. WithoutPassword(server)]);

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("no password given", run.Error);
        Assert.Equal(0, server.Simulator.SessionsStarted);
    }

    [Fact]
    public async Task Without_a_terminal_or_a_password_source_the_command_exits_2_naming_the_sources()
    {
        await using var server = await Server.StartAsync(messages: 1);

        var run = await Pop3Cli.RunAsync(io => io with { In = new StringReader(Server.Password + "\n") }, ["stat", "--json", .. WithoutPassword(server)]);

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("--password-stdin", run.Error);
        Assert.Contains("--password-env", run.Error);
        Assert.Contains("--password-file", run.Error);
        using var doc = JsonDocument.Parse(run.Out);
        Assert.Equal("usage", doc.RootElement.GetProperty("error").GetProperty("kind").GetString());
        Assert.Equal(0, server.Simulator.SessionsStarted);
    }

    [Fact]
    public async Task Password_stdin_reads_the_first_line_of_standard_input()
    {
        await using var server = await Server.StartAsync(messages: 2);

        var run = await Pop3Cli.RunAsync(
            io => io with { In = new StringReader(Server.Password + "\r\nthe second line is not read\n") },
            ["stat", "--password-stdin", .. WithoutPassword(server)]);
        var empty = await Pop3Cli.RunAsync(io => io with { In = new StringReader("") }, ["stat", "--password-stdin", .. WithoutPassword(server)]);
        var two = await Pop3Cli.RunAsync(io => io with { In = new StringReader(Server.Password) }, ["stat", "--password-stdin", .. server.Connection()]);

        Assert.True(run.ExitCode == 0, run.Error);
        Assert.StartsWith("2 message(s)", run.Out);
        Assert.Equal(ExitCodes.Usage, empty.ExitCode);
        Assert.Contains("--password-stdin: the first line of standard input is empty", empty.Error);
        Assert.Equal(ExitCodes.Usage, two.ExitCode);
        Assert.Contains("give one of", two.Error);
        Assert.Equal(1, server.Simulator.SessionsStarted);
    }

    [Fact]
    public async Task Password_file_reads_its_first_line()
    {
        await using var server = await Server.StartAsync(messages: 2);
        using var dir = new TempDir();
        File.WriteAllText(dir.Sub("password"), Server.Password + "\nignored\n");

        var run = await Pop3Cli.RunAsync(["stat", "--password-file", dir.Sub("password"), .. WithoutPassword(server)]);
        var missing = await Pop3Cli.RunAsync(["stat", "--password-file", dir.Sub("absent"), .. WithoutPassword(server)]);

        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Equal(ExitCodes.Usage, missing.ExitCode);
        Assert.Contains("--password-file", missing.Error);
    }

    [Fact]
    public async Task The_built_program_reads_a_piped_password_only_with_password_stdin()
    {
        await using var server = await Server.StartAsync(messages: 4);
        var cancel = TestContext.Current.CancellationToken;
        var limit = TimeSpan.FromSeconds(60);

        var piped = await Pop3Process.RunAsync(["stat", "--password-stdin", .. WithoutPassword(server)], null, Server.Password + "\n", limit, cancel);
        var unasked = await Pop3Process.RunAsync(["stat", .. WithoutPassword(server)], null, Server.Password + "\n", limit, cancel);

        Assert.True(piped.ExitCode == 0, piped.Error);
        Assert.StartsWith("4 message(s)", piped.Out);
        Assert.Equal(ExitCodes.Usage, unasked.ExitCode);
        Assert.Contains("standard input is not a terminal", unasked.Error);
        Assert.Equal(1, server.Simulator.SessionsStarted);
    }

    [Theory]
    [InlineData("stat")]
    [InlineData("fetch")]
    public async Task A_password_on_the_command_line_is_refused_with_exit_2_and_not_echoed(string command)
    {
        await using var server = await Server.StartAsync(messages: 1);

        var run = await Pop3Cli.RunAsync([command, "--json", "--password", "hunter2", .. WithoutPassword(server)]);

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.DoesNotContain("hunter2", run.Out + run.Error);
        using var doc = JsonDocument.Parse(run.Out);
        Assert.Contains("a password on the command line is refused", doc.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(0, server.Simulator.SessionsStarted);
    }

    [Theory]
    [InlineData("auto", "AUTH OAUTHBEARER")]
    [InlineData("xoauth2", "AUTH XOAUTH2")]
    public async Task An_oauth2_token_from_the_environment_logs_in_to_the_gmail_personality(string auth, string expectedCommand)
    {
        await using var server = await Server.StartAsync(messages: 3, options: SimulatorOptions.Default.WithPersonality(Personalities.gmail));
        var token = "ya29.token-" + Guid.NewGuid().ToString("N");
        server.Mailbox.AddOAuthToken(token);
        Environment.SetEnvironmentVariable(TokenVariable + auth, token);

        var run = await Pop3Cli.RunAsync(["stat", "--auth", auth, "--oauth2-token-env", TokenVariable + auth, .. WithoutPassword(server)]);

        Assert.True(run.ExitCode == 0, run.Error);
        Assert.StartsWith("3 message(s)", run.Out);
        var lines = server.Simulator.Transcript.ClientLines();
        Assert.Contains(lines, l => l.StartsWith(expectedCommand, StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith("PASS", StringComparison.Ordinal) || l.StartsWith("USER", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_revoked_or_wrong_oauth2_token_exits_3()
    {
        await using var server = await Server.StartAsync(messages: 1, options: SimulatorOptions.Default.WithPersonality(Personalities.gmail));
        var token = "ya29.revoked-" + Guid.NewGuid().ToString("N");
        server.Mailbox.AddOAuthToken(token).RevokeOAuthToken(token);
        server.Mailbox.AddOAuthToken("ya29.the-valid-one");
        Environment.SetEnvironmentVariable(TokenVariable + "revoked", token);
        Environment.SetEnvironmentVariable(TokenVariable + "wrong", "ya29.never-issued");

        var revoked = await Pop3Cli.RunAsync(["stat", "--json", "--oauth2-token-env", TokenVariable + "revoked", .. WithoutPassword(server)]);
        var wrong = await Pop3Cli.RunAsync(["stat", "--auth", "xoauth2", "--oauth2-token-env", TokenVariable + "wrong", .. WithoutPassword(server)]);
        var unset = await Pop3Cli.RunAsync(["stat", "--oauth2-token-env", TokenVariable + "unset", .. WithoutPassword(server)]);

        Assert.Equal(ExitCodes.AuthenticationFailed, revoked.ExitCode);
        using (var doc = JsonDocument.Parse(revoked.Out))
        {
            Assert.Equal("authentication", doc.RootElement.GetProperty("error").GetProperty("kind").GetString());
        }

        Assert.Equal(ExitCodes.AuthenticationFailed, wrong.ExitCode);
        Assert.Contains("authentication failed", wrong.Error);
        Assert.Equal(ExitCodes.Usage, unset.ExitCode);
        Assert.Contains("is not set", unset.Error);
    }
}
