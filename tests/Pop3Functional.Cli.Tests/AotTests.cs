using System.Text.Json;
using System.Text.RegularExpressions;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Cli.Tests;

/// <summary>
/// Issue #9: the native AOT build of <c>pop3</c> (docs/cli.md, Installing) does what the JIT
/// build does: no path it takes needs code generated at run time (reflection-based JSON, F#
/// printf). The binary is the one <c>POP3_CLI_NATIVE</c> names; the build's <c>test</c> target
/// publishes it and sets the variable, so in CI these tests always run. The JSON documents are
/// compared with what the same command prints in this process (the JIT build), text for text.
/// </summary>
public sealed partial class AotTests
{
    private const string Unset =
        "POP3_CLI_NATIVE is not set: it names a native AOT pop3 (dotnet publish src/Pop3Functional.Cli -c Release -r <rid> -p:PublishAot=true -o artifacts/native); `dotnet run --project build -- test` publishes it and sets it";

    private const string SimulatePasswordVariable = "POP3_CLI_AOT_TESTS_SIMULATE_PASSWORD";
    private const string TokenVariable = "POP3_CLI_AOT_TESTS_OAUTH_TOKEN";
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);

    public static bool HaveNative => Pop3Process.NativeProgram is not null;

    [Fact(SkipUnless = nameof(HaveNative), Skip = Unset)]
    public async Task Fetch_simulate_stores_exactly_the_generated_mailbox_and_a_rerun_stores_nothing()
    {
        using var dir = new TempDir();
        var maildir = dir.Sub("mail");

        var first = await NativeAsync(["fetch", "--simulate", maildir, "--json"]);
        var rerun = await NativeAsync(["fetch", "--simulate", maildir, "--json"]);

        Assert.True(first.ExitCode == 0, first.Error);
        using (var doc = JsonDocument.Parse(first.Out))
        {
            Assert.Equal(Simulation.DefaultMessages, doc.RootElement.GetProperty("fetched").GetInt32());
        }

        // The simulator inside the native binary generates the same octets as the generator here
        // (its dates, IDs and headers are not formatted by sprintf any more).
        var generated = MailboxGenerator.Generate(Simulation.Mailbox(Simulation.DefaultSeed, Simulation.DefaultMessages));
        MaildirAssert.HoldsExactly(maildir, generated.Select(m => Server.Lf(m.Content.ToArray())));

        Assert.True(rerun.ExitCode == 0, rerun.Error);
        using (var doc = JsonDocument.Parse(rerun.Out))
        {
            Assert.Equal(0, doc.RootElement.GetProperty("fetched").GetInt32());
            Assert.Equal(Simulation.DefaultMessages, doc.RootElement.GetProperty("alreadyFetched").GetInt32());
        }

        MaildirAssert.HoldsExactly(maildir, generated.Select(m => Server.Lf(m.Content.ToArray())));
    }

    [Fact(SkipUnless = nameof(HaveNative), Skip = Unset)]
    public async Task Every_command_prints_the_same_json_as_the_jit_build_against_a_native_simulate_process()
    {
        var cancel = TestContext.Current.CancellationToken;
        using var simulate = Pop3Process.Start(["simulate", "--json", "--messages", "6", "--seed", "11", "--personality", "dovecot"]);
        try
        {
            var stderr = simulate.StandardError.ReadToEndAsync(cancel);
            var first = await simulate.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(Limit, cancel);
            Assert.True(first is not null, "pop3 simulate printed nothing");
            using var info = JsonDocument.Parse(first);
            var root = info.RootElement;
            Assert.Equal(
                ["plain", "implicitTls", "fingerprint", "user", "password", "personality", "messages"],
                root.EnumerateObject().Select(p => p.Name));
            Assert.Equal("dovecot", root.GetProperty("personality").GetString());
            Assert.Equal(6, root.GetProperty("messages").GetInt32());
            Environment.SetEnvironmentVariable(SimulatePasswordVariable, root.GetProperty("password").GetString());
            string[] connection =
            [
                "--host", "127.0.0.1", "--port", root.GetProperty("implicitTls").GetString()!.Split(':')[1], "--tls", "implicit",
                "--fingerprint", root.GetProperty("fingerprint").GetString()!, "--user", root.GetProperty("user").GetString()!,
                "--password-env", SimulatePasswordVariable,
            ];

            foreach (var command in new[] { "stat", "list", "uidl", "capa", "retr 2", "top 2 3", "retr 99" })
            {
                var native = await NativeAsync([.. command.Split(' '), "--json", .. connection]);
                var jit = await Pop3Cli.RunAsync([.. command.Split(' '), "--json", .. connection]);
                Assert.True(native.ExitCode == jit.ExitCode, $"{command}: native exit {native.ExitCode} ({native.Error}), JIT {jit.ExitCode}");
                // The greeting's APOP timestamp differs from connection to connection.
                Assert.Equal(ApopTimestamp().Replace(jit.Out, "<>"), ApopTimestamp().Replace(native.Out, "<>"));
                using var doc = JsonDocument.Parse(native.Out);
            }

            var usage = await NativeAsync(["stat", "--json", "--bogus"]);
            Assert.Equal(ExitCodes.Usage, usage.ExitCode);
            Assert.Equal((await Pop3Cli.RunAsync(["stat", "--json", "--bogus"])).Out, usage.Out);

            using var dir = new TempDir();
            var nativeFetch = await NativeAsync(["fetch", dir.Sub("native"), "--json", .. connection]);
            var jitFetch = await Pop3Cli.RunAsync(["fetch", dir.Sub("jit"), "--json", .. connection]);
            Assert.True(nativeFetch.ExitCode == 0, nativeFetch.Error);
            Assert.Equal(
                Seconds().Replace(jitFetch.Out.Replace(dir.Sub("jit"), "MAILDIR", StringComparison.Ordinal), "\"seconds\":S"),
                Seconds().Replace(nativeFetch.Out.Replace(dir.Sub("native"), "MAILDIR", StringComparison.Ordinal), "\"seconds\":S"));
            using (var doc = JsonDocument.Parse(nativeFetch.Out))
            {
                Assert.Equal(6, doc.RootElement.GetProperty("fetched").GetInt32());
                Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("error").ValueKind);
            }

            MaildirAssert.HoldsExactly(dir.Sub("native"), Directory.GetFiles(Path.Combine(dir.Sub("jit"), "new")).Select(File.ReadAllBytes));

            var dele = await NativeAsync(["dele", "1", "3", "--yes", "--json", .. connection]);
            Assert.True(dele.ExitCode == 0, dele.Error);
            Assert.Equal("{\"deleted\":[1,3],\"updateCompleted\":true}\n", dele.Out);
            var after = await NativeAsync(["stat", "--json", .. connection]);
            Assert.True(after.ExitCode == 0, after.Error);
            using (var doc = JsonDocument.Parse(after.Out))
            {
                Assert.Equal(4, doc.RootElement.GetProperty("messages").GetInt32());
            }

            Pop3Process.Signal(simulate, Pop3Process.SigInt);
            await Pop3Process.WaitForExitAsync(simulate, Limit, "the native pop3 simulate after SIGINT", cancel);
            Assert.True(simulate.ExitCode == 0, $"exit code {simulate.ExitCode}: {await stderr}");
        }
        finally
        {
            if (!simulate.HasExited)
            {
                simulate.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact(SkipUnless = nameof(HaveNative), Skip = Unset)]
    public async Task An_untrusted_certificate_exits_4_and_a_refused_password_exits_3_with_the_same_json_as_the_jit_build()
    {
        await using var server = await Server.StartAsync(messages: 2);
        var connection = server.Connection();
        string[] untrusted = ["stat", "--json", .. connection.Where((_, i) => i is not (6 or 7))];
        Assert.DoesNotContain("--fingerprint", untrusted);
        const string WrongVariable = "POP3_CLI_AOT_TESTS_WRONG_PASSWORD";
        Environment.SetEnvironmentVariable(WrongVariable, "not-the-password");
        string[] refused = ["stat", "--json", .. connection[..^1], WrongVariable];

        var tls = await NativeAsync(untrusted);
        var auth = await NativeAsync(refused);

        Assert.Equal(ExitCodes.Tls, tls.ExitCode);
        Assert.Equal((await Pop3Cli.RunAsync(untrusted)).Out, tls.Out);
        using (var doc = JsonDocument.Parse(tls.Out))
        {
            Assert.Equal("tls", doc.RootElement.GetProperty("error").GetProperty("kind").GetString());
        }

        Assert.Equal(ExitCodes.AuthenticationFailed, auth.ExitCode);
        Assert.Equal((await Pop3Cli.RunAsync(refused)).Out, auth.Out);
        using (var doc = JsonDocument.Parse(auth.Out))
        {
            Assert.Equal("authentication", doc.RootElement.GetProperty("error").GetProperty("kind").GetString());
            Assert.Equal(ExitCodes.AuthenticationFailed, doc.RootElement.GetProperty("error").GetProperty("exitCode").GetInt32());
        }
    }

    [Theory(SkipUnless = nameof(HaveNative), Skip = Unset)]
    [InlineData("auto", "AUTH OAUTHBEARER")]
    [InlineData("xoauth2", "AUTH XOAUTH2")]
    public async Task An_oauth2_token_logs_in_to_the_gmail_personality_over_sasl(string auth, string expectedCommand)
    {
        await using var server = await Server.StartAsync(messages: 3, options: SimulatorOptions.Default.WithPersonality(Personalities.gmail));
        var token = "ya29.native-" + Guid.NewGuid().ToString("N");
        server.Mailbox.AddOAuthToken(token);
        var connection = server.Connection();

        Environment.SetEnvironmentVariable(TokenVariable + auth, token);
        string[] args = ["stat", "--json", "--auth", auth, "--oauth2-token-env", TokenVariable + auth, .. connection[..^2]];

        var run = await NativeAsync(args);

        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Equal((await Pop3Cli.RunAsync(args)).Out, run.Out);
        using (var doc = JsonDocument.Parse(run.Out))
        {
            Assert.Equal(3, doc.RootElement.GetProperty("messages").GetInt32());
        }

        var lines = server.Simulator.Transcript.ClientLines();
        Assert.Contains(lines, l => l.StartsWith(expectedCommand, StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith("PASS", StringComparison.Ordinal) || l.StartsWith("USER", StringComparison.Ordinal));
    }

    [Fact(SkipUnless = nameof(HaveNative), Skip = Unset)]
    public async Task Password_stdin_reads_the_password_from_a_pipe()
    {
        await using var server = await Server.StartAsync(messages: 4);
        var connection = server.Connection();

        var run = await NativeAsync(["list", "--json", "--password-stdin", .. connection[..^2]], input: Server.Password + "\n");

        Assert.True(run.ExitCode == 0, run.Error);
        using var doc = JsonDocument.Parse(run.Out);
        Assert.Equal([1UL, 2UL, 3UL, 4UL], doc.RootElement.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("number").GetUInt64()));
        Assert.Contains(server.Simulator.Transcript.ClientLines(), l => l.StartsWith("AUTH", StringComparison.Ordinal) || l.StartsWith("PASS", StringComparison.Ordinal));
    }

    private static Task<Run> NativeAsync(string[] args, IReadOnlyDictionary<string, string>? environment = null, string? input = null)
    {
        Assert.NotNull(Pop3Process.NativeProgram);
        return Pop3Process.RunAsync(args, environment, input, Limit, TestContext.Current.CancellationToken);
    }

    [GeneratedRegex("<[^<>@]*@[^<>]*>")]
    private static partial Regex ApopTimestamp();

    [GeneratedRegex("\"seconds\":[0-9.eE+-]+")]
    private static partial Regex Seconds();
}
