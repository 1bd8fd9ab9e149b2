using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Pop3Functional.Build;

/// <summary>
/// The `bench` target (issue #7): real servers on this machine, the end-to-end benchmarks against
/// Dovecot (ours, MailKit and the raw reader; plain and implicit TLS; sets A, B and C) and the
/// lock-step latency against Dovecot, Courier and Cyrus, written to <see cref="ResultFile"/>.
/// `bench micro [arguments]` runs the BenchmarkDotNet micro-benchmarks of the core instead.
/// </summary>
internal static class BenchTarget
{
    private const string Project = "tests/Pop3Functional.Benchmarks";
    private const string DovecotScript = "build/scripts/dovecot-bench.sh";
    private const string ServersScript = "build/scripts/pop3-servers.sh";
    private const string ResultFile = "docs/bench/dovecot-e2e.md";

    /// <summary>dovecot-bench.sh's listeners and accounts (bencha, benchb, benchc).</summary>
    private static readonly string[] Against = ["--against", "127.0.0.1:10110:10995", "bench", "bench"];

    /// <summary>Other work above this share of the machine makes the figures noisy enough to say so.</summary>
    private const double NoisyShare = 0.10;

    private static string BenchmarkDll(string root) =>
        Path.Combine(root, Project, "bin", "Release", "net10.0", "Pop3Functional.Benchmarks.dll");

