// The build script: `dotnet run --project build -- <target>`. A plain console program rather than
// FAKE, because FAKE does not restore here (DESIGN §11). Every step shells out to the dotnet CLI
// with the repository root as working directory, so the targets behave the same wherever they are
// started from.

using System.Diagnostics;
using System.Xml;
using System.Xml.Linq;

namespace Pop3Functional.Build;

internal static class Program
{
    internal const string SolutionFile = "Pop3Functional.sln";

    // Test projects that are not test suites (they run for minutes and report no pass/fail).
    private static readonly string[] NotTestProjects = ["Pop3Functional.Benchmarks"];

    private static readonly (string Name, string Description)[] Targets =
    [
        ("test", "restore, build the solution once (Release), publish the native pop3 (AOT), run every test project, print a summary"),
        ("format", "check formatting: Fantomas for F#, dotnet format for C#; writes nothing"),
        ("bench", "end to end vs Dovecot, Courier, Cyrus (root, Linux, apt) into docs/bench/: bench [--runs N]; bench micro [args]: BenchmarkDotNet"),
        ("demo", "the product demo: pop3 fetch --simulate into DIR (default: a new temp dir); `demo core`: the core demo"),
        ("docs", "regenerate docs/state-machine.md from the core's transition table"),
        ("fuzz", "fuzz the core with afl-fuzz: fuzz [session|status|body|framer|all] [seconds] [-D]"),
        ("servers", "real POP3 servers for the interop tests (root, Linux, apt): servers start|stop [DIR]"),
        ("help", "show this list"),
    ];

    private static int Main(string[] args)
    {
        var target = args.Length > 0 ? args[0] : "help";
        var rest = args.Skip(1).ToArray();

        if (target is "help" or "-h" or "--help")
        {
            PrintUsage(Console.Out);
            return 0;
        }

        if (Targets.All(t => t.Name != target))
        {
            Console.Error.WriteLine($"Unknown target '{target}'.");
            PrintUsage(Console.Error);
            return 2;
        }

        var root = FindRepositoryRoot();
        return target switch
        {
            "test" => TestTarget.Run(root),
            "format" => Format(root),
            "bench" => BenchTarget.Run(root, rest),
            "demo" => Demo(root, rest),
            "docs" => Docs(root),
            "fuzz" => FuzzTarget.Run(root, rest),
            "servers" => RealServers.Command(root, rest),
            _ => throw new InvalidOperationException($"Target '{target}' has no implementation."),
        };
    }

    private static void PrintUsage(TextWriter writer)
    {
        writer.WriteLine("Usage: dotnet run --project build -- <target> [arguments]");
        writer.WriteLine();
        writer.WriteLine("Targets:");
        foreach (var (name, description) in Targets)
        {
            writer.WriteLine($"  {name,-8} {description}");
        }
    }

