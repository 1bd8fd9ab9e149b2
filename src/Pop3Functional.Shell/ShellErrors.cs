using Microsoft.FSharp.Core;
using Pop3Functional.Core;

namespace Pop3Functional.Shell;

/// <summary>Builds the transport kind of the core's one error type (DESIGN §4, §12).</summary>
internal static class ShellErrors
{
    public static Pop3Error Transport(string operation, string endpoint, string message, Exception? exception = null) =>
        Pop3Error.NewTransport(
            new TransportError(
                operation,
                endpoint,
                message,
                exception is null ? FSharpOption<Exception>.None : FSharpOption<Exception>.Some(exception)));

    public static Pop3Error Usage(string command, string message) =>
        Pop3Error.NewUsage(new UsageError(UsageErrorKind.InvalidArgument, command, message));

    public static FSharpResult<T, Pop3Error> Fail<T>(Pop3Error error) => FSharpResult<T, Pop3Error>.NewError(error);

    public static FSharpResult<T, Pop3Error> Ok<T>(T value) => FSharpResult<T, Pop3Error>.NewOk(value);
}