    public static int Run(string root, string[] args)
    {
        if (args is ["micro", .. var micro])
        {
            return Shell.Run(root, "dotnet", ["run", "-c", "Release", "--project", Project, "--", .. micro]);
        }

        var runs = 5;
        if (args is not ([] or ["--runs", _]) || (args.Length == 2 && (!int.TryParse(args[1], out runs) || runs < 1)))
        {
            Console.WriteLine("Usage: bench [--runs N]   end-to-end against real servers (root, Linux, apt), N samples per client (5)");
            Console.WriteLine("       bench micro [BenchmarkDotNet arguments]   the core's micro-benchmarks, e.g. bench micro --filter '*'");
            return 2;
        }

        if (RealServers.WhyNot() is { } reason)
        {
            Console.WriteLine($"Cannot run the end-to-end benchmarks: {reason}.");
            Console.WriteLine($"They start Dovecot, Courier and Cyrus on this machine ({DovecotScript}, {ServersScript}); nothing was measured");
            Console.WriteLine($"and {ResultFile} is unchanged. `bench micro` runs the core's micro-benchmarks, which need no server.");
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
            Console.WriteLine($"Build failed (exit code {built}); nothing measured.");
            return built;
        }

        var started = DateTime.UtcNow;
        Shell.Step("Other load before the run (3 s, nothing of ours running)");
        var before = Load.Quiet();
        Console.WriteLine($"{before:P0} of the machine busy.");

        var dir = Path.Combine(Path.GetTempPath(), "pop3functional-bench");
        var dovecotDir = Path.Combine(dir, "dovecot");
        var serversDir = Path.Combine(dir, "servers");
        var problems = new List<string>();
        string? e2e = null;
        string? latency = null;
        string? servers = null;
        double? during = null;
        try
        {
            if (Shell.Script(root, DovecotScript, "start", dovecotDir) != 0)
            {
                problems.Add($"{DovecotScript} start {dovecotDir} failed (its output is above).");
            }
            else if (Shell.Script(root, ServersScript, "start", serversDir) != 0)
            {
                problems.Add($"{ServersScript} start {serversDir} failed (its output is above).");
            }
            else
            {
                servers = ServerVersions(serversDir);
                var load = Load.Start(ServerPids(dovecotDir, serversDir));
                Shell.Step($"End to end against Dovecot: {runs} samples per client and set");
                e2e = Capture(root, [BenchmarkDll(root), "--e2e", .. Against, "--runs", runs.ToString(CultureInfo.InvariantCulture)], problems);
                Shell.Step("Lock-step latency against Dovecot, Courier and Cyrus");
                latency = Capture(root, [BenchmarkDll(root), "--latency", Path.Combine(serversDir, "servers.env")], problems);
                during = load.OthersShare();
            }
        }
        finally
        {
            if (Shell.Script(root, ServersScript, "stop", serversDir) != 0)
            {
                problems.Add($"{ServersScript} stop {serversDir} failed; servers may still be running.");
            }

            if (Shell.Script(root, DovecotScript, "stop", dovecotDir) != 0)
            {
                problems.Add($"{DovecotScript} stop {dovecotDir} failed; Dovecot may still be running.");
            }
        }

        if (e2e is null || latency is null || problems.Count > 0)
        {
            problems.ForEach(problem => Console.WriteLine($"Problem: {problem}"));
            Console.WriteLine($"Nothing written to {ResultFile}.");
            return 1;
        }

        Shell.Step("Other load after the run (3 s, nothing of ours running)");
        var after = Load.Quiet();
        Console.WriteLine($"{after:P0} of the machine busy.");

        var page = Report(started, runs, servers!, before, during!.Value, after, e2e, latency);
        var path = Path.Combine(root, ResultFile);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, page);
        Console.WriteLine();
        Console.WriteLine($"Wrote {ResultFile}.");
        return 0;
    }

    /// <summary>
    /// Runs the benchmark program with its standard output (Markdown) echoed and kept; its
    /// progress on standard error goes straight to the console. Null if it failed.
    /// </summary>
    private static string? Capture(string root, string[] arguments, List<string> problems)
    {
        Console.Out.Flush();
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = root, RedirectStandardOutput = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start dotnet.");
        var output = new StringBuilder();
        while (process.StandardOutput.ReadLine() is { } line)
        {
            Console.WriteLine(line);
            output.Append(line).Append('\n');
        }

        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            problems.Add($"The benchmark ({string.Join(' ', arguments.Skip(1))}) exited with code {process.ExitCode}.");
            return null;
        }

        return output.ToString();
    }

    private static string Report(
        DateTime started, int runs, string servers, double before, double during, double after, string e2e, string latency)
    {
        var page = new StringBuilder();
        page.Append("# End-to-end benchmarks: Dovecot, Courier, Cyrus\n\n");
        page.Append("Written by `dotnet run --project build -- bench");
        page.Append(runs == 5 ? "" : $" --runs {runs}");
        page.Append($"` (issue #7), started {started:yyyy-MM-dd HH:mm} UTC. docs/benchmarks.md says what is measured and how.\n\n");
        page.Append($"- Machine: {Environment.ProcessorCount} cores ({CpuModel()}), {MemoryGiB()} GiB, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}, Release.\n");
        page.Append($"- Servers on the same machine, over loopback (client and server share the cores): {servers}.\n");
        page.Append(CultureInfo.InvariantCulture, $"- Other work on the machine: {before:P0} busy in the 3 s before the run, {during:P0} during it (all CPU time less ours and the servers'), {after:P0} in the 3 s after it.\n\n");
        if (Math.Max(before, Math.Max(during, after)) > NoisyShare)
        {
            page.Append("**Other work ran on this machine during this run, so these figures are noisy.** The clients of one table ran interleaved, so their ratios\n");
            page.Append("suffer less than the bare MB/s; re-run on a quiet machine before quoting figures.\n\n");
        }

        page.Append(e2e).Append(latency);
        return page.ToString();
    }

    /// <summary>The server versions: Dovecot's own, and the two packages unpacked from their .deb.</summary>
    private static string ServerVersions(string serversDir)
    {
        var start = new ProcessStartInfo("/usr/sbin/dovecot", "--version") { RedirectStandardOutput = true };
        using var process = Process.Start(start)!;
        var dovecot = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        // The .deb files are named package_version_architecture.deb.
        var unpacked = Directory.EnumerateFiles(Path.Combine(serversDir, "debs"), "*.deb")
            .Select(file => Path.GetFileNameWithoutExtension(file).Split('_'))
            .Where(parts => parts.Length == 3)
            .Select(parts => $"{parts[0]} {parts[1]}")
            .Order(StringComparer.Ordinal);
        return $"Dovecot {dovecot} ({DovecotScript} for the throughput, {ServersScript} for the latency), {string.Join(", ", unpacked)} ({ServersScript})";
    }

    /// <summary>The servers' long-lived processes: Dovecot masters, the Courier and Cyrus daemons.</summary>
    private static List<int> ServerPids(string dovecotDir, string serversDir)
    {
        var pids = new List<int>();
        if (int.TryParse(File.ReadAllText(Path.Combine(dovecotDir, "dovecot.pid")).Trim(), out var master))
        {
            pids.Add(master);
        }

        // pop3-servers.sh records "NAME PID" lines.
        foreach (var line in File.ReadAllLines(Path.Combine(serversDir, "pids")))
        {
            if (line.Split(' ') is [_, var pid] && int.TryParse(pid, out var id))
            {
                pids.Add(id);
            }
        }

        return pids;
    }

    private static string CpuModel() =>
        File.ReadLines("/proc/cpuinfo")
            .FirstOrDefault(line => line.StartsWith("model name", StringComparison.Ordinal))?
            .Split(':', 2)[1].Trim() ?? "unknown CPU";

    private static string MemoryGiB()
    {
        var total = File.ReadLines("/proc/meminfo").First(line => line.StartsWith("MemTotal:", StringComparison.Ordinal));
        var kib = long.Parse(total.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        return (kib / 1024.0 / 1024.0).ToString("0", CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// How busy the machine is with work other than this benchmark, from /proc: the machine's busy
    /// time less the CPU time of our child processes (the benchmark and its client processes, once
    /// reaped) and of the servers' long-lived processes with their reaped children.
    /// </summary>
    private sealed class Load
    {
        private readonly List<int> servers;
        private readonly (long Busy, long Total) machine;
        private readonly long ours;

        private Load(List<int> servers)
        {
            this.servers = servers;
            machine = Machine();
            ours = Ours(servers);
        }

        public static Load Start(List<int> servers) => new(servers);

        /// <summary>The share of the machine busy for 3 s while nothing of ours runs.</summary>
        public static double Quiet()
        {
            var (busy, total) = Machine();
            Thread.Sleep(3000);
            var (busyAfter, totalAfter) = Machine();
            return (double)(busyAfter - busy) / (totalAfter - total);
        }

        /// <summary>The share of the machine that others used since <see cref="Start"/>.</summary>
        public double OthersShare()
        {
            var (busy, total) = Machine();
            var others = busy - machine.Busy - (Ours(servers) - ours);
            return Math.Max(0, (double)others / (total - machine.Total));
        }

        /// <summary>Busy and total time of all cores, in clock ticks (the first line of /proc/stat).</summary>
        private static (long Busy, long Total) Machine()
        {
            var ticks = File.ReadLines("/proc/stat").First()
                .Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
                .Select(field => long.Parse(field, CultureInfo.InvariantCulture)).ToArray();
            // user nice system idle iowait irq softirq steal (guest time is already in user).
            var total = ticks.Take(8).Sum();
            return (total - ticks[3] - ticks[4], total);
        }

        /// <summary>Our reaped children's CPU time, plus each server process's own and its reaped children's.</summary>
        private static long Ours(List<int> servers) =>
            Times("/proc/self/stat", own: false) + servers.Sum(pid => Times($"/proc/{pid}/stat", own: true));

        /// <summary>utime+stime (own) and cutime+cstime of one process; 0 once it is gone.</summary>
        private static long Times(string path, bool own)
        {
            string text;
            try
            {
                text = File.ReadAllText(path);
            }
            catch (IOException)
            {
                return 0;
            }

            // The fields after the command name, which is in parentheses and may hold spaces:
            // utime, stime, cutime and cstime are fields 14 to 17 of proc(5), here 11 to 14.
            var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
            var times = fields[11..15].Select(field => long.Parse(field, CultureInfo.InvariantCulture)).ToArray();
            return (own ? times[0] + times[1] : 0) + times[2] + times[3];
        }
    }
}