    /// <summary>
    /// The directory holding the solution file. Looks upwards from the current directory first (the
    /// usual case), then from the build program's own location, so `dotnet run --project` works
    /// from any directory of the clone.
    /// </summary>
    private static string FindRepositoryRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, SolutionFile)))
                {
                    return dir.FullName;
                }
            }
        }

        throw new InvalidOperationException($"No {SolutionFile} found above {Directory.GetCurrentDirectory()}.");
    }

    /// <summary>
    /// Checks formatting without changing anything, so it is safe while others edit the sources.
    /// Runs both checkers even when the first complains, so one run reports everything.
    /// </summary>
    private static int Format(string root)
    {
        var restored = Shell.Restore(root);
        if (restored != 0)
        {
            return restored;
        }

        var failed = false;

        // The files are listed rather than the folders, so generated sources under bin/ and obj/
        // stay out of the check whatever Fantomas's own folder rules become.
        var fsharpFiles = SourceFiles(root, ["src", "tests", "build"], [".fs", ".fsi", ".fsx"]);
        if (fsharpFiles.Count > 0)
        {
            Shell.Step("Fantomas check");
            // Exit codes: 0 all formatted, 99 some file needs formatting, 1 an error.
            var code = Shell.Run(root, "dotnet", ["fantomas", "check", .. fsharpFiles]);
            if (code != 0)
            {
                Console.WriteLine(code == 99
                    ? "F# sources need formatting (the files marked ! above)."
                    : $"Fantomas failed (exit code {code}).");
                failed = true;
            }
        }

        foreach (var project in Projects(root, ["src", "tests", "build"], ".csproj"))
        {
            Shell.Step($"dotnet format {project}");
            var code = Shell.Run(root, "dotnet", ["format", project, "--verify-no-changes"]);
            if (code != 0)
            {
                Console.WriteLine($"{project} needs formatting: run `dotnet format {project}`.");
                failed = true;
            }
        }

        Console.WriteLine(failed ? "Formatting check failed." : "Formatting check passed.");
        return failed ? 1 : 0;
    }

    /// <summary>
    /// `demo [DIR]`: the README's first command, `pop3 fetch --simulate`, into DIR or a new
    /// temporary directory, which is kept for a look (the path is printed). `demo core [ARGS]`:
    /// the scripted dialogue through the pure core (src/Pop3Functional.CoreDemo).
    /// </summary>
    private static int Demo(string root, string[] args)
    {
        if (args.Length > 0 && args[0] == "core")
        {
            return Shell.Run(root, "dotnet", ["run", "--project", "src/Pop3Functional.CoreDemo", "--", .. args.Skip(1)]);
        }

        if (args.Length > 1)
        {
            Console.Error.WriteLine("Usage: demo [DIR] | demo core [ARGS]");
            return 2;
        }

        var maildir = args.Length == 1
            ? Path.GetFullPath(args[0])
            : Path.Combine(Path.GetTempPath(), "pop3-demo-" + Guid.NewGuid().ToString("N")[..8], "mail");
        Console.WriteLine($"pop3 fetch --simulate {maildir}");
        var code = Shell.Run(root, "dotnet", ["run", "--project", "src/Pop3Functional.Cli", "--", "fetch", "--simulate", maildir]);
        if (code == 0)
        {
            Console.WriteLine($"The messages are in {maildir}/new; run the demo again with that directory to see a rerun store nothing.");
        }

        return code;
    }

    /// <summary>
    /// Rewrites the Mermaid block of docs/state-machine.md with the diagram the core generates
    /// from its transition table; a core test fails when the two disagree.
    /// </summary>
    private static int Docs(string root)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = root,
            RedirectStandardOutput = true,
        };
        foreach (var argument in new[] { "run", "--project", "src/Pop3Functional.CoreDemo", "--", "--state-diagram" })
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var diagram = process.StandardOutput.ReadToEnd().TrimEnd();
        process.WaitForExit();
        if (process.ExitCode != 0 || !diagram.StartsWith("stateDiagram", StringComparison.Ordinal))
        {
            Console.WriteLine($"The demo did not print a state diagram (exit code {process.ExitCode}).");
            return 1;
        }

        var page = Path.Combine(root, "docs", "state-machine.md");
        var text = File.ReadAllText(page);
        const string open = "```mermaid\n";
        var from = text.IndexOf(open, StringComparison.Ordinal);
        var to = from < 0 ? -1 : text.IndexOf("\n```", from + open.Length, StringComparison.Ordinal);
        if (to < 0)
        {
            Console.WriteLine($"{page} has no ```mermaid block to replace.");
            return 1;
        }

        File.WriteAllText(page, text[..(from + open.Length)] + diagram + text[to..]);
        Console.WriteLine($"Wrote the state diagram into {Path.GetRelativePath(root, page)}.");
        return 0;
    }

    /// <summary>Test projects: directories under tests/ named *.Tests that hold a project file.</summary>
    internal static IReadOnlyList<string> TestProjects(string root) =>
        Directory.EnumerateDirectories(Path.Combine(root, "tests"))
            .Where(dir => Path.GetFileName(dir).EndsWith(".Tests", StringComparison.Ordinal))
            .Where(dir => !NotTestProjects.Contains(Path.GetFileName(dir)))
            .Select(dir => Directory.EnumerateFiles(dir, "*.??proj").FirstOrDefault())
            .OfType<string>()
            .Order(StringComparer.Ordinal)
            .ToList();

    private static IEnumerable<string> Projects(string root, string[] folders, string extension) =>
        SourceFiles(root, folders, [extension]);

    /// <summary>Files with the given extensions below the folders, relative to the root, skipping build output.</summary>
    private static List<string> SourceFiles(string root, string[] folders, string[] extensions) =>
        folders
            .Select(folder => Path.Combine(root, folder))
            .Where(Directory.Exists)
            .SelectMany(folder => Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
            .Where(file => extensions.Contains(Path.GetExtension(file)))
            .Select(file => Path.GetRelativePath(root, file))
            .Where(file => !IsBuildOutput(file))
            .Order(StringComparer.Ordinal)
            .ToList();

    private static bool IsBuildOutput(string relativePath) =>
        relativePath.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj");
}

