using System.Globalization;
using System.Text.Json.Nodes;
using LanguageExt;
using LanguageExt.Common;
using Pop3Functional.Simulator;
using Spectre.Console;

namespace Pop3Functional.Cli;

// Inside the namespace: these win over LanguageExt's types of the same names.
using System.CommandLine;

/// <summary>The <c>pop3</c> command line: every command, its options and its output (docs/cli.md).</summary>
internal sealed class Cli
{
    private readonly CliIo io;
    private readonly IFileSystem fileSystem;
    private readonly Option<bool> json = new("--json") { Description = "Machine-readable output: one JSON document", Recursive = true };
    private readonly Option<bool> verbose = new("--verbose", "-v") { Description = "Log the protocol dialogue to standard error (secrets redacted)", Recursive = true };
    private readonly Option<bool> veryVerbose = new("-vv") { Description = "As -v, with octet counts", Recursive = true };

    public Cli(CliIo io, IFileSystem fileSystem)
    {
        this.io = io;
        this.fileSystem = fileSystem;
    }

    /// <summary>Parses and runs one command line; returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, CliIo io, CancellationToken stop, IFileSystem? fileSystem = null)
    {
        var root = new Cli(io, fileSystem ?? PhysicalFileSystem.Instance).Root();
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            if (args.Contains("--json", StringComparer.Ordinal))
            {
                // --json promises one JSON document whatever happens, a wrong command line included.
                var message = string.Join("; ", parse.Errors.Select(e => e.Message));
                io.Json(new JsonObject { ["error"] = CliIo.ErrorJson("usage", ExitCodes.Usage, message) });
            }

            foreach (var error in parse.Errors)
            {
                io.Error.WriteLine($"pop3: {error.Message}");
            }

            io.Error.WriteLine("pop3: see pop3 --help");
            return ExitCodes.Usage;
        }

