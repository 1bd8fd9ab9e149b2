using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Pop3Functional.Cli;

/// <summary>Where a command reads and writes: the console, or a test's writers.</summary>
/// <param name="Out">Standard output (text).</param>
/// <param name="Error">Standard error: warnings, errors, the protocol log.</param>
/// <param name="OpenStandardOutput">Standard output as octets (retr, top).</param>
/// <param name="Confirm">Asks a yes/no question; null when there is no terminal to ask on.</param>
/// <param name="PromptPassword">Reads a password without echo; null when standard input is not a terminal.</param>
/// <param name="Terminal">
/// Standard output as a Spectre console when it is a terminal (a live progress display instead of
/// plain lines); null when it is a pipe or a file.
/// </param>
internal sealed record CliIo(
    TextWriter Out,
    TextWriter Error,
    Func<Stream> OpenStandardOutput,
    Func<string, bool>? Confirm,
    Func<string, string?>? PromptPassword,
    IAnsiConsole? Terminal)
{
    // Only the writer's settings: the documents are built as JsonObject trees, not serialised
    // from objects by reflection, which native AOT (the published pop3, docs/cli.md) does not
    // allow. The property names are written as they are given, in camelCase.
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Standard input as text: <c>--password-stdin</c> reads its first line.</summary>
    public TextReader In { get; init; } = TextReader.Null;

    /// <summary>The process's console.</summary>
    public static CliIo FromConsole()
    {
        var interactive = !Console.IsInputRedirected;
        return new CliIo(
            Console.Out,
            Console.Error,
            Console.OpenStandardOutput,
            interactive ? Ask : null,
            interactive ? ReadHidden : null,
            Console.IsOutputRedirected ? null : AnsiConsole.Console)
        {
            In = Console.In,
        };
    }

    /// <summary>One JSON document on one line.</summary>
    public void Json(JsonNode value) => Out.WriteLine(value.ToJsonString(JsonOptions));

    /// <summary>The <c>error</c> member of a JSON document: what failed, the exit code, the sentence.</summary>
    public static JsonObject ErrorJson(string kind, int exitCode, string message) =>
        new() { ["kind"] = kind, ["exitCode"] = exitCode, ["message"] = message };

    /// <summary>Reports a failure: a sentence on standard error, or a JSON document with --json.</summary>
    public int Fail(CliFailure failure, bool json)
    {
        if (json)
        {
            Json(new JsonObject { ["error"] = ErrorJson(failure.Kind, failure.ExitCode, failure.Message) });
        }

        Error.WriteLine($"pop3: {failure.Message}");
        return failure.ExitCode;
    }

    private static bool Ask(string question)
    {
        Console.Error.Write(question + " [y/N] ");
        var answer = Console.ReadLine()?.Trim();
        return answer is not null && (answer.Equals("y", StringComparison.OrdinalIgnoreCase) || answer.Equals("yes", StringComparison.OrdinalIgnoreCase));
    }

    private static string? ReadHidden(string prompt)
    {
        Console.Error.Write(prompt);
        var typed = new StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter)
            {
                Console.Error.WriteLine();
                return typed.ToString();
            }

            if (key.Key == ConsoleKey.Backspace)
            {
                if (typed.Length > 0)
                {
                    typed.Length--;
                }
            }
            else if (!char.IsControl(key.KeyChar))
            {
                typed.Append(key.KeyChar);
            }
        }
    }
}