/// <summary>The `test` target: restore, build once, run each test project, summarise.</summary>
internal static class TestTarget
{
    /// <summary>The counts of one test project, read from its JUnit result file.</summary>
    private sealed record ProjectResult(string Name, int Passed, int Failed, int Skipped, IReadOnlyList<string> SkipReasons);

    public static int Run(string root)
    {
        var restored = Shell.Restore(root);
        if (restored != 0)
        {
            return restored;
        }

        Shell.Step($"dotnet build {Program.SolutionFile} -c Release");
        var built = Shell.Run(root, "dotnet", ["build", Program.SolutionFile, "-c", "Release"]);
        if (built != 0)
        {
            Console.WriteLine($"Build failed (exit code {built}); no tests run.");
            return built;
        }

        var resultsDir = Path.Combine(root, "artifacts", "test-results");
        Directory.CreateDirectory(resultsDir);

        var results = new List<ProjectResult>();
        var problems = new List<string>();
        var native = NativeCli.Publish(root, problems);
        foreach (var project in Program.TestProjects(root))
        {
            var name = Path.GetFileNameWithoutExtension(project);
            var (result, problem) = name == RealServers.TestProject
                ? RealServers.Around(root, problems, () => RunProject(root, project, resultsDir))
                : name == NativeCli.TestProject
                    ? NativeCli.Around(native, () => RunProject(root, project, resultsDir))
                    : RunProject(root, project, resultsDir);
            results.Add(result);
            if (problem is not null)
            {
                problems.Add(problem);
            }
        }

        if (results.Count == 0)
        {
            problems.Add("No test projects found under tests/.");
        }

        var (smoke, smokeProblem) = RunFuzzSmoke(root, resultsDir);
        results.Add(smoke);
        if (smokeProblem is not null)
        {
            problems.Add(smokeProblem);
        }

        return Summarise(results, problems);
    }

    /// <summary>
    /// Runs one test project and reads its result file. The console output streams straight
    /// through (CI logs show the failures); the counts come from the result file, because
    /// Expecto's console summary keeps ANSI colours even with --colours 0.
    /// </summary>
    private static (ProjectResult Result, string? Problem) RunProject(string root, string project, string resultsDir)
    {
        var name = Path.GetFileNameWithoutExtension(project);
        var resultFile = Path.Combine(resultsDir, name + ".xml");
        // A stale file from an earlier run must not pass for this run's results.
        File.Delete(resultFile);

        Shell.Step($"Running {name}");
        var stopwatch = Stopwatch.StartNew();
        var exitCode = Shell.Run(root, "dotnet",
            ["run", "--project", project, "-c", "Release", "--no-build", "--", .. RunnerArguments(project, resultFile)]);
        Console.WriteLine($"{name} finished in {stopwatch.Elapsed.TotalSeconds:0.0} s (exit code {exitCode}).");

        if (!File.Exists(resultFile))
        {
            return (new ProjectResult(name, 0, 0, 0, []), $"{name} wrote no result file (exit code {exitCode}).");
        }

        var result = ReadJUnit(name, resultFile);
        var problem = exitCode != 0 ? $"{name} exited with code {exitCode}." : null;
        return (result, problem);
    }

