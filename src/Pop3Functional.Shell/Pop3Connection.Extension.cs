using Microsoft.FSharp.Core;
using Pop3Functional.Core;

namespace Pop3Functional.Shell;

/// <summary>The escape hatch for commands the core has no request for.</summary>
public sealed partial class Pop3Connection
{
    /// <summary>
    /// Sends an extension command (RFC 2449 §8; keywords starting with X are private) and returns
    /// its reply. The core checks the keyword (three or four ASCII letters or digits, not one it has
    /// its own request for, such as STLS or PASS) and each argument (no space, CR, LF, NUL or
    /// control character) before any byte is sent. With <paramref name="multiline"/>, a +OK is
    /// followed by lines up to "." (at most <c>Limits.MaxCapaLines</c>). Never pipelined; the
    /// session state is assumed unchanged by it.
    /// </summary>
    public async ValueTask<FSharpResult<Pop3ExtensionReply, Pop3Error>> ExtensionAsync(
        string keyword, IReadOnlyList<string> arguments, bool multiline, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var result = await RunAsync(Pop3Request.Extension(keyword, arguments, multiline), null, cancellationToken).ConfigureAwait(false);
        return Map(result, o => new Pop3ExtensionReply(o.Text ?? "", o.Lines ?? []));
    }
}
