using System.Security.Cryptography;
using System.Text;
using Pop3Functional.Simulator;
using Xunit;

namespace Pop3Functional.Cli.Tests;

/// <summary>A simulator with one generated account, and the command line that reaches it.</summary>
internal sealed class Server : IAsyncDisposable
{
    public const string User = "alice";
    public const string Password = "pw-for-tests";
    public const string PasswordVariable = "POP3_CLI_TESTS_PASSWORD";

    private Server(Pop3Simulator simulator) => Simulator = simulator;

    public Pop3Simulator Simulator { get; }

    public Mailbox Mailbox => Simulator.Mailbox(User);

    public static async Task<Server> StartAsync(int messages = 40, int seed = 7, SimulatorOptions? options = null)
    {
        Environment.SetEnvironmentVariable(PasswordVariable, Password);
        var simulator = await Pop3Simulator.StartAsync((options ?? SimulatorOptions.Default).WithTranscript(true), TestContext.Current.CancellationToken);
        simulator.Mailbox(User, Password).AddGenerated(GeneratorOptions.Default.WithSeed(seed).WithCount(messages).WithSizes(512, 16 * 1024));
        return new Server(simulator);
    }

    /// <summary>The connection options of a command against this server (implicit TLS, certificate pinned).</summary>
    public string[] Connection() =>
    [
        "--host", "127.0.0.1", "--port", Simulator.TlsEndpoint.Port.ToString(), "--tls", "implicit",
        "--fingerprint", Simulator.CertificateFingerprint, "--user", User, "--password-env", PasswordVariable,
    ];

    /// <summary>The server's messages as a Maildir stores them: LF line ends, nothing added.</summary>
    public List<byte[]> MessagesAsStored() =>
        Mailbox.Messages.Select(m => Lf(m.Content.ToArray())).ToList();

    public static byte[] Lf(byte[] crlf) => Encoding.Latin1.GetBytes(Encoding.Latin1.GetString(crlf).Replace("\r\n", "\n"));

    public ValueTask DisposeAsync() => Simulator.DisposeAsync();
}

/// <summary>What a command printed, and its exit code.</summary>
internal sealed record Run(int ExitCode, string Out, string Error);

internal static class Pop3Cli
{
    public static async Task<Run> RunAsync(IFileSystem? fileSystem, TextWriter? error, params string[] args)
    {
        var output = new StringWriter();
        var errors = error ?? new StringWriter();
        var stdout = new MemoryStream();
        var io = new CliIo(output, errors, () => stdout, Confirm: null, PromptPassword: null, IsTerminal: false);
        var code = await Cli.RunAsync(args, io, TestContext.Current.CancellationToken, fileSystem);
        var text = output.ToString() + Encoding.UTF8.GetString(stdout.ToArray());
        return new Run(code, text, errors.ToString() ?? "");
    }

    public static Task<Run> RunAsync(params string[] args) => RunAsync(null, null, args);
}

/// <summary>A fresh directory, deleted afterwards.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pop3-cli-tests-" + Guid.NewGuid().ToString("N"));

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS to clean; the next run uses a new name.
        }
    }
}

internal static class MaildirAssert
{
    /// <summary>The Maildir holds exactly <paramref name="expected"/> (as a multiset), byte-exact, with correct ,S= sizes.</summary>
    public static void HoldsExactly(string maildir, IEnumerable<byte[]> expected)
    {
        var files = Directory.GetFiles(Path.Combine(maildir, "new")).Concat(Directory.GetFiles(Path.Combine(maildir, "cur"))).ToList();
        foreach (var file in files)
        {
            var name = Path.GetFileName(file);
            var size = long.Parse(name[(name.IndexOf(",S=", StringComparison.Ordinal) + 3)..].Split(':', ',')[0]);
            Assert.Equal(new FileInfo(file).Length, size);
        }

        static string Key(byte[] b) => Convert.ToHexString(SHA256.HashData(b));
        var actual = files.Select(f => Key(File.ReadAllBytes(f))).Order().ToList();
        Assert.Equal(expected.Select(Key).Order().ToList(), actual);
        Assert.Empty(Directory.GetFiles(Path.Combine(maildir, "tmp")));
    }
}