    /// <summary>
    /// The fuzz targets run in-process over every file of their seed corpora (DESIGN §12: CI runs
    /// a short smoke of each fuzz target); each corpus file counts as one test.
    /// </summary>
    private static (ProjectResult Result, string? Problem) RunFuzzSmoke(string root, string resultsDir)
    {
        const string name = "Pop3Functional.Fuzz (smoke)";
        var resultFile = Path.Combine(resultsDir, "Pop3Functional.Fuzz.smoke.xml");
        File.Delete(resultFile);

        Shell.Step($"Running {name}");
        var stopwatch = Stopwatch.StartNew();
        var exitCode = Shell.Run(root, "dotnet",
            [FuzzTarget.FuzzDll(root, FuzzTarget.ReleaseOutput), "--smoke-all", FuzzTarget.CorpusRoot(root), "--junit", resultFile]);
        Console.WriteLine($"{name} finished in {stopwatch.Elapsed.TotalSeconds:0.0} s (exit code {exitCode}).");

        if (!File.Exists(resultFile))
        {
            return (new ProjectResult(name, 0, 0, 0, []), $"{name} wrote no result file (exit code {exitCode}).");
        }

        var result = ReadJUnit(name, resultFile);
        return (result, exitCode != 0 ? $"{name} exited with code {exitCode}." : null);
    }

    /// <summary>
    /// The runner's own options for a colourless run that writes a JUnit file: Expecto for F#
    /// projects, the xUnit v3 in-process runner (the test executable itself) for C# projects.
    /// </summary>
    private static string[] RunnerArguments(string project, string resultFile) =>
        Path.GetExtension(project) switch
        {
            ".fsproj" => ["--colours", "0", "--no-spinner", "--junit-summary", resultFile],
            ".csproj" => ["-noColor", "-result-junit", resultFile],
            var other => throw new InvalidOperationException($"No test runner known for {other} projects ({project})."),
        };

    /// <summary>
    /// Counts the test cases of a JUnit file. Expecto and xUnit v3 both write one testcase per
    /// test, with a failure, error or skipped child when it did not pass.
    /// </summary>
    private static ProjectResult ReadJUnit(string name, string resultFile)
    {
        // Test names may hold control characters (a test about "\x16" in a server line), which
        // strict XML 1.0 forbids even as character references; read them anyway.
        var settings = new XmlReaderSettings { CheckCharacters = false };
        using var reader = XmlReader.Create(resultFile, settings);
        var testCases = XDocument.Load(reader).Descendants("testcase").ToList();
        var failed = testCases.Count(t => t.Element("failure") is not null || t.Element("error") is not null);
        var skipped = testCases.Where(t => t.Element("skipped") is not null).ToList();
        var passed = testCases.Count - failed - skipped.Count;
        var reasons = skipped
            .Select(t => $"{(string?)t.Attribute("name")}: {SkipMessage(t.Element("skipped")!)}")
            .ToList();
        return new ProjectResult(name, passed, failed, skipped.Count, reasons);
    }

    private static string SkipMessage(XElement skipped) =>
        (string?)skipped.Attribute("message") is { Length: > 0 } message ? message
        : skipped.Value is { Length: > 0 } text ? text.Trim()
        : "no reason given";

    /// <summary>
    /// Prints skips and problems first and the counts last, so the final line is always the
    /// totals; returns the exit code.
    /// </summary>
    private static int Summarise(List<ProjectResult> results, List<string> problems)
    {
        var skipReasons = results.SelectMany(r => r.SkipReasons.Select(reason => $"{r.Name}: {reason}")).ToList();
        if (skipReasons.Count > 0)
        {
            Console.WriteLine();
            Console.WriteLine("Skipped tests:");
            skipReasons.ForEach(reason => Console.WriteLine($"  {reason}"));
            // CI must not pass with tests that silently did not run (DESIGN §12).
            if (Environment.GetEnvironmentVariable("CI") == "true")
            {
                problems.Add($"CI=true and {skipReasons.Count} test(s) were skipped; every test must run in CI.");
            }
        }

        if (problems.Count > 0)
        {
            Console.WriteLine();
            problems.ForEach(problem => Console.WriteLine($"Problem: {problem}"));
        }

        Console.WriteLine();
        foreach (var r in results)
        {
            Console.WriteLine($"{r.Name}: {Counts(r.Passed, r.Failed, r.Skipped)}");
        }

        var failed = results.Sum(r => r.Failed);
        Console.WriteLine(Counts(results.Sum(r => r.Passed), failed, results.Sum(r => r.Skipped)));
        Console.Out.Flush();
        return failed > 0 || problems.Count > 0 ? 1 : 0;
    }

