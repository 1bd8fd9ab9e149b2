using System.Diagnostics;
using System.Runtime.InteropServices;
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
    public static Task<Run> RunAsync(IFileSystem? fileSystem, TextWriter? error, params string[] args) =>
        RunAsync(fileSystem, error, io => io, args);

    /// <summary>Runs a command in this process; <paramref name="configure"/> changes the console it gets (no terminal by default).</summary>
    public static async Task<Run> RunAsync(IFileSystem? fileSystem, TextWriter? error, Func<CliIo, CliIo> configure, params string[] args)
    {
        var output = new StringWriter();
        var errors = error ?? new StringWriter();
        var stdout = new MemoryStream();
        var io = configure(new CliIo(output, errors, () => stdout, Confirm: null, PromptPassword: null, Terminal: null));
        var code = await Cli.RunAsync(args, io, TestContext.Current.CancellationToken, fileSystem);
        var text = output.ToString() + Encoding.UTF8.GetString(stdout.ToArray());
        return new Run(code, text, errors.ToString() ?? "");
    }

    public static Task<Run> RunAsync(Func<CliIo, CliIo> configure, params string[] args) => RunAsync(null, null, configure, args);

    public static Task<Run> RunAsync(params string[] args) => RunAsync(null, null, args);
}

/// <summary>
/// The built <c>pop3</c> program as a process of its own: the native AOT binary that
/// <c>POP3_CLI_NATIVE</c> names (the build's <c>test</c> target publishes it into artifacts/native
/// and sets the variable), otherwise pop3.dll (copied next to this assembly) under the dotnet host.
/// </summary>
internal static class Pop3Process
{
    public const int SigInt = 2;
    public const int SigTerm = 15;

    /// <summary>The variable naming the native pop3 binary the process tests run instead of pop3.dll.</summary>
    public const string NativeVariable = "POP3_CLI_NATIVE";

    /// <summary>Signals can be sent (Linux, macOS: SIGINT 2 and SIGTERM 15 on both).</summary>
    public static bool CanSignal => OperatingSystem.IsLinux() || OperatingSystem.IsMacOS();

    /// <summary>The native binary <see cref="NativeVariable"/> names, or null when it is unset or empty.</summary>
    public static string? NativeProgram =>
        Environment.GetEnvironmentVariable(NativeVariable) is { Length: > 0 } path ? Path.GetFullPath(path) : null;

    /// <summary>Which program the process tests run, for their messages.</summary>
    public static string Form => NativeProgram is { } native ? $"the native binary {native}" : "pop3.dll under dotnet";

    /// <summary>Starts pop3 with every standard stream redirected: the native binary when one is named, else pop3.dll under the same dotnet host as this test.</summary>
    public static Process Start(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        ProcessStartInfo start;
        if (NativeProgram is { } native)
        {
            Assert.True(File.Exists(native), $"{NativeVariable}={native}: no such file (publish it: dotnet publish src/Pop3Functional.Cli -c Release -r <rid> -p:PublishAot=true -o artifacts/native)");
            start = new ProcessStartInfo(native);
        }
        else
        {
            var program = Path.Combine(AppContext.BaseDirectory, "pop3.dll");
            Assert.True(File.Exists(program), $"{program} is missing: the test project references the CLI project");
            start = new ProcessStartInfo(DotnetHost());
            start.ArgumentList.Add(program);
        }

        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.RedirectStandardInput = true;
        start.UseShellExecute = false;
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        return Process.Start(start) ?? throw new InvalidOperationException("pop3 did not start");
    }

    /// <summary>Runs pop3 to its end with <paramref name="input"/> on standard input (then closed).</summary>
    public static async Task<Run> RunAsync(
        string[] args, IReadOnlyDictionary<string, string>? environment, string? input, TimeSpan timeout, CancellationToken cancel)
    {
        using var process = Start(args, environment);
        if (input is not null)
        {
            await process.StandardInput.WriteAsync(input);
        }

        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(cancel);
        var stderr = process.StandardError.ReadToEndAsync(cancel);
        await WaitForExitAsync(process, timeout, $"pop3 {string.Join(' ', args)}", cancel);
        return new Run(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Waits for the process to end; kills it and fails when it takes longer than <paramref name="timeout"/>.</summary>
    public static async Task WaitForExitAsync(Process process, TimeSpan timeout, string what, CancellationToken cancel)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        limit.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(cancel);
            Assert.Fail($"{what} did not finish within {timeout}");
        }
    }

    /// <summary>Sends a POSIX signal (kill(2)).</summary>
    public static void Signal(Process process, int signal)
    {
        Assert.True(CanSignal, "signals are sent on Linux and macOS only");
        Assert.True(Native.kill(process.Id, signal) == 0, $"kill({process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    public static string DotnetHost()
    {
        var name = OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }

        if (Path.GetFileName(Environment.ProcessPath) is { } self && self.Equals(name, StringComparison.OrdinalIgnoreCase))
        {
            return Environment.ProcessPath!;
        }

        // <root>/shared/Microsoft.NETCore.App/<version>/ is where this runtime lives.
        var root = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var candidate = Path.Combine(root, name);
        return File.Exists(candidate) ? candidate : name;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; fails after <paramref name="timeout"/>.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < timeout, $"{what}: not within {timeout}");
            await Task.Delay(10, cancel);
        }
    }

    private static class Native
    {
        [DllImport("libc", SetLastError = true)]
        public static extern int kill(int pid, int sig);
    }
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
