using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
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
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
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
    public void Json(object value) => Out.WriteLine(JsonSerializer.Serialize(value, JsonOptions));

    /// <summary>Reports a failure: a sentence on standard error, or a JSON document with --json.</summary>
    public int Fail(CliFailure failure, bool json)
    {
        if (json)
        {
            Json(new { error = new { kind = failure.Kind, exitCode = failure.ExitCode, message = failure.Message } });
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