    private static string Counts(int passed, int failed, int skipped) =>
        skipped > 0 ? $"{passed} passed, {failed} failed, {skipped} skipped" : $"{passed} passed, {failed} failed";
}

/// <summary>
/// The native AOT build of the CLI (docs/cli.md, Installing), published into artifacts/native
/// before the tests run. The CLI tests run their process tests (and AotTests) against it through
/// POP3_CLI_NATIVE; without it those AotTests skip, which CI=true turns into a failure.
/// </summary>
internal static class NativeCli
{
    internal const string TestProject = "Pop3Functional.Cli.Tests";
    internal const string Variable = "POP3_CLI_NATIVE";

    /// <summary>Publishes the native pop3 (about 3 minutes); returns its path, or null (with a problem) when that failed.</summary>
    public static string? Publish(string root, List<string> problems)
    {
        var output = Path.Combine(root, "artifacts", "native");
        var rid = System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier;
        Shell.Step($"dotnet publish src/Pop3Functional.Cli -c Release -r {rid} -p:PublishAot=true -o artifacts/native");
        var stopwatch = Stopwatch.StartNew();
        var code = Shell.Run(root, "dotnet",
            ["publish", "src/Pop3Functional.Cli", "-c", "Release", "-r", rid, "-p:PublishAot=true", "-o", output]);
        Console.WriteLine($"The native publish finished in {stopwatch.Elapsed.TotalSeconds:0.0} s (exit code {code}).");
        var binary = Path.Combine(output, OperatingSystem.IsWindows() ? "pop3.exe" : "pop3");
        if (code != 0 || !File.Exists(binary))
        {
            problems.Add($"The native AOT publish of pop3 failed (exit code {code}); the CLI tests ran without it.");
            return null;
        }

        return binary;
    }

    /// <summary>Runs the CLI tests with POP3_CLI_NATIVE naming the binary (when there is one), then unsets it.</summary>
    public static T Around<T>(string? binary, Func<T> run)
    {
        if (binary is null)
        {
            return run();
        }

        Environment.SetEnvironmentVariable(Variable, binary);
        try
        {
            return run();
        }
        finally
        {
            Environment.SetEnvironmentVariable(Variable, null);
        }
    }
}

/// <summary>
/// The `fuzz` target: build the fuzz project (Release), copy its output to artifacts/fuzz/bin,
/// instrument the core there with the local sharpfuzz tool, and run afl-fuzz on each target for
/// the given time. The copy keeps the instrumented core away from the build output that the
/// `test` target's smoke run uses.
/// </summary>
internal static class FuzzTarget
{
    internal const string Project = "tests/Pop3Functional.Fuzz";
    internal static readonly string ReleaseOutput = Path.Combine(Project, "bin", "Release", "net10.0");
    private static readonly string[] FuzzTargets = ["session", "status", "body", "framer", "server"];

    internal static string FuzzDll(string root, string folder) => Path.Combine(root, folder, "Pop3Functional.Fuzz.dll");

    internal static string CorpusRoot(string root) => Path.Combine(root, Project, "corpus");