        // Ctrl+C is handled by Program (the first stops a fetch after the current message), not here.
        var configuration = new InvocationConfiguration { Output = io.Out, Error = io.Error, ProcessTerminationTimeout = null };
        return await parse.InvokeAsync(configuration, stop);
    }

    private RootCommand Root()
    {
        var root = new RootCommand("pop3: fetch a POP3 mailbox into a Maildir without ever losing or duplicating a message, and talk POP3 by hand.");
        root.Options.Add(json);
        root.Options.Add(verbose);
        root.Options.Add(veryVerbose);
        root.Subcommands.Add(Fetch());
        root.Subcommands.Add(Simple("stat", "The number of messages and their total size (STAT)", StatAsync));
        root.Subcommands.Add(Simple("list", "Every message's number and size (LIST)", ListAsync));
        root.Subcommands.Add(Simple("uidl", "Every message's number and unique id (UIDL)", UidlAsync));
        root.Subcommands.Add(Capa());
        root.Subcommands.Add(Retr());
        root.Subcommands.Add(Top());
        root.Subcommands.Add(Dele());
        root.Subcommands.Add(Simulate());
        return root;
    }

    private int Verbosity(ParseResult parse) => parse.GetValue(veryVerbose) ? 2 : parse.GetValue(verbose) ? 1 : 0;

    /// <summary>Connects, runs <paramref name="body"/>, QUITs; prints with <paramref name="print"/>.</summary>
    private async Task<int> ClientAsync<T>(
        ParseResult parse, ConnectionOptions options, bool login, Func<Pop3Session, CancellationToken, Task<Fin<T>>> body, Func<T, int> print, CancellationToken stop)
    {
        var asJson = parse.GetValue(json);
        var resolved = options.Resolve(parse, io, Verbosity(parse), login);
        if (resolved.IsLeft)
        {
            return io.Fail((CliFailure)resolved, asJson);
        }

        var connection = (Connection)resolved;
        var result = await connection.Builder.RunAsync(session => body(session, stop), stop);
        return result.Match(print, error => io.Fail(CliFailure.FromPop3(error, connection.Check.Problem), asJson));
    }

    private Command Simple(string name, string description, Func<ParseResult, ConnectionOptions, CancellationToken, Task<int>> handler)
    {
        var command = new Command(name, description);
        var options = new ConnectionOptions();
        options.AddTo(command);
        command.SetAction((parse, stop) => handler(parse, options, stop));
        return command;
    }

    private Task<int> StatAsync(ParseResult parse, ConnectionOptions options, CancellationToken stop) =>
        ClientAsync(parse, options, true, (s, ct) => s.StatAsync(ct), stat =>
        {
            if (parse.GetValue(json))
            {
                io.Json(new JsonObject { ["messages"] = stat.Count, ["octets"] = stat.Octets });
            }
            else
            {
                io.Out.WriteLine($"{stat.Count} message(s), {stat.Octets} octets");
            }

            return ExitCodes.Ok;
        }, stop);

    private Task<int> ListAsync(ParseResult parse, ConnectionOptions options, CancellationToken stop) =>
        ClientAsync(parse, options, true, (s, ct) => s.ListAsync(ct), entries =>
        {
            if (parse.GetValue(json))
            {
                io.Json(new JsonObject { ["messages"] = new JsonArray([.. entries.Select(e => new JsonObject { ["number"] = e.Number, ["octets"] = e.Octets })]) });
            }
            else
            {
                foreach (var e in entries)
                {
                    io.Out.WriteLine($"{e.Number} {e.Octets}");
                }
            }

            return ExitCodes.Ok;
        }, stop);

    private Task<int> UidlAsync(ParseResult parse, ConnectionOptions options, CancellationToken stop) =>
        ClientAsync(parse, options, true, (s, ct) => s.UidlAsync(ct), entries =>
        {
            if (parse.GetValue(json))
            {
                io.Json(new JsonObject { ["messages"] = new JsonArray([.. entries.Select(e => new JsonObject { ["number"] = e.Number, ["uid"] = e.Uid.Value })]) });
            }
            else
            {
                foreach (var e in entries)
                {
                    io.Out.WriteLine($"{e.Number} {e.Uid.Value}");
                }
            }

            return ExitCodes.Ok;
        }, stop);

    private Command Capa()
    {
        var command = new Command("capa", "The server's greeting and capabilities (CAPA), without logging in");
        var options = new ConnectionOptions();
        options.AddTo(command);
        command.SetAction((parse, stop) => ClientAsync(
            parse,
            options,
            false,
            (s, _) => Task.FromResult(Fin<ServerGreeting>.Succ(s.Greeting)),
            greeting =>
            {
                if (parse.GetValue(json))
                {
                    io.Json(new JsonObject
                    {
                        ["greeting"] = greeting.Text,
                        ["tls"] = greeting.TlsActive,
                        ["apop"] = greeting.ApopAvailable,
                        ["capaSupported"] = greeting.CapaSupported,
                        ["capabilities"] = new JsonArray([.. greeting.Capabilities.Lines.Select(line => JsonValue.Create(line))]),
                    });
                }
                else
                {
                    io.Out.WriteLine($"greeting: {Printable(greeting.Text)}");
                    io.Out.WriteLine($"tls: {(greeting.TlsActive ? "yes" : "no")}, apop: {(greeting.ApopAvailable ? "offered" : "no")}");
                    io.Out.WriteLine(greeting.CapaSupported ? "capabilities:" : "capabilities: none (the server answered CAPA with -ERR)");
                    foreach (var line in greeting.Capabilities.Lines)
                    {
                        io.Out.WriteLine($"  {Printable(line)}");
                    }
                }

                return ExitCodes.Ok;
            },
            stop));
        return command;
    }

    // Server text is data (DESIGN §6): control characters are shown escaped, never sent to the terminal.
    private static string Printable(string text) =>
        string.Concat(text.Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString()));

    private Command Retr()
    {
        var command = new Command("retr", "One message, exactly as the server sends it (CRLF line ends), to standard output or a file");
        var number = new Argument<ulong>("N") { Description = "The message number" };
        var output = new Option<string?>("--output", "-o") { Description = "Write the message to this file instead" };
        command.Arguments.Add(number);
        command.Options.Add(output);
        var options = new ConnectionOptions();
        options.AddTo(command);
        command.SetAction((parse, stop) => ToOutputAsync(parse, options, parse.GetValue(output), (s, sink, ct) => s.RetrieveAsync(parse.GetValue(number), sink, ct), stop));
        return command;
    }

    private Command Top()
    {
        var command = new Command("top", "A message's header and its first LINES body lines (TOP)");
        var number = new Argument<ulong>("N") { Description = "The message number" };
        var lines = new Argument<ulong>("LINES") { Description = "Body lines after the header" };
        var output = new Option<string?>("--output", "-o") { Description = "Write to this file instead" };
        command.Arguments.Add(number);
        command.Arguments.Add(lines);
        command.Options.Add(output);
        var options = new ConnectionOptions();
        options.AddTo(command);
        command.SetAction((parse, stop) => ToOutputAsync(
            parse, options, parse.GetValue(output), (s, sink, ct) => s.TopAsync(parse.GetValue(number), parse.GetValue(lines), sink, ct), stop));
        return command;
    }

    private async Task<int> ToOutputAsync(
        ParseResult parse,
        ConnectionOptions options,
        string? path,
        Func<Pop3Session, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>, CancellationToken, Task<Fin<Retrieval>>> retrieve,
        CancellationToken stop)
    {
        var asJson = parse.GetValue(json);
        Stream destination;
        var captured = new MemoryStream();
        try
        {
            destination = path is not null ? new FileStream(path, FileMode.Create, FileAccess.Write) : asJson ? captured : io.OpenStandardOutput();
        }
        catch (Exception e) when (CliFailure.FromLocal(e, path ?? "standard output") is { } local)
        {
            return io.Fail(local, asJson);
        }

        try
        {
            await using (destination)
            {
                return await ClientAsync(
                    parse,
                    options,
                    true,
                    (s, ct) => retrieve(s, (bytes, token) => destination.WriteAsync(bytes, token), ct),
                    retrieval =>
                    {
                        if (asJson)
                        {
                            io.Json(new JsonObject
                            {
                                ["message"] = retrieval.Message,
                                ["octets"] = retrieval.Octets,
                                ["output"] = path,
                                ["base64"] = path is null ? Convert.ToBase64String(captured.ToArray()) : null,
                            });
                        }

                        return ExitCodes.Ok;
                    },
                    stop);
            }
        }
        catch (Exception e) when (CliFailure.FromLocal(e, path ?? "standard output") is { } local)
        {
            return io.Fail(local, asJson);
        }
    }

    private Command Dele()
    {
        var command = new Command("dele", "Delete messages (DELE, committed by QUIT); asks first unless --yes");
        var numbers = new Argument<ulong[]>("N") { Description = "The message numbers", Arity = ArgumentArity.OneOrMore };
        var yes = new Option<bool>("--yes", "-y") { Description = "Do not ask for confirmation" };
        command.Arguments.Add(numbers);
        command.Options.Add(yes);
        var options = new ConnectionOptions();
        options.AddTo(command);
        command.SetAction((parse, stop) =>
        {
            var asJson = parse.GetValue(json);
            var chosen = parse.GetValue(numbers) ?? [];
            if (!parse.GetValue(yes))
            {
                if (io.Confirm is null)
                {
                    return Task.FromResult(io.Fail(CliFailure.Usage("dele asks for confirmation, and standard input is not a terminal: add --yes"), asJson));
                }

                if (!io.Confirm($"Delete message(s) {string.Join(", ", chosen)} from the server?"))
                {
                    io.Error.WriteLine("pop3: nothing deleted");
                    return Task.FromResult(ExitCodes.Ok);
                }
            }

            return ClientAsync(
                parse,
                options,
                true,
                async (s, ct) =>
                {
                    foreach (var n in chosen)
                    {
                        var deleted = await s.DeleteAsync(n, ct);
                        if (deleted.IsFail)
                        {
                            return Fin<QuitResult>.Fail((Error)deleted);
                        }
                    }

                    return await s.QuitAsync(ct);
                },
                quit =>
                {
                    var committed = quit.DeletionsCommitted.ToArray();
                    if (asJson)
                    {
                        io.Json(new JsonObject { ["deleted"] = new JsonArray([.. committed.Select(n => JsonValue.Create(n))]), ["updateCompleted"] = quit.UpdateCompleted });
                    }
                    else
                    {
                        io.Out.WriteLine(quit.UpdateCompleted
                            ? $"deleted {committed.Length} message(s): {string.Join(", ", committed)}"
                            : "the server did not confirm the deletions at QUIT: they may not have taken effect");
                    }

                    return quit.UpdateCompleted ? ExitCodes.Ok : ExitCodes.Failure;
                },
                stop);
        });
        return command;
    }

    private Command Fetch()
    {
        var command = new Command("fetch", "Download new messages into a Maildir, durably: never lost, never stored twice");
        var maildir = new Argument<string>("MAILDIR") { Description = "The Maildir (created when missing)", DefaultValueFactory = _ => "./mail" };
        var simulate = new Option<bool>("--simulate") { Description = "Fetch from a simulator started in this process (a generated mailbox of 300 messages, the same every run)" };
        var delete = new Option<bool>("--delete") { Description = "Delete each message from the server once it is stored durably (default: keep)" };
        var maxMessages = new Option<int?>("--max-messages") { Description = "Store at most this many new messages this run" };
        var maxSize = new Option<long?>("--max-size") { Description = "Skip (and name) messages larger than this many octets" };
        var top = new Option<ulong?>("--top") { Description = "Store only the header and the first N body lines (TOP); recorded apart from full fetches" };
        var group = new Option<int>("--group-size") { Description = "Messages made durable together (one directory fsync and one state write per group)", DefaultValueFactory = _ => 64 };
        command.Arguments.Add(maildir);
        foreach (var option in new Option[] { simulate, delete, maxMessages, maxSize, top, group })
        {
            command.Options.Add(option);
        }

        var options = new ConnectionOptions();
        options.AddTo(command);
        command.SetAction(async (parse, stop) =>
        {
            var asJson = parse.GetValue(json);
            if (parse.GetValue(maxMessages) is < 0 || parse.GetValue(maxSize) is < 0 || parse.GetValue(group) < 1)
            {
                return io.Fail(CliFailure.Usage("--max-messages and --max-size must not be negative, --group-size must be at least 1"), asJson);
            }

            if (parse.GetValue(top) is not null && parse.GetValue(delete))
            {
                return io.Fail(CliFailure.Usage("--top stores only part of each message: it cannot be combined with --delete"), asJson);
            }

            Pop3Simulator? simulator = null;
            try
            {
                Connection connection;
                if (parse.GetValue(simulate))
                {
                    if (parse.GetValue(options.Host) is not null || parse.GetValue(options.User) is not null)
                    {
                        return io.Fail(CliFailure.Usage("--simulate fetches from its own simulator: no --host or --user"), asJson);
                    }

                    simulator = await Simulation.StartAsync(SimulatorOptions.Default, Simulation.DefaultSeed, Simulation.DefaultMessages, stop);
                    connection = Simulation.Client(simulator);
                    var level = Verbosity(parse);
                    if (level > 0)
                    {
                        connection = connection with { Builder = connection.Builder.WithDebugLevel(level, io.Error) };
                    }
                }
                else
                {
                    var resolved = options.Resolve(parse, io, Verbosity(parse), true);
                    if (resolved.IsLeft)
                    {
                        return io.Fail((CliFailure)resolved, asJson);
                    }

                    connection = (Connection)resolved;
                }

                var settings = new FetchSettings(
                    Path.GetFullPath(parse.GetValue(maildir) ?? "./mail"),
                    connection.StateKey,
                    parse.GetValue(delete),
                    parse.GetValue(maxMessages),
                    parse.GetValue(maxSize),
                    parse.GetValue(top),
                    parse.GetValue(group));
                return await FetchAsync(connection, settings, parse.GetValue(maildir) ?? "./mail", asJson, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return io.Fail(new CliFailure(ExitCodes.Interrupted, "interrupted", "interrupted before anything was fetched"), asJson);
            }
            finally
            {
                if (simulator is not null)
                {
                    await simulator.DisposeAsync();
                }
            }
        });
        return command;
    }

    private async Task<int> FetchAsync(Connection connection, FetchSettings settings, string shownPath, bool asJson, CancellationToken stop)
    {
        var opened = await connection.Builder.OpenAsync(stop);
        if (opened.IsFail)
        {
            return io.Fail(CliFailure.FromPop3((Error)opened, connection.Check.Problem), asJson);
        }

        FetchSummary summary;
        await using (var session = (Pop3Session)opened)
        {
            try
            {
                Task<FetchSummary> Run(IFetchReporter reporter) => new Fetcher(fileSystem, reporter).RunAsync(session, settings, stop);
                summary = io.Terminal is { } terminal && !asJson
                    ? await SpectreReporter.RunAsync(terminal, Run)
                    : await Run(new PlainReporter(io, asJson));
            }
            catch (Exception e) when (CliFailure.FromLocal(e, $"the Maildir {shownPath}") is { } local)
            {
                return io.Fail(local, asJson);
            }
        }

        var failure = summary.Failure is { } error ? CliFailure.FromPop3(error, connection.Check.Problem) : null;
        var exit = failure?.ExitCode ?? (summary.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok);
        if (asJson)
        {
            io.Json(new JsonObject
            {
                ["maildir"] = settings.Maildir,
                ["onServer"] = summary.OnServer,
                ["fetched"] = summary.Fetched,
                ["alreadyFetched"] = summary.AlreadyFetched,
                ["recovered"] = summary.Recovered,
                ["skippedTooLarge"] = summary.TooLarge,
                ["duplicates"] = summary.Duplicates,
                ["leftForNextRun"] = summary.NotThisRun,
                ["deleted"] = summary.Deleted,
                ["tmpRemoved"] = summary.TmpRemoved,
                ["bytes"] = summary.Bytes,
                ["seconds"] = Math.Round(summary.Elapsed.TotalSeconds, 3),
                ["noUidl"] = summary.NoUidl,
                ["interrupted"] = summary.Interrupted,
                ["warnings"] = new JsonArray([.. summary.Warnings.Select(warning => JsonValue.Create(warning))]),
                ["stateFile"] = summary.StateFile,
                ["error"] = failure is null ? null : CliIo.ErrorJson(failure.Kind, failure.ExitCode, failure.Message),
            });
        }
        else if (io.Terminal is { } terminal)
        {
            // After the progress display, on the console that drew it.
            terminal.WriteLine(SummaryText(summary, shownPath));
        }
        else
        {
            io.Out.WriteLine(SummaryText(summary, shownPath));
        }

        if (failure is not null)
        {
            io.Error.WriteLine($"pop3: {failure.Message}");
        }

        return exit;
    }

    private static string SummaryText(FetchSummary s, string shownPath)
    {
        var rate = s.Elapsed.TotalSeconds > 0 ? s.Fetched / s.Elapsed.TotalSeconds : 0;
        var text = s.Fetched == 0 && s.Duplicates == 0 && s.Failure is null && !s.Interrupted
            ? $"Nothing new: all {s.AlreadyFetched + s.Recovered} message(s) on the server were fetched into {shownPath} before"
            : string.Create(
                CultureInfo.InvariantCulture,
                $"Fetched {s.Fetched} new message(s) into {shownPath}: {Format.Octets(s.Bytes)} in {Format.Seconds(s.Elapsed)} ({rate:0} messages/s); {s.AlreadyFetched} fetched before");
        var extras = new List<string>();
        if (s.Recovered > 0)
        {
            extras.Add($"{s.Recovered} recognised as stored by an interrupted run");
        }

        if (s.TooLarge > 0)
        {
            extras.Add($"{s.TooLarge} skipped as too large");
        }

        if (s.Duplicates > 0)
        {
            extras.Add($"{s.Duplicates} downloaded again and discarded (no UIDL)");
        }

        if (s.NotThisRun > 0)
        {
            extras.Add($"{s.NotThisRun} left for the next run (--max-messages)");
        }

        if (s.DeleteMarked > 0 || s.Deleted > 0)
        {
            extras.Add($"{s.Deleted} deleted from the server");
        }

        if (s.TmpRemoved > 0)
        {
            extras.Add($"{s.TmpRemoved} file(s) an interrupted run left in tmp/ removed");
        }

        if (s.Interrupted)
        {
            extras.Add("interrupted: everything stored is recorded; rerun to continue");
        }

        return extras.Count == 0 ? text + "." : text + "; " + string.Join("; ", extras) + ".";
    }

    private Command Simulate()
    {
        var command = new Command("simulate", "Run a POP3 simulator on 127.0.0.1 with a generated mailbox until Ctrl+C");
        var messages = new Option<int>("--messages") { Description = "Messages in the mailbox", DefaultValueFactory = _ => Simulation.DefaultMessages };
        var seed = new Option<int>("--seed") { Description = "The seed of the mailbox and of the server's randomness", DefaultValueFactory = _ => Simulation.DefaultSeed };
        var personality = new Option<string>("--personality")
        {
            Description = "The server to imitate: " + string.Join(", ", Personalities.Names),
            DefaultValueFactory = _ => "simulator",
        };
        var faults = new Option<string[]>("--fault") { Description = "A named fault plan (repeatable): " + string.Join(", ", Faults.Names) };
        var plainPort = new Option<int>("--plain-port") { Description = "The plaintext (STLS) port; 0 for any free one", DefaultValueFactory = _ => 0 };
        var tlsPort = new Option<int>("--tls-port") { Description = "The implicit-TLS port; 0 for any free one", DefaultValueFactory = _ => 0 };
        foreach (var option in new Option[] { messages, seed, personality, faults, plainPort, tlsPort })
        {
            command.Options.Add(option);
        }

        command.SetAction(async (parse, stop) =>
        {
            var asJson = parse.GetValue(json);
            if (!Personalities.TryFind(parse.GetValue(personality) ?? "", out var chosen))
            {
                return io.Fail(CliFailure.Usage($"--personality: one of {string.Join(", ", Personalities.Names)}"), asJson);
            }

            var plan = FaultPlan.None;
            foreach (var name in parse.GetValue(faults) ?? [])
            {
                if (!Faults.TryParse(name, out var one))
                {
                    return io.Fail(CliFailure.Usage($"--fault {name}: one of {string.Join(", ", Faults.Names)}"), asJson);
                }

                plan = plan.And(one);
            }

            if (parse.GetValue(messages) is < 0 or > 1_000_000)
            {
                return io.Fail(CliFailure.Usage("--messages must be from 0 to 1,000,000"), asJson);
            }

            var options = SimulatorOptions.Default.WithPersonality(chosen).WithFaults(plan).WithPorts(parse.GetValue(plainPort), parse.GetValue(tlsPort));
            await using var simulator = await Simulation.StartAsync(options, parse.GetValue(seed), parse.GetValue(messages), stop);
            if (asJson)
            {
                io.Json(new JsonObject
                {
                    ["plain"] = simulator.Endpoint.ToString(),
                    ["implicitTls"] = simulator.TlsEndpoint.ToString(),
                    ["fingerprint"] = simulator.CertificateFingerprint,
                    ["user"] = Simulation.User,
                    ["password"] = Simulation.Password,
                    ["personality"] = chosen.Name,
                    ["messages"] = parse.GetValue(messages),
                });
            }
            else
            {
                io.Out.WriteLine($"POP3 simulator, personality {chosen.Name}, {parse.GetValue(messages)} generated messages (seed {parse.GetValue(seed)})");
                io.Out.WriteLine($"  plaintext + STLS: {simulator.Endpoint}");
                io.Out.WriteLine($"  implicit TLS:     {simulator.TlsEndpoint}");
                io.Out.WriteLine($"  certificate:      {simulator.CertificateFingerprint}");
                io.Out.WriteLine($"  account:          {Simulation.User}, password {Simulation.Password}");
                io.Out.WriteLine($"  try: POP3_PASSWORD={Simulation.Password} pop3 list --host 127.0.0.1 --port {simulator.TlsEndpoint.Port} --tls implicit --fingerprint {simulator.CertificateFingerprint} --user {Simulation.User} --password-env POP3_PASSWORD");
                io.Out.WriteLine("Ctrl+C stops it.");
            }

            io.Out.Flush();
            try
            {
                await Task.Delay(Timeout.Infinite, stop);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C: the normal end.
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
