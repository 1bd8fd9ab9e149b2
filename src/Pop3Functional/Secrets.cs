using LanguageExt;
using Pop3Functional.Core;

namespace Pop3Functional;

/// <summary>
/// Where a password comes from (DESIGN §12: <see cref="Secret"/> lives in the core; reading one
/// belongs here). A source that cannot give a secret is a <see cref="Fin{A}"/> failure with code
/// <see cref="Pop3ErrorCodes.SecretUnavailable"/>, never an exception. The failures name the
/// source, never a value.
/// </summary>
public static class Secrets
{
    /// <summary>A secret from a string the caller already holds.</summary>
    public static Secret FromString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return Secret.FromString(value);
    }

    /// <summary>A secret from an environment variable, exactly as set (nothing trimmed); a failure when it is unset or empty.</summary>
    public static Fin<Secret> FromEnvironment(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var value = Environment.GetEnvironmentVariable(name);
        return string.IsNullOrEmpty(value)
            ? Pop3Errors.SecretUnavailable($"The environment variable {name} is {(value is null ? "not set" : "empty")}; set it to the password.")
            : Secret.FromString(value);
    }

    /// <summary>
    /// A secret from the first line of a file (as Docker and Kubernetes secrets are mounted): the
    /// line end (LF or CRLF) is not part of it, anything after the first line is ignored, and other
    /// whitespace is kept. A failure when the file cannot be read or its first line is empty.
    /// </summary>
    public static Fin<Secret> FromFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        try
        {
            using var reader = new StreamReader(path);
            var line = reader.ReadLine();
            return line switch
            {
                null => Pop3Errors.SecretUnavailable($"The secret file {path} is empty; write the password on its first line."),
                "" => Pop3Errors.SecretUnavailable($"The first line of the secret file {path} is empty; the password must be on the first line."),
                _ => Secret.FromString(line),
            };
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Pop3Errors.SecretUnavailable($"The secret file {path} could not be read: {ex.Message}", ex);
        }
    }
}