    public static int Run(string root, string[] args)
    {
        var deterministic = args.Contains("-D");
        var positional = args.Where(a => a != "-D").ToArray();
        var target = positional.Length > 0 ? positional[0] : "all";
        var seconds = 300;
        if (positional.Length > 1 && (!int.TryParse(positional[1], out seconds) || seconds <= 0))
        {
            Console.WriteLine($"'{positional[1]}' is not a number of seconds.");
            return 2;
        }

        if (positional.Length > 2 || (target != "all" && !FuzzTargets.Contains(target)))
        {
            Console.WriteLine($"Usage: fuzz [{string.Join('|', FuzzTargets)}|all] [seconds] [-D]");
            return 2;
        }

        var aflFuzz = FindOnPath("afl-fuzz");
        if (aflFuzz is null)
        {
            Console.WriteLine("afl-fuzz is not installed (it is not on PATH). Install afl++ first, for example");
            Console.WriteLine("`sudo apt-get install afl++` on Debian or Ubuntu, then run this target again.");
            return 1;
        }

        var restored = Shell.Restore(root);
        if (restored != 0)
        {
            return restored;
        }

        Shell.Step($"dotnet build {Project} -c Release");
        var built = Shell.Run(root, "dotnet", ["build", Project, "-c", "Release"]);
        if (built != 0)
        {
            Console.WriteLine($"Build failed (exit code {built}); nothing fuzzed.");
            return built;
        }

        var fuzzRoot = Path.Combine(root, "artifacts", "fuzz");
        var bin = Path.Combine(fuzzRoot, "bin");
        if (Directory.Exists(bin))
        {
            Directory.Delete(bin, recursive: true);
        }

        CopyDirectory(Path.Combine(root, ReleaseOutput), bin);

        // The client core and the simulator's server machine are the code under test.
        foreach (var assembly in new[] { "Pop3Functional.Core.dll", "Pop3Functional.Simulator.dll" })
        {
            Shell.Step($"sharpfuzz {assembly}");
            var instrumented = Shell.Run(root, "dotnet", ["sharpfuzz", Path.Combine(bin, assembly)]);
            if (instrumented != 0)
            {
                Console.WriteLine($"sharpfuzz failed on {assembly} (exit code {instrumented}).");
                return instrumented;
            }
        }

        var failed = false;
        foreach (var name in target == "all" ? FuzzTargets : [target])
        {
            failed |= RunAfl(root, aflFuzz, bin, Path.Combine(fuzzRoot, name), name, seconds, deterministic) != 0;
        }

        return failed ? 1 : 0;
    }

    private static int RunAfl(string root, string aflFuzz, string bin, string output, string name, int seconds, bool deterministic)
    {
        Shell.Step($"afl-fuzz {name} for {seconds} s{(deterministic ? " (with the deterministic stage)" : "")}");
        var startInfo = new ProcessStartInfo(aflFuzz) { WorkingDirectory = root, UseShellExecute = false };
        string[] arguments =
        [
            "-i", Path.Combine(CorpusRoot(root), name),
            "-o", output,
            "-x", Path.Combine(root, Project, "pop3.dict"),
            "-t", "5000",
            "-m", "none",
            "-V", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
            .. deterministic ? new[] { "-D" } : [],
            "--", "dotnet", FuzzDll(root, bin), name,
        ];
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        // afl++ refuses a managed program without this (DESIGN §12); the others let it run
        // unattended: no core_pattern or CPU governor demands, resume an earlier output folder,
        // and plain log lines instead of the full-screen UI when there is no terminal.
        startInfo.Environment["AFL_SKIP_BIN_CHECK"] = "1";
        startInfo.Environment["AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES"] = "1";
        startInfo.Environment["AFL_SKIP_CPUFREQ"] = "1";
        startInfo.Environment["AFL_AUTORESUME"] = "1";
        if (Console.IsOutputRedirected)
        {
            startInfo.Environment["AFL_NO_UI"] = "1";
        }

        Console.Out.Flush();
        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException("Could not start afl-fuzz.");
        process.WaitForExit();

        var crashes = CountFindings(Path.Combine(output, "default", "crashes"));
        var hangs = CountFindings(Path.Combine(output, "default", "hangs"));
        Console.WriteLine($"afl-fuzz {name}: exit code {process.ExitCode}, {crashes} crash(es), {hangs} hang(s); see {Path.GetRelativePath(root, output)}.");
        return process.ExitCode != 0 || crashes > 0 || hangs > 0 ? 1 : 0;
    }

    /// <summary>afl's findings in a folder, without its README.txt.</summary>
    private static int CountFindings(string folder) =>
        Directory.Exists(folder) ? Directory.EnumerateFiles(folder, "id:*").Count() : 0;

    private static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, program))
            .FirstOrDefault(File.Exists);

    private static void CopyDirectory(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target, overwrite: true);
        }
    }
}

/// <summary>
/// The real POP3 servers of the interop tests (build/scripts/pop3-servers.sh: Dovecot, Courier
/// and Cyrus on 127.0.0.1, docs/interop.md). They need root, Linux and apt; elsewhere the interop
/// tests skip, each naming the reason this class puts in POP3_INTEROP_NOT_RUN.
/// </summary>
internal static class RealServers
{
    internal const string TestProject = "Pop3Functional.Interop.Tests";
    private const string Script = "build/scripts/pop3-servers.sh";

    /// <summary>The servers' folder unless told otherwise; the interop tests use the same default.</summary>
    internal static string DefaultDir => Path.Combine(Path.GetTempPath(), "pop3functional-interop");

    /// <summary>`servers start|stop [DIR]`.</summary>
    public static int Command(string root, string[] args)
    {
        if (args.Length is < 1 or > 2 || args[0] is not ("start" or "stop"))
        {
            Console.WriteLine($"Usage: servers start|stop [DIR]   (DIR defaults to {DefaultDir})");
            return 2;
        }

        if (args[0] == "start" && WhyNot() is { } reason)
        {
            Console.WriteLine($"Cannot start the servers: {reason}.");
            return 1;
        }

        return RunScript(root, args[0], args.Length > 1 ? Path.GetFullPath(args[1]) : DefaultDir);
    }

    /// <summary>
    /// Runs the interop project between `start` and `stop` (stop always runs). When the servers
    /// cannot run here, the project runs anyway and its tests skip with the reason; when they
    /// should but do not start, that is a problem of the run.
    /// </summary>
    public static (T Result, string? Problem) Around<T>(string root, List<string> problems, Func<(T, string?)> run)
    {
        var dir = DefaultDir;
        if (WhyNot() is { } reason)
        {
            Environment.SetEnvironmentVariable("POP3_INTEROP_NOT_RUN", reason);
            return run();
        }

        try
        {
            var started = RunScript(root, "start", dir);
            if (started != 0)
            {
                problems.Add($"{Script} start {dir} failed (exit code {started}); the real-server tests did not run.");
                Environment.SetEnvironmentVariable("POP3_INTEROP_NOT_RUN", $"{Script} start failed with exit code {started} (see its output)");
            }
            else
            {
                Environment.SetEnvironmentVariable("POP3_INTEROP_DIR", dir);
            }

            return run();
        }
        finally
        {
            var stopped = RunScript(root, "stop", dir);
            if (stopped != 0)
            {
                problems.Add($"{Script} stop {dir} failed (exit code {stopped}); servers may still be running.");
            }
        }
    }

    /// <summary>Why the servers cannot run on this machine, or null when they can.</summary>
    internal static string? WhyNot()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "the real POP3 servers run on Linux only";
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return "not running as root (installing the Debian packages and running the servers needs root)";
        }

        var apt = (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, "apt-get")));
        return apt ? null : "no apt-get (the servers are Debian packages)";
    }

    private static int RunScript(string root, string command, string dir) => Shell.Script(root, Script, command, dir);
}

/// <summary>Running dotnet commands with the console passed straight through.</summary>
internal static class Shell
{
    /// <summary>
    /// Local tools first: on a fresh clone Paket itself is a local tool, and restoring packages
    /// before it is installed fails.
    /// </summary>
    public static int Restore(string root)
    {
        Step("dotnet tool restore");
        var code = Run(root, "dotnet", ["tool", "restore"]);
        if (code != 0)
        {
            Console.WriteLine($"dotnet tool restore failed (exit code {code}).");
            return code;
        }

        Step("dotnet paket restore");
        code = Run(root, "dotnet", ["paket", "restore"]);
        if (code != 0)
        {
            Console.WriteLine($"dotnet paket restore failed (exit code {code}).");
        }

        return code;
    }

    /// <summary>Runs one of the repository's server scripts (`SCRIPT start|stop DIR`) under a step header.</summary>
    public static int Script(string root, string script, string command, string dir)
    {
        Step($"{script} {command} {dir}");
        return Run(root, "bash", [Path.Combine(root, script), command, dir]);
    }

    /// <summary>A header line, so a CI log shows where each step starts.</summary>
    public static void Step(string title)
    {
        Console.WriteLine();
        Console.WriteLine($"==> {title}");
        Console.Out.Flush();
    }

    /// <summary>
    /// Runs a program and waits for it. Its output is not redirected, so it reaches the console
    /// (or the CI log) as it happens and in order with ours.
    /// </summary>
    public static int Run(string workingDirectory, string fileName, IEnumerable<string> arguments)
    {
        Console.Out.Flush();
        var startInfo = new ProcessStartInfo(fileName) { WorkingDirectory = workingDirectory, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo)
            ?? throw new InvalidOperationException($"Could not start {fileName}.");
        process.WaitForExit();
        return process.ExitCode;
    }
}
